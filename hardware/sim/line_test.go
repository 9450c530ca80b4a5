package sim_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/serial"
	"edge/hardware/sim"
)

type runner interface {
	Run(ctx context.Context) error
	Close() error
}

// run serves a simulator until the test ends and checks Run's result.
func run(t *testing.T, s runner) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run does not return after cancel")
		}
		s.Close()
	})
}

// wire is the driver's end of the cable, at the byte level.
type wire struct {
	t    *testing.T
	port *serial.Port
}

func dial(t *testing.T, path string) *wire {
	p, err := serial.Open(serial.Config{Path: path, Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &wire{t: t, port: p}
}

// ask sends raw bytes and returns what comes back until it ends with end.
func (w *wire) ask(send, end string) string {
	w.t.Helper()
	if err := w.port.Write(context.Background(), []byte(send)); err != nil {
		w.t.Fatal(err)
	}
	out, err := w.port.ReadUntil(context.Background(), 5*time.Second, 4096, func(b []byte) bool { return bytes.HasSuffix(b, []byte(end)) })
	if err != nil {
		w.t.Fatalf("%q: %v", send, err)
	}
	return string(out)
}

// silent sends a command that gets no answer and waits until the
// simulator has taken it (skipping the commands recorded before).
func (w *wire) silent(rx <-chan string, send string) {
	w.t.Helper()
	if err := w.port.Write(context.Background(), []byte(send)); err != nil {
		w.t.Fatal(err)
	}
	want := strings.TrimRight(send, "\r\n")
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-rx:
			if strings.TrimRight(got, "\r") == want {
				return
			}
		case <-timeout:
			w.t.Fatalf("%q not received", send)
		}
	}
}

func TestSCPIWire(t *testing.T) {
	s, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	w := dial(t, s.Path())
	rx := s.Received()

	tests := []struct{ send, want string }{
		{"*IDN?\n", "ACME Instruments,SG-6000,SIM000001,2.1.0\n"},
		{":FREQ?\n", "1.000000E+09\n"},
		{"SYST:ERR?\n", "0,\"No error\"\n"},
	}
	for _, tt := range tests {
		if got := w.ask(tt.send, "\n"); got != tt.want {
			t.Fatalf("%q -> %q, want %q", tt.send, got, tt.want)
		}
	}
	// Long and short forms, optional nodes, any case, CR LF, units.
	for _, set := range []string{":FREQ 3550MHZ\n", "SOURce:FREQuency:CW 3.55 GHz\r\n", ":source:freq 3550000000\n", "FREQ 3550000KHZ\n"} {
		w.silent(rx, set)
		if got := w.ask(":SOUR:FREQ:CW?\n", "\n"); got != "3.550000E+09\n" {
			t.Fatalf("after %q: %q", set, got)
		}
	}
	w.silent(rx, ":POW:LEV:IMM:AMPL -20.5DBM\n")
	w.silent(rx, "OUTP:STAT ON\n")
	w.silent(rx, ":FREQ:MODE SWEep\n")
	for send, want := range map[string]string{":POW?\n": "-2.050000E+01\n", ":OUTP?\n": "1\n", ":FREQ:MODE?\n": "SWE\n", "*OPC?\n": "1\n"} {
		if got := w.ask(send, "\n"); got != want {
			t.Fatalf("%q -> %q, want %q", send, got, want)
		}
	}
	if s.Get("frequency") != 3.55e9 || s.Get("power") != -20.5 || s.Get("output") != true || s.Get("mode") != "SWE" {
		t.Fatal("state not kept")
	}

	// Errors go to the queue, oldest first.
	for _, bad := range []string{":FREQ 7GHZ\n", ":FREQ 3 THZ\n", ":FREQ fast\n", ":FREQ\n", ":OUTP maybe\n", ":BOGUS 1\n", "*IDN\n"} {
		w.silent(rx, bad)
	}
	for _, want := range []string{`-222,"Data out of range"`, `-131,"Invalid suffix"`, `-104,"Data type error"`, `-109,"Missing parameter"`, `-224,"Illegal parameter value"`, `-113,"Undefined header"`, `-113,"Undefined header"`, `0,"No error"`} {
		if got := w.ask("SYST:ERR:NEXT?\n", "\n"); got != want+"\n" {
			t.Fatalf("SYST:ERR? -> %q, want %q", got, want)
		}
	}
	if s.Get("frequency") != 3.55e9 {
		t.Fatal("a refused command changed the state")
	}
	// The queue holds 10; the last entry becomes "Queue overflow".
	for range 12 {
		w.silent(rx, ":BOGUS\n")
	}
	if q := s.Errors(); len(q) != 10 || q[9] != `-350,"Queue overflow"` {
		t.Fatalf("queue %q", q)
	}
	w.silent(rx, "*CLS\n")
	if q := s.Errors(); len(q) != 0 {
		t.Fatalf("queue after *CLS: %q", q)
	}
	w.silent(rx, "*RST\n")
	if s.Get("frequency") != 1e9 || s.Get("output") != false {
		t.Fatal("*RST did not reset")
	}
}

func TestSCPIFaults(t *testing.T) {
	s, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	w := dial(t, s.Path())
	rx := s.Received()

	s.SetFaults(sim.LineFaults{Garbage: true})
	if got := w.ask(":FREQ?\n", "\n"); got != "\xff\xfe#?%~\x01*!\n" {
		t.Fatalf("garbage %q", got)
	}
	s.SetFaults(sim.LineFaults{ErrorAnswer: `-221,"Settings conflict"`})
	w.silent(rx, ":FREQ 2GHZ\n")
	if got := w.ask("SYST:ERR?\n", "\n"); got != "-221,\"Settings conflict\"\n" || s.Get("frequency") != 1e9 {
		t.Fatalf("error answer %q, frequency %v", got, s.Get("frequency"))
	}
	s.SetFaults(sim.LineFaults{NoAnswer: true})
	w.silent(rx, ":FREQ?\n")
	if _, err := w.port.Read(context.Background(), make([]byte, 64), 100*time.Millisecond); !errors.Is(err, hardware.ErrTimeout) {
		t.Fatalf("NoAnswer: %v", err)
	}
	s.SetFaults(sim.LineFaults{})
	if err := s.Inject("*ESE 1"); err != nil {
		t.Fatal(err)
	}
	if got := w.ask("*IDN?\n", "2.1.0\n"); got != "*ESE 1\nACME Instruments,SG-6000,SIM000001,2.1.0\n" {
		t.Fatalf("inject %q", got)
	}
	if got := s.Faults(); got.NoAnswer || got.Garbage {
		t.Fatalf("Faults %+v", got)
	}
}

func TestModemWire(t *testing.T) {
	m, err := sim.NewModem(filepath.Join(t.TempDir(), "ttyMODEM"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	w := dial(t, m.Path())

	tests := []struct{ send, want string }{
		// Echo on (power-on default), verbose result codes.
		{"AT\r", "AT\r\r\nOK\r\n"},
		{"AT+CFUN?\r", "AT+CFUN?\r\r\n+CFUN: 1\r\n\r\nOK\r\n"},
		{"AT+CFUN=?\r", "AT+CFUN=?\r\r\n+CFUN: (0,1,4),(0-1)\r\n\r\nOK\r\n"},
		{"AT+COPS?\r", "AT+COPS?\r\r\n+COPS: 0,0,\"EdgeNet\",7\r\n\r\nOK\r\n"},
		{"AT+CFUN=7\r", "AT+CFUN=7\r\r\nERROR\r\n"},
		{"ATE0\r", "ATE0\r\r\nOK\r\n"},
		{"AT+CMEE=1\r\n", "\r\nOK\r\n"}, // LF is ignored
		{"AT+CFUN=7\r", "\r\n+CME ERROR: 50\r\n"},
		{"AT+NOPE\r", "\r\n+CME ERROR: 4\r\n"},
		{"at+cmee=2\r", "\r\nOK\r\n"},
		{"AT+CFUN=7\r", "\r\n+CME ERROR: incorrect parameters\r\n"},
		{"AT+CMEE=1\r", "\r\nOK\r\n"},
		{"AT+CFUN=4\r", "\r\nOK\r\n"},
		{"AT+COPS=0\r", "\r\n+CME ERROR: 3\r\n"},
		{"AT+COPS?\r", "\r\n+COPS: 0\r\n\r\nOK\r\n"},
		{"AT+CREG=1\r", "\r\nOK\r\n"},
		// Registration comes back: the URC follows the OK.
		{"AT+CFUN=1\r", "\r\nOK\r\n\r\n+CREG: 1\r\n"},
		{"AT+CREG?\r", "\r\n+CREG: 1,1\r\n\r\nOK\r\n"},
		{"AT+CREG=2\r", "\r\nOK\r\n"},
		{"AT+COPS=2\r", "\r\nOK\r\n\r\n+CREG: 0,\"00C3\",\"0001A2B3\",7\r\n"},
		{"AT+CGMM\r", "\r\nEM-7565\r\n\r\nOK\r\n"},
		{"ATE1\r", "\r\nOK\r\n"},
		{"AT+CSQ\r", "AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
	}
	for _, tt := range tests {
		if got := w.ask(tt.send, tt.want[len(tt.want)-6:]); got != tt.want {
			t.Fatalf("%q -> %q, want %q", tt.send, got, tt.want)
		}
	}
	if m.Get("cops") != 2 || m.Get("echo") != true || m.Get("creg") != 2 {
		t.Fatal("state not kept")
	}

	m.SetFaults(sim.LineFaults{URCs: []string{"RING"}, ErrorAnswer: "+CME ERROR: 3"})
	if got := w.ask("AT+CFUN?\r", "3\r\n"); got != "AT+CFUN?\r\r\nRING\r\n\r\n+CME ERROR: 3\r\n" {
		t.Fatalf("faults %q", got)
	}
	m.SetFaults(sim.LineFaults{Garbage: true})
	if got := w.ask("AT+CFUN?\r", "OK\r\n"); got != "AT+CFUN?\r\r\n\xff\xfe#?%~\x01*!\r\n\r\nOK\r\n" {
		t.Fatalf("garbage %q", got)
	}
	m.SetFaults(sim.LineFaults{})
	if err := m.Inject("RING"); err != nil {
		t.Fatal(err)
	}
	if got := w.ask("AT\r", "OK\r\n"); got != "\r\nRING\r\nAT\r\r\nOK\r\n" {
		t.Fatalf("inject %q", got)
	}
	if got := w.ask("ATZ\r", "OK\r\n"); !strings.HasSuffix(got, "\r\nOK\r\n") || m.Get("cops") != 0 || m.Get("cmee") != 0 {
		t.Fatalf("ATZ %q", got)
	}
}

func TestLineSimUnplugReplug(t *testing.T) {
	m, err := sim.NewModem(filepath.Join(t.TempDir(), "ttyMODEM"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	w := dial(t, m.Path())
	if got := w.ask("AT+CFUN=4\r", "OK\r\n"); !strings.HasSuffix(got, "OK\r\n") {
		t.Fatal(got)
	}
	if err := m.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := m.Inject("RING"); err == nil {
		t.Fatal("Inject while unplugged")
	}
	if _, err := w.port.Read(context.Background(), make([]byte, 16), 5*time.Second); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Read while unplugged: %v", err)
	}
	if err := m.Replug(); err != nil {
		t.Fatal(err)
	}
	// The state survived; the same path works again.
	if got := w.ask("AT+CFUN?\r", "OK\r\n"); got != "AT+CFUN?\r\r\n+CFUN: 4\r\n\r\nOK\r\n" {
		t.Fatalf("after replug %q", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Replug(); err == nil {
		t.Fatal("Replug after Close")
	}
}

func TestLineSimSetErrors(t *testing.T) {
	s, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, bad := range []struct {
		name string
		v    any
	}{{"frequency", 5}, {"mode", "STEP"}, {"colour", "red"}} {
		if err := s.Set(bad.name, bad.v); err == nil {
			t.Errorf("Set(%s, %v) accepted", bad.name, bad.v)
		}
	}
	m, err := sim.NewModem(filepath.Join(t.TempDir(), "ttyM"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Set("cfun", "1"); err == nil {
		t.Error("Set(cfun, \"1\") accepted")
	}
	if m.Get("nope") != nil || s.Get("nope") != nil {
		t.Error("Get of an unknown name")
	}
}

func TestSCPIBaud(t *testing.T) {
	s, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	w := dial(t, s.Path())
	const send, want = "*IDN?\n", "ACME Instruments,SG-6000,SIM000001,2.1.0\n"
	for _, baud := range []int{0, 9600} {
		s.SetBaud(baud)
		in0, out0 := s.Bytes()
		start := time.Now()
		if got := w.ask(send, "\n"); got != want {
			t.Fatalf("baud %d: %q -> %q, want %q", baud, send, got, want)
		}
		took := time.Since(start)
		in, out := s.Bytes()
		if in-in0 != int64(len(send)) || out-out0 != int64(len(want)) {
			t.Errorf("baud %d: counted %d in, %d out; want %d, %d", baud, in-in0, out-out0, len(send), len(want))
		}
		if baud == 0 {
			continue
		}
		// 47 characters of 10 bits at 9600 baud: 49ms on the wire.
		floor := time.Duration(len(send)+len(want)) * 10 * time.Second / time.Duration(baud)
		if took < floor || took > floor+time.Second {
			t.Errorf("baud %d: answer after %s, want the wire time %s (and not much more)", baud, took, floor)
		}
	}
}
