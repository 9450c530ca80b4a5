package line

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/sim"
)

var (
	scpiProfile  = filepath.Join("..", "..", "examples", "profiles", "scpi-instrument.yaml")
	modemProfile = filepath.Join("..", "..", "examples", "profiles", "at-modem.yaml")
)

// testTimeout bounds one exchange in these tests: long enough for a slow
// CI machine (and qemu), short enough for the timeout tests.
const testTimeout = 500 * time.Millisecond

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lineSim is what the tests need of a simulator.
type lineSim interface {
	Run(ctx context.Context) error
	Path() string
	SetFaults(sim.LineFaults)
	Commands() []string
	ClearCommands()
	Received() <-chan string
	Unplug() error
	Replug() error
	Close() error
}

// serve runs a simulator for the test's duration.
func serve(t *testing.T, s lineSim) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulator Run: %v", err)
		}
		s.Close()
	})
}

func newSCPI(t *testing.T) *sim.SCPI {
	s, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	return s
}

func newModem(t *testing.T) *sim.Modem {
	m, err := sim.NewModem(filepath.Join(t.TempDir(), "ttyMODEM"))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, m)
	return m
}

func openDevice(t *testing.T, port, profile string) *Device {
	t.Helper()
	dev, err := Open(context.Background(), hardware.Config{Name: "dut", Driver: "line", Port: port, Profile: profile, Timeout: testTimeout}, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev.(*Device)
}

func read(t *testing.T, dev *Device, names ...string) hardware.Settings {
	t.Helper()
	got, err := dev.Read(context.Background(), names)
	if err != nil {
		t.Fatalf("Read(%v): %v", names, err)
	}
	return got
}

// reconcile does what the reconciler does: check, read, apply only the
// difference. It returns the names applied.
func reconcile(t *testing.T, dev *Device, desired hardware.Settings) []string {
	t.Helper()
	canon, err := dev.Check(desired)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	actual := read(t, dev, canon.Names()...)
	diff := hardware.Diff(canon, actual)
	changes := hardware.Settings{}
	for _, n := range diff {
		changes[n] = canon[n]
	}
	if err := dev.Apply(context.Background(), changes); err != nil {
		t.Fatalf("Apply(%v): %v", changes, err)
	}
	return diff
}

func wantSettings(t *testing.T, got, want hardware.Settings) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if !hardware.Equal(got[k], v) {
			t.Fatalf("%s = %#v, want %#v (all: %v)", k, got[k], v, got)
		}
	}
}

func wantCommands(t *testing.T, s lineSim, want ...string) {
	t.Helper()
	if got := s.Commands(); !slices.Equal(got, want) {
		t.Fatalf("device received %q, want %q", got, want)
	}
}

func wantErr(t *testing.T, err, target error, contains ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("err = %v, want it to contain %s", err, c)
		}
	}
}

func TestSCPIApplyRead(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	// Open identified the instrument and emptied its error queue.
	wantCommands(t, s, "*IDN?", "SYST:ERR?")

	all := []string{"frequency", "power", "output", "mode"}
	wantSettings(t, read(t, dev, all...), hardware.Settings{"frequency": 1000.0, "power": -10.0, "output": false, "mode": "cw"})

	desired := hardware.Settings{"frequency": 3550, "power": -10, "output": true, "mode": "cw"}
	s.ClearCommands()
	diff := reconcile(t, dev, desired)
	if !slices.Equal(diff, []string{"frequency", "output"}) {
		t.Fatalf("diff %v", diff)
	}
	// Only the differing settings were sent, each checked in the queue.
	wantCommands(t, s, ":FREQ?", ":FREQ:MODE?", ":OUTP?", ":POW?", ":FREQ 3550MHZ", "SYST:ERR?", ":OUTP ON", "SYST:ERR?")
	if f := s.Get("frequency"); f != 3.55e9 {
		t.Fatalf("instrument frequency %v", f)
	}
	wantSettings(t, read(t, dev, all...), hardware.Settings{"frequency": 3550.0, "power": -10.0, "output": true, "mode": "cw"})

	// In sync: nothing is sent but the queries.
	s.ClearCommands()
	if diff := reconcile(t, dev, desired); len(diff) != 0 {
		t.Fatalf("second pass applied %v", diff)
	}
	wantCommands(t, s, ":FREQ?", ":FREQ:MODE?", ":OUTP?", ":POW?")

	// Enum words: the long form is sent, the short form read back.
	if err := dev.Apply(context.Background(), hardware.Settings{"mode": "sweep", "power": -20.5}); err != nil {
		t.Fatal(err)
	}
	if m := s.Get("mode"); m != "SWE" {
		t.Fatalf("instrument mode %v", m)
	}
	wantSettings(t, read(t, dev, "mode", "power"), hardware.Settings{"mode": "sweep", "power": -20.5})
}

func TestSCPIDrift(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	reconcile(t, dev, hardware.Settings{"frequency": 3550, "output": true})
	// Someone turns the knob and the switch on the front panel.
	s.Set("frequency", 3.6e9)
	s.Set("output", false)
	wantSettings(t, read(t, dev, "frequency", "output"), hardware.Settings{"frequency": 3600.0, "output": false})
	if diff := reconcile(t, dev, hardware.Settings{"frequency": 3550, "output": true}); !slices.Equal(diff, []string{"frequency", "output"}) {
		t.Fatalf("drift corrected %v", diff)
	}
	if s.Get("frequency") != 3.55e9 || s.Get("output") != true {
		t.Fatal("drift not corrected on the instrument")
	}
}

func TestSCPIRejected(t *testing.T) {
	s := newSCPI(t)
	// A profile that allows more than this instrument can do: the
	// instrument's own range check answers through the error queue.
	prof, err := LoadProfile(scpiProfile)
	if err != nil {
		t.Fatal(err)
	}
	wide := 7000.0
	prof.Settings["frequency"].Max = &wide
	dev, err := OpenProfile(context.Background(), hardware.Config{Port: s.Path(), Timeout: testTimeout}, prof, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 6500})
	wantErr(t, err, hardware.ErrRejected, `set frequency: :FREQ 6500MHZ: device refused: -222,"Data out of range"`)
	if f := s.Get("frequency"); f != 1e9 {
		t.Fatalf("instrument frequency changed to %v", f)
	}

	// Fault: every set fails with the device's message; later settings of
	// the same Apply are not sent.
	s.SetFaults(sim.LineFaults{ErrorAnswer: `-221,"Settings conflict"`})
	s.ClearCommands()
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 3550, "output": true})
	wantErr(t, err, hardware.ErrRejected, `-221,"Settings conflict"`)
	wantCommands(t, s, ":FREQ 3550MHZ", "SYST:ERR?", "SYST:ERR?")

	// Several entries are all reported, and the queue is left empty.
	s.SetFaults(sim.LineFaults{})
	s.PushError(`-310,"System error"`)
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 6500})
	wantErr(t, err, hardware.ErrRejected, `-310,"System error"; -222,"Data out of range"`)
	if q := s.Errors(); len(q) != 0 {
		t.Fatalf("queue left with %q", q)
	}
	if err := dev.Apply(context.Background(), hardware.Settings{"frequency": 3550}); err != nil {
		t.Fatalf("Apply after errors: %v", err)
	}
}

// Entries left in the queue before the driver came are not blamed on its
// first command.
func TestSCPIStaleQueue(t *testing.T) {
	s := newSCPI(t)
	s.PushError(`-113,"Undefined header"`)
	s.PushError(`-410,"Query INTERRUPTED"`)
	dev := openDevice(t, s.Path(), scpiProfile)
	if err := dev.Apply(context.Background(), hardware.Settings{"output": true}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func TestSCPITimeout(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	s.SetFaults(sim.LineFaults{NoAnswer: true})
	_, err := dev.Read(context.Background(), []string{"frequency"})
	wantErr(t, err, hardware.ErrTimeout, "read frequency: :FREQ?: no answer line")
	err = dev.Apply(context.Background(), hardware.Settings{"output": true})
	wantErr(t, err, hardware.ErrTimeout, "set output: :OUTP ON: error queue: SYST:ERR?")
	s.SetFaults(sim.LineFaults{})
	wantSettings(t, read(t, dev, "frequency"), hardware.Settings{"frequency": 1000.0})
}

// An answer that comes after the driver gave up is not taken for the
// answer to the next query.
func TestSCPILateAnswer(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	s.Set("power", 5.0)
	s.SetFaults(sim.LineFaults{Latency: testTimeout + testTimeout/2})
	_, err := dev.Read(context.Background(), []string{"power"})
	wantErr(t, err, hardware.ErrTimeout)
	s.SetFaults(sim.LineFaults{})
	// The late "5.000000E+00" arrives while the driver waits for quiet.
	wantSettings(t, read(t, dev, "frequency"), hardware.Settings{"frequency": 1000.0})
}

func TestSCPILatency(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	s.SetFaults(sim.LineFaults{Latency: testTimeout / 5})
	reconcile(t, dev, hardware.Settings{"frequency": 3550})
	wantSettings(t, read(t, dev, "frequency"), hardware.Settings{"frequency": 3550.0})
}

func TestSCPIGarbage(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	s.SetFaults(sim.LineFaults{Garbage: true})
	for _, name := range []string{"frequency", "output", "mode"} {
		_, err := dev.Read(context.Background(), []string{name})
		wantErr(t, err, hardware.ErrGarbage, "read "+name, strconv.Quote("\xff\xfe#?%~\x01*!"))
	}
	s.SetFaults(sim.LineFaults{})
	wantSettings(t, read(t, dev, "mode"), hardware.Settings{"mode": "cw"})
}

func TestSCPIUnplugReplug(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	reconcile(t, dev, hardware.Settings{"frequency": 3550})

	if err := s.Unplug(); err != nil {
		t.Fatal(err)
	}
	_, err := dev.Read(context.Background(), []string{"frequency"})
	wantErr(t, err, hardware.ErrDisconnected)
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 3600})
	wantErr(t, err, hardware.ErrDisconnected)

	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	s.ClearCommands()
	// The same Device recovers by itself, and checks it is talking to the
	// same kind of instrument before anything else.
	wantSettings(t, read(t, dev, "frequency"), hardware.Settings{"frequency": 3550.0})
	wantCommands(t, s, "*IDN?", "SYST:ERR?", ":FREQ?")

	// Unplugged and back between two calls: no error at all.
	if err := s.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	wantSettings(t, read(t, dev, "frequency"), hardware.Settings{"frequency": 3550.0})

	// Another model plugged in: refused, not reconfigured.
	if err := s.Unplug(); err != nil {
		t.Fatal(err)
	}
	s.Set("idn", "OtherCorp,SA-1,1,1.0")
	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	s.ClearCommands()
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 3600})
	wantErr(t, err, ErrWrongDevice, `*IDN? answered "OtherCorp,SA-1,1,1.0"`)
	wantCommands(t, s, "*IDN?")
}

func TestSCPIWrongDevice(t *testing.T) {
	s := newSCPI(t)
	s.Set("idn", "OtherCorp,SA-1,1,1.0")
	_, err := Open(context.Background(), hardware.Config{Port: s.Path(), Profile: scpiProfile, Timeout: testTimeout}, nil)
	wantErr(t, err, ErrWrongDevice, "scpi-instrument.yaml wants ^ACME Instruments,SG-6000,")
	// The port was released.
	dev := openDevice(t, func() string { s.Set("idn", "ACME Instruments,SG-6000,2,1.0"); return s.Path() }(), scpiProfile)
	dev.Close()
}

func TestCloseUnblocks(t *testing.T) {
	s := newSCPI(t)
	prof, err := LoadProfile(scpiProfile)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := OpenProfile(context.Background(), hardware.Config{Port: s.Path(), Timeout: time.Hour}, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFaults(sim.LineFaults{NoAnswer: true})
	s.ClearCommands()
	done := make(chan error, 1)
	go func() {
		_, err := dev.Read(context.Background(), []string{"frequency"})
		done <- err
	}()
	<-s.Received() // the query is out: the driver waits for its answer
	dev.Close()
	select {
	case err := <-done:
		wantErr(t, err, hardware.ErrDisconnected)
	case <-time.After(10 * time.Second):
		t.Fatal("Close does not interrupt a Read")
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestContextBoundsExchange(t *testing.T) {
	s := newSCPI(t)
	prof, err := LoadProfile(scpiProfile)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := OpenProfile(context.Background(), hardware.Config{Port: s.Path(), Timeout: time.Hour}, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s.SetFaults(sim.LineFaults{NoAnswer: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = dev.Read(ctx, []string{"frequency"})
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, hardware.ErrTimeout) {
		t.Fatalf("Read = %v, want the context's deadline", err)
	}
}

func TestDeviceCheckPlanUnknown(t *testing.T) {
	s := newSCPI(t)
	dev := openDevice(t, s.Path(), scpiProfile)
	plan, err := dev.Plan(hardware.Settings{"output": true, "frequency": 3550})
	if err != nil || !slices.Equal(plan, []string{":FREQ 3550MHZ", ":OUTP ON"}) {
		t.Fatalf("Plan = %q, %v", plan, err)
	}
	_, err = dev.Check(hardware.Settings{"frequency": 9000})
	wantErr(t, err, hardware.ErrInvalid, "frequency: 9000 MHz is out of range")
	s.ClearCommands()
	_, err = dev.Read(context.Background(), []string{"frequency", "colour"})
	wantErr(t, err, hardware.ErrInvalid, "colour: unknown setting")
	err = dev.Apply(context.Background(), hardware.Settings{"frequency": 9000})
	wantErr(t, err, hardware.ErrInvalid)
	// Nothing reached the device.
	wantCommands(t, s)
}

func TestModemApplyRead(t *testing.T) {
	m := newModem(t)
	dev := openDevice(t, m.Path(), modemProfile)
	wantCommands(t, m, "AT+CMEE=1", "AT+CGMM")

	// Echo is on (the modem's default): skipped. The write-only echo
	// setting is unknown until applied.
	all := []string{"functionality", "operator_selection", "registration_urc", "echo"}
	wantSettings(t, read(t, dev, all...), hardware.Settings{"functionality": "full", "operator_selection": "automatic", "registration_urc": "off"})

	desired := hardware.Settings{"functionality": "airplane", "operator_selection": "automatic", "registration_urc": "on", "echo": false}
	m.ClearCommands()
	diff := reconcile(t, dev, desired)
	if !slices.Equal(diff, []string{"echo", "functionality", "registration_urc"}) {
		t.Fatalf("diff %v", diff)
	}
	wantCommands(t, m, "AT+CFUN?", "AT+COPS?", "AT+CREG?", "AT+CFUN=4", "AT+CREG=1", "ATE0")
	if m.Get("cfun") != 4 || m.Get("creg") != 1 || m.Get("echo") != false {
		t.Fatalf("modem state cfun=%v creg=%v echo=%v", m.Get("cfun"), m.Get("creg"), m.Get("echo"))
	}
	wantSettings(t, read(t, dev, all...), desired)

	// With AT+CREG=1 the modem reports registration changes by itself:
	// the +CREG: 1 that follows the OK of AT+CFUN=1 is dropped.
	if err := dev.Apply(context.Background(), hardware.Settings{"functionality": "full"}); err != nil {
		t.Fatal(err)
	}
	wantSettings(t, read(t, dev, "functionality", "registration_urc"), hardware.Settings{"functionality": "full", "registration_urc": "on"})

	// Drift behind the driver's back.
	m.Set("cfun", 0)
	wantSettings(t, read(t, dev, "functionality"), hardware.Settings{"functionality": "minimum"})
}

func TestModemRejected(t *testing.T) {
	m := newModem(t)
	dev := openDevice(t, m.Path(), modemProfile)
	if err := dev.Apply(context.Background(), hardware.Settings{"functionality": "minimum"}); err != nil {
		t.Fatal(err)
	}
	// Automatic operator selection with the radio off: not allowed.
	err := dev.Apply(context.Background(), hardware.Settings{"operator_selection": "automatic"})
	wantErr(t, err, hardware.ErrRejected, "set operator_selection: AT+COPS=0: device refused: +CME ERROR: 3")

	m.SetFaults(sim.LineFaults{ErrorAnswer: "ERROR"})
	_, err = dev.Read(context.Background(), []string{"functionality"})
	wantErr(t, err, hardware.ErrRejected, "AT+CFUN?: device refused: ERROR")
	m.SetFaults(sim.LineFaults{})
	wantSettings(t, read(t, dev, "functionality"), hardware.Settings{"functionality": "minimum"})
}

func TestModemURCAndEcho(t *testing.T) {
	m := newModem(t)
	dev := openDevice(t, m.Path(), modemProfile)
	if err := dev.Apply(context.Background(), hardware.Settings{"registration_urc": "location"}); err != nil {
		t.Fatal(err)
	}
	// URCs among every answer, after the echo and before the information
	// lines, in both +CREG forms.
	m.SetFaults(sim.LineFaults{URCs: []string{"RING", "+CREG: 1", `+CREG: 5,"00C3","0001A2B3",7`}})
	wantSettings(t, read(t, dev, "functionality", "registration_urc"), hardware.Settings{"functionality": "full", "registration_urc": "location"})
	// URCs while idle: stale input before the next command.
	for range 3 {
		if err := m.Inject("RING"); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.Apply(context.Background(), hardware.Settings{"functionality": "airplane", "echo": false}); err != nil {
		t.Fatal(err)
	}
	wantSettings(t, read(t, dev, "functionality"), hardware.Settings{"functionality": "airplane"})
	// The modem resets (echo back on) behind the driver's back.
	m.Set("echo", true)
	wantSettings(t, read(t, dev, "functionality"), hardware.Settings{"functionality": "airplane"})
}

func TestModemTimeoutGarbage(t *testing.T) {
	m := newModem(t)
	dev := openDevice(t, m.Path(), modemProfile)
	m.SetFaults(sim.LineFaults{NoAnswer: true})
	_, err := dev.Read(context.Background(), []string{"functionality"})
	wantErr(t, err, hardware.ErrTimeout, "AT+CFUN?: no final result code")

	m.SetFaults(sim.LineFaults{Garbage: true})
	_, err = dev.Read(context.Background(), []string{"functionality"})
	wantErr(t, err, hardware.ErrGarbage, "read functionality", strconv.Quote("\xff\xfe#?%~\x01*!"))

	m.SetFaults(sim.LineFaults{})
	wantSettings(t, read(t, dev, "functionality"), hardware.Settings{"functionality": "full"})
}

func TestModemUnplugReplug(t *testing.T) {
	m := newModem(t)
	dev := openDevice(t, m.Path(), modemProfile)
	if err := dev.Apply(context.Background(), hardware.Settings{"echo": false, "functionality": "airplane"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Unplug(); err != nil {
		t.Fatal(err)
	}
	_, err := dev.Read(context.Background(), []string{"functionality"})
	wantErr(t, err, hardware.ErrDisconnected)
	m.Set("echo", true) // the modem rebooted while away
	m.Set("cmee", 0)
	if err := m.Replug(); err != nil {
		t.Fatal(err)
	}
	m.ClearCommands()
	got := read(t, dev, "functionality", "echo")
	// Init again (AT+CMEE=1 was forgotten), and the echo value written
	// before is no longer known.
	wantSettings(t, got, hardware.Settings{"functionality": "airplane"})
	wantCommands(t, m, "AT+CMEE=1", "AT+CGMM", "AT+CFUN?")
	if m.Get("cmee") != 1 {
		t.Fatal("init not sent again after replug")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(context.Background(), hardware.Config{Name: "x", Port: "/dev/null"}, nil)
	if err == nil || err.Error() != "line /dev/null: no profile" {
		t.Fatalf("Open without a profile = %v", err)
	}
	_, err = Open(context.Background(), hardware.Config{Name: "x", Port: filepath.Join(t.TempDir(), "ttyNONE"), Profile: scpiProfile}, nil)
	wantErr(t, err, hardware.ErrDisconnected)
	_, err = Open(context.Background(), hardware.Config{Name: "x", Port: "/dev/null", Profile: filepath.Join(t.TempDir(), "none.yaml")}, nil)
	if err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("Open with a missing profile = %v", err)
	}
	// A silent device: Open fails with a timeout, and releases the port.
	s := newSCPI(t)
	s.SetFaults(sim.LineFaults{NoAnswer: true})
	_, err = Open(context.Background(), hardware.Config{Port: s.Path(), Profile: scpiProfile, Timeout: 100 * time.Millisecond}, nil)
	wantErr(t, err, hardware.ErrTimeout, "identify: *IDN?")
	s.SetFaults(sim.LineFaults{})
	openDevice(t, s.Path(), scpiProfile)
}
