// Package sim holds simulated devices: in-memory ones, and line-protocol and
// Modbus RTU devices served over a pseudo-terminal with the same bytes real
// ones send, plus faults on demand (latency, timeouts, garbage, error
// answers, unplug). The demo and most tests use them.
package sim
