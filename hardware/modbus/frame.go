package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"

	"edge/hardware"
)

// Function codes this master sends.
const (
	ReadHoldingRegisters   byte = 0x03
	ReadInputRegisters     byte = 0x04
	WriteSingleRegister    byte = 0x06
	WriteMultipleRegisters byte = 0x10
)

// Protocol limits (Modbus application protocol v1.1b3, 6.3, 6.4 and 6.12).
const (
	// MaxFrame is the longest RTU frame: unit, PDU of up to 253 bytes, CRC.
	MaxFrame = 256
	// MaxReadCount is the most registers one read (03, 04) may ask for.
	MaxReadCount = 125
	// MaxWriteCount is the most registers one write (16) may carry.
	MaxWriteCount = 123
	// MaxUnit is the highest unit (slave) address; 0 is broadcast.
	MaxUnit = 247
)

// CRC16 returns the CRC-16/MODBUS of b (polynomial 0xA001 reflected,
// initial value 0xFFFF). On the wire it is sent low byte first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// appendCRC appends the CRC of b to b, low byte first.
func appendCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint16(b, CRC16(b))
}

// Request is one request of the master to a unit.
type Request struct {
	Unit     byte
	Function byte
	// Address is the first register (PDU address, from 0).
	Address uint16
	// Count is the number of registers to read (03, 04). For writes it is
	// taken from Values.
	Count uint16
	// Values are the registers to write: one for 06, 1-123 for 16.
	Values []uint16
}

// String describes the request for errors and logs: "read 0x0010..0x0012",
// "read input 0x0100", "write 0x0010", "write 0x0020..0x0021".
func (r Request) String() string {
	switch r.Function {
	case ReadHoldingRegisters:
		return "read " + span(r.Address, int(r.Count))
	case ReadInputRegisters:
		return "read input " + span(r.Address, int(r.Count))
	case WriteSingleRegister:
		return "write " + span(r.Address, 1)
	case WriteMultipleRegisters:
		return "write " + span(r.Address, len(r.Values))
	}
	return fmt.Sprintf("function 0x%02x at 0x%04x", r.Function, r.Address)
}

func span(addr uint16, n int) string {
	if n <= 1 {
		return fmt.Sprintf("0x%04x", addr)
	}
	return fmt.Sprintf("0x%04x..0x%04x", addr, int(addr)+n-1)
}

// Encode returns the request's RTU frame (unit, PDU, CRC).
func (r Request) Encode() ([]byte, error) {
	if r.Unit < 1 || r.Unit > MaxUnit {
		return nil, fmt.Errorf("modbus: unit %d out of range 1-%d", r.Unit, MaxUnit)
	}
	b := make([]byte, 0, MaxFrame)
	b = append(b, r.Unit, r.Function)
	b = binary.BigEndian.AppendUint16(b, r.Address)
	switch r.Function {
	case ReadHoldingRegisters, ReadInputRegisters:
		if r.Count < 1 || r.Count > MaxReadCount {
			return nil, fmt.Errorf("modbus: %s: count %d out of range 1-%d", r, r.Count, MaxReadCount)
		}
		if int(r.Address)+int(r.Count) > 0x10000 {
			return nil, fmt.Errorf("modbus: %s: beyond register 0xffff", r)
		}
		b = binary.BigEndian.AppendUint16(b, r.Count)
	case WriteSingleRegister:
		if len(r.Values) != 1 {
			return nil, fmt.Errorf("modbus: %s: function 06 writes one register, got %d", r, len(r.Values))
		}
		b = binary.BigEndian.AppendUint16(b, r.Values[0])
	case WriteMultipleRegisters:
		n := len(r.Values)
		if n < 1 || n > MaxWriteCount {
			return nil, fmt.Errorf("modbus: %s: count %d out of range 1-%d", r, n, MaxWriteCount)
		}
		if int(r.Address)+n > 0x10000 {
			return nil, fmt.Errorf("modbus: %s: beyond register 0xffff", r)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = append(b, byte(2*n))
		for _, v := range r.Values {
			b = binary.BigEndian.AppendUint16(b, v)
		}
	default:
		return nil, fmt.Errorf("modbus: function 0x%02x not supported", r.Function)
	}
	return appendCRC(b), nil
}

// responseLen returns how long the answer to r is, judging by the bytes
// received so far: 0 while that cannot be told yet (fewer than 3 bytes),
// 5 for an exception, the normal length otherwise. An answer with another
// function code is sized as the normal one: DecodeResponse rejects it.
func (r Request) responseLen(got []byte) int {
	if len(got) < 2 {
		return 0
	}
	if got[1] == r.Function|0x80 {
		return 5
	}
	switch r.Function {
	case ReadHoldingRegisters, ReadInputRegisters:
		if len(got) < 3 {
			return 0
		}
		// The slave's byte count frames the answer; DecodeResponse checks
		// it against the request.
		return 5 + int(got[2])
	}
	return 8
}

// Exception is a Modbus exception answer: the unit understood the request
// and refused it. It wraps hardware.ErrRejected.
type Exception struct {
	Function byte
	Code     byte
}

// Exception codes (Modbus application protocol v1.1b3, 7).
var exceptionNames = map[byte]string{
	0x01: "illegal function",
	0x02: "illegal data address",
	0x03: "illegal data value",
	0x04: "server device failure",
	0x05: "acknowledge",
	0x06: "server device busy",
	0x08: "memory parity error",
	0x0A: "gateway path unavailable",
	0x0B: "gateway target device failed to respond",
}

// ExceptionName names an exception code ("illegal data address").
func ExceptionName(code byte) string {
	if s, ok := exceptionNames[code]; ok {
		return s
	}
	return "unknown exception"
}

func (e *Exception) Error() string {
	return fmt.Sprintf("exception %d (%s)", e.Code, ExceptionName(e.Code))
}

// Unwrap makes errors.Is(err, hardware.ErrRejected) true.
func (e *Exception) Unwrap() error { return hardware.ErrRejected }

func garbage(format string, args ...any) error {
	return fmt.Errorf("%w: %s", hardware.ErrGarbage, fmt.Sprintf(format, args...))
}

// DecodeResponse checks frame as the answer to req and returns the
// registers read (03, 04) or nil (06, 16). An exception answer returns an
// *Exception (wrapping hardware.ErrRejected); a frame that is short, too
// long, fails its CRC, or comes from another unit or function returns an
// error wrapping hardware.ErrGarbage. It never panics, whatever frame holds.
func DecodeResponse(req Request, frame []byte) ([]uint16, error) {
	if len(frame) < 5 {
		return nil, garbage("short frame of %d bytes: % x", len(frame), frame)
	}
	if len(frame) > MaxFrame {
		return nil, garbage("frame of %d bytes, longer than %d", len(frame), MaxFrame)
	}
	body := frame[:len(frame)-2]
	if got, want := binary.LittleEndian.Uint16(frame[len(frame)-2:]), CRC16(body); got != want {
		return nil, garbage("bad CRC 0x%04x, want 0x%04x: % x", got, want, frame)
	}
	if body[0] != req.Unit {
		return nil, garbage("answer from unit %d, want %d", body[0], req.Unit)
	}
	fn := body[1]
	if fn == req.Function|0x80 {
		if len(body) != 3 {
			return nil, garbage("exception frame of %d bytes, want 5", len(frame))
		}
		return nil, &Exception{Function: req.Function, Code: body[2]}
	}
	if fn != req.Function {
		return nil, garbage("answer for function 0x%02x, want 0x%02x", fn, req.Function)
	}
	pdu := body[2:]
	switch req.Function {
	case ReadHoldingRegisters, ReadInputRegisters:
		n := int(req.Count)
		if len(pdu) < 1 || int(pdu[0]) != 2*n || len(pdu) != 1+2*n {
			bc := -1
			if len(pdu) > 0 {
				bc = int(pdu[0])
			}
			return nil, garbage("byte count %d and %d data bytes for %d registers", bc, len(pdu)-1, n)
		}
		out := make([]uint16, n)
		for i := range out {
			out[i] = binary.BigEndian.Uint16(pdu[1+2*i:])
		}
		return out, nil
	case WriteSingleRegister, WriteMultipleRegisters:
		if len(pdu) != 4 {
			return nil, garbage("write answer of %d bytes, want 8", len(frame))
		}
		addr, val := binary.BigEndian.Uint16(pdu), binary.BigEndian.Uint16(pdu[2:])
		if addr != req.Address {
			return nil, garbage("write answer for register 0x%04x, want 0x%04x", addr, req.Address)
		}
		if req.Function == WriteSingleRegister {
			if len(req.Values) != 1 || val != req.Values[0] {
				return nil, garbage("write answer echoes value %d, not the value written", val)
			}
		} else if int(val) != len(req.Values) {
			return nil, garbage("write answer for %d registers, want %d", val, len(req.Values))
		}
		return nil, nil
	}
	return nil, errors.New("modbus: function not supported")
}
