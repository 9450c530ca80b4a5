package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// ModbusFault is a misbehaviour of a simulated Modbus unit, on demand.
type ModbusFault int

// Faults. Each lasts until another is set; ModbusNoFault clears it.
const (
	ModbusNoFault ModbusFault = iota
	// ModbusNoAnswer: requests are swallowed (a dead unit, a cut wire).
	ModbusNoAnswer
	// ModbusGarbage: the answer is noise of the right length.
	ModbusGarbage
	// ModbusBadCRC: the right answer with a broken CRC.
	ModbusBadCRC
	// ModbusWrongUnit: the right answer, from another unit address.
	ModbusWrongUnit
	// ModbusShortFrame: the answer stops three bytes early.
	ModbusShortFrame
	// ModbusTrailingBytes: the right answer followed by two stray bytes.
	ModbusTrailingBytes
)

// ModbusRequest is one request the simulator received (with a good CRC).
type ModbusRequest struct {
	Unit     byte
	Function byte
	Address  uint16
	// Count of registers read or written.
	Count uint16
	// Values written (06, 16).
	Values []uint16
	// Answered is false for requests to other units, broadcasts and
	// requests swallowed by ModbusNoAnswer.
	Answered bool
	// Exception is the exception code answered, 0 for a normal answer.
	Exception byte
}

// IsWrite reports whether the request writes registers.
func (r ModbusRequest) IsWrite() bool { return r.Function == 0x06 || r.Function == 0x10 }

// Modbus is a simulated Modbus RTU unit (slave) served over a pty, with the
// bytes a real one sends: holding and input registers, functions 03, 04, 06
// and 16, exceptions 01 (function), 02 (address) and 03 (value or count).
// It answers only its own unit address (and acts on broadcasts to unit 0
// without answering), like a unit on a multi-drop line. Registers that were
// never set do not exist: asking for them is exception 02.
type Modbus struct {
	pty      *PTY
	unit     byte
	replug   chan struct{}
	closedCh chan struct{}

	mu       sync.Mutex
	holding  map[uint16]uint16
	input    map[uint16]uint16
	readOnly map[uint16]bool
	limits   map[uint16][2]uint16
	fault    ModbusFault
	exc      byte
	latency  time.Duration
	requests []ModbusRequest
	logged   chan struct{} // closed (and replaced) when a request is logged
	closed   bool

	rate lineRate
}

// ModbusGap is how long the simulator waits for the rest of a frame, and
// the silence after which it takes what it has as one frame. On a pty it
// stands in for the 3.5-character interval.
const ModbusGap = 20 * time.Millisecond

// NewModbus creates a unit answering to address unit (1-247) on a new pty,
// linked at path. Nothing is served until Run.
func NewModbus(path string, unit byte) (*Modbus, error) {
	if unit < 1 || unit > 247 {
		return nil, fmt.Errorf("sim modbus: unit %d out of range 1-247", unit)
	}
	p, err := NewPTY(path)
	if err != nil {
		return nil, err
	}
	return &Modbus{
		pty:      p,
		unit:     unit,
		replug:   make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		holding:  map[uint16]uint16{},
		input:    map[uint16]uint16{},
		readOnly: map[uint16]bool{},
		limits:   map[uint16][2]uint16{},
		logged:   make(chan struct{}),
	}, nil
}

// Path is where a master opens the port.
func (m *Modbus) Path() string { return m.pty.Path() }

// Unit is the unit address.
func (m *Modbus) Unit() byte { return m.unit }

// SetHolding sets holding registers from addr on, creating them; a test
// changing them behind the driver's back simulates drift.
func (m *Modbus) SetHolding(addr uint16, values ...uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, v := range values {
		m.holding[addr+uint16(i)] = v
	}
}

// SetInput sets input registers from addr on, creating them.
func (m *Modbus) SetInput(addr uint16, values ...uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, v := range values {
		m.input[addr+uint16(i)] = v
	}
}

// Holding returns n holding registers from addr; ok is false if one does
// not exist.
func (m *Modbus) Holding(addr uint16, n int) (values []uint16, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return get(m.holding, addr, n)
}

// Input returns n input registers from addr; ok is false if one does not
// exist.
func (m *Modbus) Input(addr uint16, n int) (values []uint16, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return get(m.input, addr, n)
}

func get(regs map[uint16]uint16, addr uint16, n int) ([]uint16, bool) {
	out := make([]uint16, n)
	for i := range out {
		v, ok := regs[addr+uint16(i)]
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// SetReadOnly makes holding registers refuse writes (exception 02).
func (m *Modbus) SetReadOnly(addrs ...uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range addrs {
		m.readOnly[a] = true
	}
}

// SetLimit makes a holding register refuse values outside lo..hi (raw,
// unsigned) with exception 03, as a device checking its own ranges does.
func (m *Modbus) SetLimit(addr, lo, hi uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limits[addr] = [2]uint16{lo, hi}
}

// SetFault sets how the unit misbehaves; ModbusNoFault clears it.
func (m *Modbus) SetFault(f ModbusFault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// SetException makes the unit answer every request with exception code
// (for example 6, server device busy); 0 clears it.
func (m *Modbus) SetException(code byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.exc = code
}

// SetBaud makes the unit keep the pace of a serial line at baud (10 bits a
// character), which a pty does not: a request is taken once its last byte
// would have arrived (and the silence that ends an unsized frame counts
// from then), and answers go out at that rate. 0, the default, turns
// pacing off. It can be changed at any time.
func (m *Modbus) SetBaud(baud int) { m.rate.setBaud(baud) }

// Bytes returns the bytes received from and sent to the master so far
// (frames to other units and broken ones included).
func (m *Modbus) Bytes() (received, sent int64) { return m.rate.bytes() }

// SetLatency delays every answer by d.
func (m *Modbus) SetLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latency = d
}

// Requests returns the requests received so far, oldest first. A request
// is logged before it is answered, so once a master has its answer the
// request is here.
func (m *Modbus) Requests() []ModbusRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ModbusRequest, len(m.requests))
	for i, r := range m.requests {
		r.Values = slices.Clone(r.Values)
		out[i] = r
	}
	return out
}

// WaitRequests waits until at least n requests were received since the
// last ClearRequests, and returns them.
func (m *Modbus) WaitRequests(ctx context.Context, n int) ([]ModbusRequest, error) {
	for {
		m.mu.Lock()
		have, ch := len(m.requests), m.logged
		m.mu.Unlock()
		if have >= n {
			return m.Requests(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return m.Requests(), fmt.Errorf("sim modbus: %d requests, want %d: %w", have, n, ctx.Err())
		}
	}
}

// ClearRequests empties the request log.
func (m *Modbus) ClearRequests() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = nil
}

// Unplug takes the port away, as pulling a USB adapter out does: the
// master's descriptor fails and the path disappears.
func (m *Modbus) Unplug() error { return m.pty.Unplug() }

// Replug brings a new port back at the same path.
func (m *Modbus) Replug() error {
	if err := m.pty.Replug(); err != nil {
		return err
	}
	select {
	case m.replug <- struct{}{}:
	default:
	}
	return nil
}

// Close removes the port for good and makes Run return.
func (m *Modbus) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closedCh)
	m.mu.Unlock()
	return m.pty.Close()
}

// Run serves requests until ctx is done or Close; across Unplug it waits
// for Replug. Cancelation is not an error.
func (m *Modbus) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.closedCh:
			return nil
		default:
		}
		f := m.pty.Master()
		if f == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-m.closedCh:
				return nil
			case <-m.replug:
			}
			continue
		}
		err := m.serve(ctx, f)
		if ctx.Err() != nil {
			return nil
		}
		if m.pty.Master() == f {
			// Still plugged in: a real failure.
			return fmt.Errorf("sim modbus %s: %w", m.Path(), err)
		}
	}
}

// serve reads frames from the pty master until it fails (closed by Unplug)
// or ctx is done.
func (m *Modbus) serve(ctx context.Context, f *os.File) error {
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	var (
		buf []byte
		due []time.Time // when each byte of buf has arrived
		rx  rxClock
	)
	tmp := make([]byte, 512)
	for {
		if len(buf) > 0 {
			// Silence counts from the last byte's arrival, which pacing
			// may put in the future.
			from := time.Now()
			if last := due[len(due)-1]; last.After(from) {
				from = last
			}
			f.SetReadDeadline(from.Add(ModbusGap))
		} else {
			f.SetReadDeadline(time.Time{})
		}
		if ctx.Err() != nil {
			return nil
		}
		n, err := f.Read(tmp)
		buf = append(buf, tmp[:n]...)
		rx.arrived(&m.rate, time.Now(), n, func(_ int, t time.Time) { due = append(due, t) })
		for len(buf) > 0 {
			need := requestLen(buf)
			if need <= 0 || len(buf) < need {
				break
			}
			if !waitUntil(ctx, due[need-1]) {
				return nil
			}
			m.handle(ctx, f, buf[:need])
			buf, due = buf[need:], due[need:]
		}
		if len(buf) > 256 {
			buf, due = nil, nil // noise; resynchronise on the next silence
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			// Silence: what is there is one frame (a function we do not
			// know, so we could not size it) or a broken one.
			if len(buf) > 0 {
				m.handle(ctx, f, buf)
				buf, due = nil, nil
			}
		}
	}
}

// requestLen sizes a request frame from its first bytes: 0 when it cannot
// tell yet, -1 for functions it does not know (framed by silence).
func requestLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case 0x03, 0x04, 0x06:
		return 8
	case 0x10:
		if len(b) < 7 {
			return 0
		}
		return 9 + int(b[6])
	}
	return -1
}

// handle answers one frame.
func (m *Modbus) handle(ctx context.Context, f *os.File, frame []byte) {
	if len(frame) < 4 || crc16(frame[:len(frame)-2]) != binary.LittleEndian.Uint16(frame[len(frame)-2:]) {
		return // a real unit ignores frames with a bad CRC
	}
	req := ModbusRequest{Unit: frame[0], Function: frame[1]}
	pdu := frame[2 : len(frame)-2]
	if len(pdu) >= 4 {
		req.Address = binary.BigEndian.Uint16(pdu)
	}
	answer := m.execute(&req, pdu)

	m.mu.Lock()
	fault, exc, latency := m.fault, m.exc, m.latency
	mine := req.Unit == m.unit
	if mine && fault != ModbusNoAnswer {
		req.Answered = true
		if exc != 0 {
			answer = []byte{req.Function | 0x80, exc}
		}
		if len(answer) == 2 && answer[0]&0x80 != 0 {
			req.Exception = answer[1]
		}
	}
	m.requests = append(m.requests, req)
	close(m.logged)
	m.logged = make(chan struct{})
	m.mu.Unlock()
	if !req.Answered {
		return
	}

	unit := m.unit
	if fault == ModbusWrongUnit {
		unit = m.unit%247 + 1
	}
	out := append([]byte{unit}, answer...)
	out = binary.LittleEndian.AppendUint16(out, crc16(out))
	switch fault {
	case ModbusGarbage:
		for i := range out {
			out[i] = byte(0xA5 ^ i*37)
		}
	case ModbusBadCRC:
		out[len(out)-1] ^= 0xFF
	case ModbusShortFrame:
		out = out[:len(out)-3]
	case ModbusTrailingBytes:
		out = append(out, 0x00, 0xFF)
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	m.rate.write(ctx, f, out) // an unplugged port loses the answer
}

// execute carries out a request addressed to this unit or broadcast, and
// returns the answer's PDU (function and data). Requests to other units
// change nothing.
func (m *Modbus) execute(req *ModbusRequest, pdu []byte) []byte {
	fn := req.Function
	exception := func(code byte) []byte { return []byte{fn | 0x80, code} }
	if req.Unit != m.unit && req.Unit != 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch fn {
	case 0x03, 0x04:
		if len(pdu) != 4 {
			return exception(0x03)
		}
		req.Count = binary.BigEndian.Uint16(pdu[2:])
		if req.Unit == 0 {
			return nil // reads are not broadcast
		}
		if req.Count < 1 || req.Count > 125 {
			return exception(0x03)
		}
		table := m.holding
		if fn == 0x04 {
			table = m.input
		}
		vals, ok := get(table, req.Address, int(req.Count))
		if !ok || int(req.Address)+int(req.Count) > 0x10000 {
			return exception(0x02)
		}
		out := []byte{fn, byte(2 * len(vals))}
		for _, v := range vals {
			out = binary.BigEndian.AppendUint16(out, v)
		}
		return out
	case 0x06:
		if len(pdu) != 4 {
			return exception(0x03)
		}
		req.Count = 1
		req.Values = []uint16{binary.BigEndian.Uint16(pdu[2:])}
		if code := m.writable(req.Address, req.Values); code != 0 {
			return exception(code)
		}
		m.holding[req.Address] = req.Values[0]
		return append([]byte{fn}, pdu...)
	case 0x10:
		if len(pdu) < 5 {
			return exception(0x03)
		}
		req.Count = binary.BigEndian.Uint16(pdu[2:])
		n := int(req.Count)
		if n < 1 || n > 123 || int(pdu[4]) != 2*n || len(pdu) != 5+2*n {
			return exception(0x03)
		}
		for i := range n {
			req.Values = append(req.Values, binary.BigEndian.Uint16(pdu[5+2*i:]))
		}
		if int(req.Address)+n > 0x10000 {
			return exception(0x02)
		}
		if code := m.writable(req.Address, req.Values); code != 0 {
			return exception(code)
		}
		for i, v := range req.Values {
			m.holding[req.Address+uint16(i)] = v
		}
		return append([]byte{fn}, pdu[:4]...)
	}
	return exception(0x01)
}

// writable checks a write: 0 if fine, else the exception code.
func (m *Modbus) writable(addr uint16, values []uint16) byte {
	for i, v := range values {
		a := addr + uint16(i)
		if _, ok := m.holding[a]; !ok || m.readOnly[a] {
			return 0x02
		}
		if l, ok := m.limits[a]; ok && (v < l[0] || v > l[1]) {
			return 0x03
		}
	}
	return 0
}

// crcTable is CRC-16/MODBUS (reflected polynomial 0xA001), byte-wise.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc = crc>>8 ^ crcTable[byte(crc)^c]
	}
	return crc
}
