package modbus

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"edge/hardware"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frame appends a CRC to a unit and PDU (test helper, built on the
// independent reference vectors checked in TestCRC16).
func frame(b ...byte) []byte { return appendCRC(b) }

func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"313233343536373839", 0x4B37}, // "123456789": the CRC-16/MODBUS check value
		{"010300000001", 0x0A84},       // sent as 84 0a
		{"01030000000a", 0xCDC5},
		{"", 0xFFFF},
	}
	for _, tt := range tests {
		if got := CRC16(unhex(t, tt.in)); got != tt.want {
			t.Errorf("CRC16(%s) = 0x%04x, want 0x%04x", tt.in, got, tt.want)
		}
	}
}

func TestRequestEncode(t *testing.T) {
	// Frames from the Modbus specification's examples (unit 0x11), as
	// commonly reproduced with their CRC.
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"read holding", Request{Unit: 0x11, Function: ReadHoldingRegisters, Address: 0x006B, Count: 3}, "11 03 00 6b 00 03 76 87"},
		{"read input", Request{Unit: 0x11, Function: ReadInputRegisters, Address: 0x0008, Count: 1}, "11 04 00 08 00 01 b2 98"},
		{"write single", Request{Unit: 0x11, Function: WriteSingleRegister, Address: 0x0001, Values: []uint16{3}}, "11 06 00 01 00 03 9a 9b"},
		{"write multiple", Request{Unit: 0x11, Function: WriteMultipleRegisters, Address: 0x0001, Values: []uint16{0x000A, 0x0102}}, "11 10 00 01 00 02 04 00 0a 01 02 c6 f0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("Encode = % x, want % x", got, want)
			}
		})
	}
}

func TestRequestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"broadcast", Request{Unit: 0, Function: ReadHoldingRegisters, Count: 1}, "unit 0 out of range"},
		{"unit 248", Request{Unit: 248, Function: ReadHoldingRegisters, Count: 1}, "unit 248 out of range"},
		{"no registers", Request{Unit: 1, Function: ReadHoldingRegisters}, "count 0 out of range 1-125"},
		{"126 registers", Request{Unit: 1, Function: ReadInputRegisters, Count: 126}, "count 126"},
		{"past 0xffff", Request{Unit: 1, Function: ReadHoldingRegisters, Address: 0xFFFF, Count: 2}, "beyond register 0xffff"},
		{"06 two values", Request{Unit: 1, Function: WriteSingleRegister, Values: []uint16{1, 2}}, "writes one register"},
		{"16 no values", Request{Unit: 1, Function: WriteMultipleRegisters}, "count 0 out of range 1-123"},
		{"16 too many", Request{Unit: 1, Function: WriteMultipleRegisters, Values: make([]uint16, 124)}, "count 124"},
		{"coils", Request{Unit: 1, Function: 0x01, Count: 1}, "function 0x01 not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.req.Encode()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Encode error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRequestString(t *testing.T) {
	tests := []struct {
		req  Request
		want string
	}{
		{Request{Function: ReadHoldingRegisters, Address: 0x10, Count: 6}, "read 0x0010..0x0015"},
		{Request{Function: ReadHoldingRegisters, Address: 0x10, Count: 1}, "read 0x0010"},
		{Request{Function: ReadInputRegisters, Address: 0x100, Count: 2}, "read input 0x0100..0x0101"},
		{Request{Function: WriteSingleRegister, Address: 0x10, Values: []uint16{1}}, "write 0x0010"},
		{Request{Function: WriteMultipleRegisters, Address: 0x20, Values: []uint16{1, 2}}, "write 0x0020..0x0021"},
	}
	for _, tt := range tests {
		if got := tt.req.String(); got != tt.want {
			t.Errorf("String = %q, want %q", got, tt.want)
		}
	}
}

func TestDecodeResponse(t *testing.T) {
	read := Request{Unit: 1, Function: ReadHoldingRegisters, Address: 0x10, Count: 2}
	write := Request{Unit: 1, Function: WriteSingleRegister, Address: 0x10, Values: []uint16{5400}}
	multi := Request{Unit: 1, Function: WriteMultipleRegisters, Address: 0x20, Values: []uint16{1, 2}}
	badCRC := frame(1, 3, 4, 0x15, 0x18, 0, 1)
	badCRC[len(badCRC)-1] ^= 1
	tests := []struct {
		name    string
		req     Request
		frame   []byte
		want    []uint16
		wantErr error
		msg     string
	}{
		{"read", read, frame(1, 3, 4, 0x15, 0x18, 0, 1), []uint16{5400, 1}, nil, ""},
		{"spec example", Request{Unit: 0x11, Function: ReadHoldingRegisters, Address: 0x6B, Count: 3},
			unhex(t, "11 03 06 ae 41 56 52 43 40 49 ad"), []uint16{0xAE41, 0x5652, 0x4340}, nil, ""},
		{"write echo", write, frame(1, 6, 0, 0x10, 0x15, 0x18), nil, nil, ""},
		{"write multiple", multi, frame(1, 0x10, 0, 0x20, 0, 2), nil, nil, ""},
		{"exception", write, frame(1, 0x86, 2), nil, hardware.ErrRejected, "exception 2 (illegal data address)"},
		{"busy", read, frame(1, 0x83, 6), nil, hardware.ErrRejected, "exception 6 (server device busy)"},
		{"odd exception", read, frame(1, 0x83, 0x42), nil, hardware.ErrRejected, "exception 66 (unknown exception)"},
		{"bad CRC", read, badCRC, nil, hardware.ErrGarbage, "bad CRC"},
		{"other unit", read, frame(2, 3, 4, 0x15, 0x18, 0, 1), nil, hardware.ErrGarbage, "answer from unit 2, want 1"},
		{"other function", read, frame(1, 4, 4, 0x15, 0x18, 0, 1), nil, hardware.ErrGarbage, "function 0x04, want 0x03"},
		{"short", read, []byte{1, 3, 4}, nil, hardware.ErrGarbage, "short frame of 3 bytes"},
		{"empty", read, nil, nil, hardware.ErrGarbage, "short frame of 0 bytes"},
		{"byte count", read, frame(1, 3, 2, 0x15, 0x18), nil, hardware.ErrGarbage, "byte count 2"},
		{"byte count lies", read, frame(1, 3, 4, 0x15, 0x18), nil, hardware.ErrGarbage, "byte count 4 and 2 data bytes"},
		{"echo other register", write, frame(1, 6, 0, 0x11, 0x15, 0x18), nil, hardware.ErrGarbage, "register 0x0011, want 0x0010"},
		{"echo other value", write, frame(1, 6, 0, 0x10, 0x15, 0x19), nil, hardware.ErrGarbage, "echoes value 5401"},
		{"multiple count", multi, frame(1, 0x10, 0, 0x20, 0, 3), nil, hardware.ErrGarbage, "for 3 registers, want 2"},
		{"long exception", read, frame(1, 0x83, 2, 0), nil, hardware.ErrGarbage, "exception frame of 6 bytes"},
		{"too long", read, make([]byte, 300), nil, hardware.ErrGarbage, "longer than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResponse(tt.req, tt.frame)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want %v with %q", err, tt.wantErr, tt.msg)
			}
		})
	}
}

func TestResponseLen(t *testing.T) {
	read := Request{Unit: 1, Function: ReadHoldingRegisters, Count: 2}
	write := Request{Unit: 1, Function: WriteMultipleRegisters, Values: []uint16{1}}
	tests := []struct {
		req  Request
		got  []byte
		want int
	}{
		{read, nil, 0},
		{read, []byte{1}, 0},
		{read, []byte{1, 3}, 0},
		{read, []byte{1, 3, 4}, 9},
		{read, []byte{1, 0x83}, 5},
		{write, []byte{1, 0x10}, 8},
		{write, []byte{1, 0x90}, 5},
	}
	for _, tt := range tests {
		if got := tt.req.responseLen(tt.got); got != tt.want {
			t.Errorf("responseLen(% x) = %d, want %d", tt.got, got, tt.want)
		}
	}
}

// FuzzDecodeResponse: any bytes as the answer to any request never panic,
// fail with ErrGarbage or ErrRejected only, and what decodes is exactly
// the frame a slave would have sent.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(byte(0), uint16(0x10), uint16(2), frame(1, 3, 4, 0x15, 0x18, 0, 1))
	f.Add(byte(1), uint16(0x100), uint16(1), frame(1, 4, 2, 0xff, 0xcc))
	f.Add(byte(2), uint16(0x10), uint16(5400), frame(1, 6, 0, 0x10, 0x15, 0x18))
	f.Add(byte(3), uint16(0x20), uint16(2), frame(1, 0x10, 0, 0x20, 0, 2))
	f.Add(byte(2), uint16(0x10), uint16(1), frame(1, 0x86, 2))
	f.Add(byte(0), uint16(0), uint16(125), []byte{1, 3, 0xfa})
	f.Fuzz(func(t *testing.T, kind byte, addr, n uint16, data []byte) {
		req := Request{Unit: 1, Address: addr}
		switch kind % 4 {
		case 0:
			req.Function, req.Count = ReadHoldingRegisters, n%127
		case 1:
			req.Function, req.Count = ReadInputRegisters, n%127
		case 2:
			req.Function, req.Values = WriteSingleRegister, []uint16{n}
		case 3:
			req.Function, req.Values = WriteMultipleRegisters, make([]uint16, n%125)
		}
		for i := range len(data) + 1 {
			req.responseLen(data[:i])
		}
		vals, err := DecodeResponse(req, data)
		if err != nil {
			if errors.Is(err, hardware.ErrGarbage) == errors.Is(err, hardware.ErrRejected) {
				t.Fatalf("error %v is neither garbage nor rejected (or both)", err)
			}
			var ex *Exception
			if errors.As(err, &ex) && (len(data) != 5 || data[1] != req.Function|0x80) {
				t.Fatalf("exception from % x", data)
			}
			return
		}
		if req.responseLen(data) != len(data) {
			t.Fatalf("decoded a %d-byte frame sized %d", len(data), req.responseLen(data))
		}
		want := []byte{req.Unit, req.Function}
		switch req.Function {
		case ReadHoldingRegisters, ReadInputRegisters:
			if len(vals) != int(req.Count) {
				t.Fatalf("%d values for %d registers", len(vals), req.Count)
			}
			want = append(want, byte(2*len(vals)))
			for _, v := range vals {
				want = binary.BigEndian.AppendUint16(want, v)
			}
		case WriteSingleRegister:
			want = binary.BigEndian.AppendUint16(want, req.Address)
			want = binary.BigEndian.AppendUint16(want, req.Values[0])
		case WriteMultipleRegisters:
			want = binary.BigEndian.AppendUint16(want, req.Address)
			want = binary.BigEndian.AppendUint16(want, uint16(len(req.Values)))
		}
		if want = appendCRC(want); !bytes.Equal(want, data) {
			t.Fatalf("decoded % x, which re-encodes as % x", data, want)
		}
	})
}
