// Package modbus is the Modbus RTU driver: a small RTU master on
// hardware/serial (functions 03, 04, 06 and 16, CRC-16/MODBUS, the
// 3.5-character silent interval, frames delimited by their expected length
// and the silence after them) and a profile-driven hardware.Device on top
// of it. A profile (see docs/profiles-modbus.md) maps each setting to its
// registers, type, word order and scale; a new model is a new profile.
//
// Errors wrap the hardware sentinels: an exception answer is ErrRejected
// ("modbus unit 1: write 0x0010: exception 2 (illegal data address)"); a
// bad CRC, another unit's or function's answer or a short frame is
// ErrGarbage; silence is ErrTimeout; a missing port is ErrDisconnected.
// Nothing is retried here: the supervisor retries.
package modbus
