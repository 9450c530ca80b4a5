// Package line is the profile-driven driver for devices that speak a line
// protocol over a serial port: SCPI instruments, 3GPP 27.007 AT-command
// modems and vendor command-line interfaces. A profile file (YAML, see
// docs/profiles-line.md) maps each setting to a set-command template, a
// query, an answer parser and range checks, and describes the device's
// dialect: line ending, answer framing (one line, lines until a final
// result code, or lines until a prompt), echo, unsolicited result codes,
// error patterns, an SCPI-style error queue and an identity check. A new
// model is a new profile, not new code.
//
// Open matches hardware.Opener; the device it returns implements
// hardware.Device, hardware.Checker and hardware.Planner.
package line
