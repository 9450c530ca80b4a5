package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startModbus runs a simulated unit 1 with a few registers for the test.
func startModbus(t *testing.T) *Modbus {
	t.Helper()
	m, err := NewModbus(filepath.Join(t.TempDir(), "ttyMB"), 1)
	if err != nil {
		t.Fatal(err)
	}
	m.SetHolding(0x10, 5400, 5500, 65000)
	m.SetInput(0x100, 0xFFCC, 5402)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	return m
}

func withCRC(b ...byte) []byte { return binary.LittleEndian.AppendUint16(b, crc16(b)) }

// master is a bare Modbus master for these tests: it writes frames and
// reads answers, sized by what they say they are.
type master struct {
	t *testing.T
	f *os.File
}

func openMaster(t *testing.T, path string) *master {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &master{t: t, f: f}
}

func (c *master) send(frame []byte) {
	c.t.Helper()
	if _, err := c.f.Write(frame); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one answer: 5 bytes for an exception, 5+count for a read,
// 8 for a write. The deadline only fires on failure.
func (c *master) answer() []byte {
	c.t.Helper()
	c.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 300)
	for {
		want := 0
		switch {
		case len(got) >= 2 && got[1]&0x80 != 0:
			want = 5
		case len(got) >= 3 && (got[1] == 3 || got[1] == 4):
			want = 5 + int(got[2])
		case len(got) >= 2 && (got[1] == 6 || got[1] == 0x10):
			want = 8
		}
		if want > 0 && len(got) >= want {
			return got
		}
		n, err := c.f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			c.t.Fatalf("read after % x: %v", got, err)
		}
	}
}

func (c *master) ask(frame []byte) []byte {
	c.t.Helper()
	c.send(frame)
	return c.answer()
}

func TestModbusCRC(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x4B37 {
		t.Errorf("crc16 check value 0x%04x, want 0x4b37", got)
	}
	if got := withCRC(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03); !bytes.Equal(got[6:], []byte{0x76, 0x87}) {
		t.Errorf("spec example CRC % x, want 76 87", got[6:])
	}
}

func TestModbusFunctions(t *testing.T) {
	m := startModbus(t)
	m.SetHolding(0x30, 1, 2)
	m.SetReadOnly(0x31)
	m.SetLimit(0x30, 0, 100)
	c := openMaster(t, m.Path())
	tests := []struct {
		name     string
		req, ans []byte
	}{
		{"read holding", withCRC(1, 3, 0, 0x10, 0, 3), withCRC(1, 3, 6, 0x15, 0x18, 0x15, 0x7C, 0xFD, 0xE8)},
		{"read input", withCRC(1, 4, 1, 0, 0, 2), withCRC(1, 4, 4, 0xFF, 0xCC, 0x15, 0x1A)},
		{"write single", withCRC(1, 6, 0, 0x10, 0x14, 0xB4), withCRC(1, 6, 0, 0x10, 0x14, 0xB4)},
		{"read it back", withCRC(1, 3, 0, 0x10, 0, 1), withCRC(1, 3, 2, 0x14, 0xB4)},
		{"write multiple", withCRC(1, 0x10, 0, 0x11, 0, 2, 4, 0, 7, 0, 8), withCRC(1, 0x10, 0, 0x11, 0, 2)},
		{"unknown function", withCRC(1, 0x2B, 0x0E, 1, 0), withCRC(1, 0xAB, 1)},
		{"coils", withCRC(1, 1, 0, 0, 0, 8), withCRC(1, 0x81, 1)},
		{"no such register", withCRC(1, 3, 0, 0x12, 0, 2), withCRC(1, 0x83, 2)},
		{"no such input", withCRC(1, 4, 0, 0x10, 0, 1), withCRC(1, 0x84, 2)},
		{"count 0", withCRC(1, 3, 0, 0x10, 0, 0), withCRC(1, 0x83, 3)},
		{"count 126", withCRC(1, 3, 0, 0x10, 0, 126), withCRC(1, 0x83, 3)},
		{"byte count lies", withCRC(1, 0x10, 0, 0x10, 0, 2, 2, 0, 7), withCRC(1, 0x90, 3)},
		{"write nowhere", withCRC(1, 6, 0, 0x99, 0, 1), withCRC(1, 0x86, 2)},
		{"write read-only", withCRC(1, 6, 0, 0x31, 0, 1), withCRC(1, 0x86, 2)},
		{"write over limit", withCRC(1, 6, 0, 0x30, 0, 101), withCRC(1, 0x86, 3)},
		{"multiple over read-only", withCRC(1, 0x10, 0, 0x30, 0, 2, 4, 0, 7, 0, 8), withCRC(1, 0x90, 2)},
	}
	for _, tt := range tests {
		if got := c.ask(tt.req); !bytes.Equal(got, tt.ans) {
			t.Errorf("%s: answer % x, want % x", tt.name, got, tt.ans)
		}
	}
	if regs, _ := m.Holding(0x10, 3); !slices.Equal(regs, []uint16{5300, 7, 8}) {
		t.Errorf("holding %v", regs)
	}
	if regs, _ := m.Holding(0x30, 2); !slices.Equal(regs, []uint16{1, 2}) {
		t.Errorf("refused writes changed registers: %v", regs)
	}
	reqs := m.Requests()
	if len(reqs) != len(tests) {
		t.Fatalf("%d requests logged, want %d", len(reqs), len(tests))
	}
	if r := reqs[4]; r.Function != 0x10 || r.Address != 0x11 || r.Count != 2 || !slices.Equal(r.Values, []uint16{7, 8}) || !r.Answered || !r.IsWrite() {
		t.Errorf("logged %+v", r)
	}
	if r := reqs[7]; r.Exception != 2 {
		t.Errorf("logged %+v, want exception 2", r)
	}
}

// TestModbusIgnores: frames for other units and frames with a bad CRC get
// no answer, as on a multi-drop line; broadcasts act without answering. The
// next answer on the line is the one to the next good request.
func TestModbusIgnores(t *testing.T) {
	m := startModbus(t)
	c := openMaster(t, m.Path())
	c.send(withCRC(2, 3, 0, 0x10, 0, 1))
	bad := withCRC(1, 3, 0, 0x10, 0, 1)
	bad[7] ^= 0xFF
	c.send(bad)
	c.send(withCRC(0, 6, 0, 0x11, 0, 42)) // broadcast write
	if _, err := m.WaitRequests(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	got := c.ask(withCRC(1, 3, 0, 0x11, 0, 1))
	if want := withCRC(1, 3, 2, 0, 42); !bytes.Equal(got, want) {
		t.Errorf("answer % x, want % x", got, want)
	}
	reqs := m.Requests()
	if len(reqs) != 3 || reqs[0].Unit != 2 || reqs[0].Answered || reqs[1].Unit != 0 || reqs[1].Answered || !reqs[2].Answered {
		t.Errorf("requests %+v", reqs)
	}
}

func TestModbusFaults(t *testing.T) {
	read := withCRC(1, 3, 0, 0x10, 0, 1)
	good := withCRC(1, 3, 2, 0x15, 0x18)
	tests := []struct {
		name  string
		set   func(*Modbus)
		n     int
		check func([]byte) bool
	}{
		{"bad CRC", func(m *Modbus) { m.SetFault(ModbusBadCRC) }, 7, func(b []byte) bool {
			return len(b) == 7 && bytes.Equal(b[:5], good[:5]) && !bytes.Equal(b, good)
		}},
		{"wrong unit", func(m *Modbus) { m.SetFault(ModbusWrongUnit) }, 7, func(b []byte) bool {
			return bytes.Equal(b, withCRC(2, 3, 2, 0x15, 0x18))
		}},
		{"short", func(m *Modbus) { m.SetFault(ModbusShortFrame) }, 4, func(b []byte) bool { return bytes.Equal(b, good[:4]) }},
		{"trailing", func(m *Modbus) { m.SetFault(ModbusTrailingBytes) }, 9, func(b []byte) bool {
			return bytes.Equal(b, append(slices.Clone(good), 0, 0xFF))
		}},
		{"garbage", func(m *Modbus) { m.SetFault(ModbusGarbage) }, 7, func(b []byte) bool {
			return len(b) == len(good) && crc16(b[:5]) != binary.LittleEndian.Uint16(b[5:])
		}},
		{"exception", func(m *Modbus) { m.SetException(6) }, 5, func(b []byte) bool { return bytes.Equal(b, withCRC(1, 0x83, 6)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startModbus(t)
			c := openMaster(t, m.Path())
			tt.set(m)
			c.send(read)
			// Faulty answers cannot be sized by their content: read as
			// many bytes as the fault sends (the deadline only fires on
			// failure).
			c.f.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, tt.n)
			if _, err := io.ReadFull(c.f, got); err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("answer % x", got)
			}
		})
	}
}

func TestModbusNoAnswerAndLatency(t *testing.T) {
	m := startModbus(t)
	c := openMaster(t, m.Path())
	m.SetFault(ModbusNoAnswer)
	c.send(withCRC(1, 3, 0, 0x10, 0, 1))
	if _, err := m.WaitRequests(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	m.SetFault(ModbusNoFault)
	m.SetLatency(50 * time.Millisecond)
	start := time.Now()
	// The first answer on the line is the one to the second request.
	if got, want := c.ask(withCRC(1, 3, 0, 0x11, 0, 1)), withCRC(1, 3, 2, 0x15, 0x7C); !bytes.Equal(got, want) {
		t.Errorf("answer % x, want % x", got, want)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answer after %s, latency is 50ms", d)
	}
	if r := m.Requests(); len(r) != 2 || r[0].Answered || !r[1].Answered {
		t.Errorf("requests %+v", r)
	}
}

func TestModbusUnplugReplug(t *testing.T) {
	m := startModbus(t)
	c := openMaster(t, m.Path())
	read := withCRC(1, 3, 0, 0x10, 0, 1)
	c.ask(read)
	if err := m.Unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("path after unplug: %v", err)
	}
	if _, err := c.f.Write(read); err == nil {
		c.f.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.f.Read(make([]byte, 8)); err == nil {
			t.Error("the old port still works after unplug")
		}
	}
	if err := m.Replug(); err != nil {
		t.Fatal(err)
	}
	m.SetHolding(0x10, 5000)
	c2 := openMaster(t, m.Path())
	if got, want := c2.ask(read), withCRC(1, 3, 2, 0x13, 0x88); !bytes.Equal(got, want) {
		t.Errorf("after replug: % x, want % x", got, want)
	}
}

func TestModbusCloseEndsRun(t *testing.T) {
	m, err := NewModbus(filepath.Join(t.TempDir(), "tty"), 5)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	m.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := NewModbus(filepath.Join(t.TempDir(), "tty"), 0); err == nil {
		t.Error("unit 0 accepted")
	}
}

// mbpoll runs the independent RTU master (Debian mbpoll, on libmodbus)
// against the simulator; a missing mbpoll fails in CI and skips elsewhere.
func mbpoll(t *testing.T, m *Modbus, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, lerr := exec.LookPath("mbpoll")
	if lerr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mbpoll not found: make deps installs it")
		}
		t.Skip("mbpoll not found (make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"-m", "rtu", "-b", "19200", "-P", "none", "-0", "-1"}, args...)
	argv = append(argv, m.Path())
	cmd := exec.CommandContext(ctx, bin, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func mbpollWrite(t *testing.T, m *Modbus, args []string, values ...string) (string, error) {
	t.Helper()
	bin, _ := exec.LookPath("mbpoll")
	if bin == "" {
		mbpoll(t, m) // skips or fails
	}
	argv := append([]string{"-m", "rtu", "-b", "19200", "-P", "none", "-0", "-1"}, args...)
	argv = append(argv, m.Path())
	argv = append(argv, values...)
	out, err := exec.Command(bin, argv...).CombinedOutput()
	return string(out), err
}

var mbpollValueRE = regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(\S+)`)

// mbpollValues parses "[16]: 	5400" lines.
func mbpollValues(out string) map[int]string {
	vals := map[int]string{}
	for _, m := range mbpollValueRE.FindAllStringSubmatch(out, -1) {
		ref, _ := strconv.Atoi(m[1])
		vals[ref] = m[2]
	}
	return vals
}

func TestModbusWithMbpoll(t *testing.T) {
	m := startModbus(t)
	bits := math.Float32bits(12.5)
	m.SetHolding(0x20, uint16(bits>>16), uint16(bits)) // high word first

	out, _, err := mbpoll(t, m, "-a", "1", "-r", "16", "-t", "4", "-c", "3")
	if err != nil {
		t.Fatalf("mbpoll read: %v\n%s", err, out)
	}
	if v := mbpollValues(out); v[16] != "5400" || v[17] != "5500" || v[18] != "65000" {
		t.Errorf("mbpoll read %v\n%s", v, out)
	}
	out, _, err = mbpoll(t, m, "-a", "1", "-r", "256", "-t", "3", "-c", "2")
	if v := mbpollValues(out); err != nil || v[256] != "65484" || v[257] != "5402" {
		t.Errorf("mbpoll input read %v, %v\n%s", v, err, out)
	}
	out, _, err = mbpoll(t, m, "-a", "1", "-r", "32", "-t", "4:float", "-B")
	if v := mbpollValues(out); err != nil || v[32] != "12.5" {
		t.Errorf("mbpoll float read %v, %v\n%s", v, err, out)
	}

	m.ClearRequests()
	if out, err := mbpollWrite(t, m, []string{"-a", "1", "-r", "16", "-t", "4"}, "5300"); err != nil {
		t.Fatalf("mbpoll write: %v\n%s", err, out)
	}
	if out, err := mbpollWrite(t, m, []string{"-a", "1", "-r", "17", "-t", "4"}, "1", "2"); err != nil {
		t.Fatalf("mbpoll write: %v\n%s", err, out)
	}
	if regs, _ := m.Holding(0x10, 3); !slices.Equal(regs, []uint16{5300, 1, 2}) {
		t.Errorf("after mbpoll writes: %v", regs)
	}
	reqs := m.Requests()
	if len(reqs) != 2 || reqs[0].Function != 0x06 || reqs[1].Function != 0x10 || !slices.Equal(reqs[1].Values, []uint16{1, 2}) {
		t.Errorf("requests %+v", reqs)
	}

	// Refusals as mbpoll (libmodbus) understands them.
	if _, stderr, err := mbpoll(t, m, "-a", "1", "-r", "153", "-t", "4"); err == nil || !strings.Contains(stderr, "Illegal data address") {
		t.Errorf("illegal address: %v %q", err, stderr)
	}
	if _, stderr, err := mbpoll(t, m, "-a", "2", "-o", "0.2", "-r", "16", "-t", "4"); err == nil || !strings.Contains(stderr, "timed out") {
		t.Errorf("other unit: %v %q", err, stderr)
	}
	if r := m.Requests(); r[len(r)-1].Unit != 2 || r[len(r)-1].Answered {
		t.Errorf("request to unit 2: %+v", r[len(r)-1])
	}
	m.SetFault(ModbusBadCRC)
	if _, stderr, err := mbpoll(t, m, "-a", "1", "-r", "16", "-t", "4"); err == nil || !strings.Contains(stderr, "Invalid CRC") {
		t.Errorf("bad CRC: %v %q", err, stderr)
	}
	m.SetFault(ModbusNoFault)
	m.SetException(6)
	if _, stderr, err := mbpoll(t, m, "-a", "1", "-r", "16", "-t", "4"); err == nil || !strings.Contains(strings.ToLower(stderr), "busy") {
		t.Errorf("busy: %v %q", err, stderr)
	}
}

func TestModbusBaud(t *testing.T) {
	m := startModbus(t)
	c := openMaster(t, m.Path())
	m.SetBaud(9600)
	req, want := withCRC(1, 3, 0, 0x10, 0, 1), withCRC(1, 3, 2, 0x15, 0x18)
	start := time.Now()
	if got := c.ask(req); !bytes.Equal(got, want) {
		t.Fatalf("answer % x, want % x", got, want)
	}
	took := time.Since(start)
	// 15 characters of 10 bits at 9600 baud.
	floor := time.Duration(len(req)+len(want)) * 10 * time.Second / 9600
	if took < floor || took > floor+time.Second {
		t.Errorf("answer after %s, want the wire time %s (and not much more)", took, floor)
	}
	if in, out := m.Bytes(); in != int64(len(req)) || out != int64(len(want)) {
		t.Errorf("counted %d in, %d out; want %d, %d", in, out, len(req), len(want))
	}
}
