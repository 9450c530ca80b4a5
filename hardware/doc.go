// Package hardware will own the Device interface, the driver registry, the
// reconciler and the supervisor that bring each device attached to this node
// to its desired settings (serial line protocols, Modbus RTU, netlink and
// simulators below it). It is empty until the hardware layer lands; the
// node config already parses the device inventory (daemon.DeviceConfig).
package hardware
