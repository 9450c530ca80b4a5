package modbus

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"edge/hardware"
)

// Interop tests against an independent Modbus implementation: pymodbus
// (Debian python3-pymodbus + python3-serial-asyncio) as the slave, on one
// end of a socat pty pair. `make deps` installs them; a missing tool fails
// in CI and skips elsewhere.

// need finds a command, or skips (fails in CI).
func need(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	missing(t, name+" not found")
	return ""
}

func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: make deps installs it", what)
	}
	t.Skipf("%s (make deps installs it)", what)
}

// linesUntil reads lines from r until match returns true, within timeout
// (a watchdog, not a synchronisation: it only fires on failure).
func linesUntil(t *testing.T, r *bufio.Reader, timeout time.Duration, match func(string) bool) []string {
	t.Helper()
	type result struct {
		lines []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				lines = append(lines, strings.TrimRight(line, "\n"))
				if match(lines[len(lines)-1]) {
					ch <- result{lines, nil}
					return
				}
			}
			if err != nil {
				ch <- result{lines, err}
				return
			}
		}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("read: %v after %q", res.err, res.lines)
		}
		return res.lines
	case <-time.After(timeout):
		t.Fatalf("nothing matching after %s", timeout)
	}
	return nil
}

var ptyRE = regexp.MustCompile(`PTY is (/dev/pts/\d+)`)

// socatPair starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and returns
// its two ends, once socat printed them.
func socatPair(t *testing.T) (string, string) {
	t.Helper()
	cmd := exec.Command(need(t, "socat"), "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	r := bufio.NewReader(stderr)
	var ptys []string
	linesUntil(t, r, 10*time.Second, func(line string) bool {
		if m := ptyRE.FindStringSubmatch(line); m != nil {
			ptys = append(ptys, m[1])
		}
		return len(ptys) == 2
	})
	go io.Copy(io.Discard, r) // socat keeps logging; never block it
	return ptys[0], ptys[1]
}

// pySlave is the pymodbus slave of test/interop/modbus_slave.py.
type pySlave struct {
	t     *testing.T
	stdin io.Writer
	out   *bufio.Reader
}

type specEntry struct {
	Addr  int    `json:"addr"`
	Type  string `json:"type"`
	Value any    `json:"value"`
	Order string `json:"order,omitempty"`
}

func startPymodbus(t *testing.T, port string, unit int, spec map[string][]specEntry) *pySlave {
	t.Helper()
	python := "/usr/bin/python3" // Debian's, with python3-pymodbus; not a pyenv one
	if _, err := os.Stat(python); err != nil {
		missing(t, python+" not found")
	}
	if out, err := exec.Command(python, "-c", "import pymodbus, serial_asyncio").CombinedOutput(); err != nil {
		missing(t, "python3-pymodbus or python3-serial-asyncio missing: "+strings.TrimSpace(string(out)))
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../test/interop/modbus_slave.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script, port, strconv.Itoa(unit), string(js))
	cmd.Stderr = &testLog{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the script exits at the end of stdin
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	s := &pySlave{t: t, stdin: stdin, out: bufio.NewReader(stdout)}
	lines := linesUntil(t, s.out, 20*time.Second, func(l string) bool { return l == "ready" || strings.HasPrefix(l, "error") })
	if last := lines[len(lines)-1]; last != "ready" {
		t.Fatalf("pymodbus slave: %s", last)
	}
	return s
}

// testLog passes the script's stderr (pymodbus logs) to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(b []byte) (int, error) {
	l.t.Logf("pymodbus: %s", strings.TrimSpace(string(b)))
	return len(b), nil
}

// dump returns the registers pymodbus holds, by table and wire address.
func (s *pySlave) dump() map[string]map[string]uint16 {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, "dump\n"); err != nil {
		s.t.Fatal(err)
	}
	lines := linesUntil(s.t, s.out, 10*time.Second, func(string) bool { return true })
	var out map[string]map[string]uint16
	if err := json.Unmarshal([]byte(lines[0]), &out); err != nil {
		s.t.Fatalf("dump %q: %v", lines[0], err)
	}
	return out
}

func (s *pySlave) set(table string, addr, value int) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, "set "+table+" "+strconv.Itoa(addr)+" "+strconv.Itoa(value)+"\n"); err != nil {
		s.t.Fatal(err)
	}
	if l := linesUntil(s.t, s.out, 10*time.Second, func(string) bool { return true }); l[0] != "ok" {
		s.t.Fatalf("set: %s", l[0])
	}
}

// rectifierSpec is the example rectifier's registers, encoded by Python.
var rectifierSpec = map[string][]specEntry{
	"hr": {
		{Addr: 0x10, Type: "uint16", Value: 5350},
		{Addr: 0x11, Type: "uint16", Value: 5600},
		{Addr: 0x12, Type: "uint16", Value: 250},
		{Addr: 0x13, Type: "uint16", Value: 0},
		{Addr: 0x14, Type: "int16", Value: -72},
		{Addr: 0x15, Type: "uint16", Value: 1},
		{Addr: 0x20, Type: "float32", Value: 3000.5, Order: "little"},
		{Addr: 0x40, Type: "int32", Value: 0, Order: "little"},
		{Addr: 0x42, Type: "float32", Value: 0},
	},
	"ir": {
		{Addr: 0x100, Type: "int16", Value: -52},
		{Addr: 0x101, Type: "uint16", Value: 5402},
		{Addr: 0x102, Type: "uint16", Value: 123},
		{Addr: 0x110, Type: "uint32", Value: 1234567, Order: "big"},
	},
}

// TestPymodbusSlave: what edge writes is what pymodbus holds, what
// pymodbus holds (encoded by Python's struct) is what edge reads, and an
// illegal address becomes a clear ErrRejected.
func TestPymodbusSlave(t *testing.T) {
	ours, theirs := socatPair(t)
	slave := startPymodbus(t, theirs, 1, rectifierSpec)
	ctx := ctxT(t)

	dev, err := OpenDevice(ctx, hardware.Config{Name: "rect", Port: ours, Profile: exampleProfile, Unit: 1, Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	got, err := dev.Read(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range rectifierActual {
		if got[name] != want {
			t.Errorf("read %s = %#v, want %#v", name, got[name], want)
		}
	}

	desired, err := dev.Check(hardware.Settings{
		"float_voltage": 54.0, "equalize_voltage": 56.4, "current_limit": 42.5,
		"equalize": true, "temp_compensation": -7.5, "lvd_mode": "battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}
	hr := slave.dump()["hr"]
	for addr, want := range map[string]uint16{"16": 5400, "17": 5640, "18": 425, "19": 1, "20": 65461, "21": 2, "32": 0x8800, "33": 0x453B} {
		if hr[addr] != want {
			t.Errorf("pymodbus holds %d at %s, want %d", hr[addr], addr, want)
		}
	}
	back, err := dev.Read(ctx, desired.Names())
	if err != nil {
		t.Fatal(err)
	}
	if d := hardware.Diff(desired, back); len(d) > 0 {
		t.Errorf("read back differs in %v: %v", d, back)
	}

	// Drift behind our back.
	slave.set("hr", 0x10, 5000)
	if back, err := dev.Read(ctx, []string{"float_voltage"}); err != nil || back["float_voltage"] != 50.0 {
		t.Errorf("after drift: %v, %v", back, err)
	}
	dev.Close()

	// 32-bit writes (function 16) and illegal addresses, with a profile of
	// its own.
	prof := filepath.Join(t.TempDir(), "extra.yaml")
	os.WriteFile(prof, []byte("settings:\n"+
		"  limit:\n    register: 0x40\n    type: int32\n    word_order: little\n"+
		"  setpoint:\n    register: 0x42\n    type: float32\n"+
		"  ghost:\n    register: 0x99\n    type: uint16\n"+
		"  ghost_input:\n    register: 0x99\n    type: uint16\n    table: input\n"), 0o644)
	dev2, err := OpenDevice(ctx, hardware.Config{Name: "x", Port: ours, Profile: prof, Unit: 1, Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev2.Close()
	if err := dev2.Apply(ctx, hardware.Settings{"limit": -123456, "setpoint": 12.5}); err != nil {
		t.Fatal(err)
	}
	hr = slave.dump()["hr"]
	// -123456 = 0xFFFE1DC0, low word first; 12.5 = 0x41480000.
	for addr, want := range map[string]uint16{"64": 0x1DC0, "65": 0xFFFE, "66": 0x4148, "67": 0} {
		if hr[addr] != want {
			t.Errorf("pymodbus holds 0x%04x at %s, want 0x%04x", hr[addr], addr, want)
		}
	}
	if back, err := dev2.Read(ctx, []string{"limit", "setpoint"}); err != nil || back["limit"] != -123456.0 || back["setpoint"] != 12.5 {
		t.Errorf("read back %v, %v", back, err)
	}
	_, err = dev2.Read(ctx, []string{"ghost"})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "modbus unit 1: read 0x0099: exception 2 (illegal data address)" {
		t.Errorf("read of an illegal address: %v", err)
	}
	_, err = dev2.Read(ctx, []string{"ghost_input"})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "modbus unit 1: read input 0x0099: exception 2 (illegal data address)" {
		t.Errorf("read of an illegal input address: %v", err)
	}
	err = dev2.Apply(ctx, hardware.Settings{"ghost": 7})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "ghost: modbus unit 1: write 0x0099: exception 2 (illegal data address)" {
		t.Errorf("write to an illegal address: %v", err)
	}
	// And the line still works after the exceptions.
	if _, err := dev2.Read(ctx, []string{"limit"}); err != nil {
		t.Errorf("after exceptions: %v", err)
	}
}

// TestPymodbusOtherUnit: pymodbus (ignore_missing_slaves) keeps quiet for
// a unit it does not have, as a multi-drop line does: a timeout.
func TestPymodbusOtherUnit(t *testing.T) {
	ours, theirs := socatPair(t)
	startPymodbus(t, theirs, 1, rectifierSpec)
	ctx := ctxT(t)
	dev, err := OpenDevice(ctx, hardware.Config{Name: "rect", Port: ours, Profile: exampleProfile, Unit: 2, Timeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_, err = dev.Read(ctx, []string{"float_voltage"})
	if !errors.Is(err, hardware.ErrTimeout) {
		t.Errorf("read from unit 2: %v, want a timeout", err)
	}
}
