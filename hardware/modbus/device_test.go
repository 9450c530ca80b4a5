package modbus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/sim"
)

// rig is a driver talking to a simulated rectifier over a real pty.
type rig struct {
	sim *sim.Modbus
	dev *Device
}

// rectifierRegisters loads the example profile's registers into a sim.
func rectifierRegisters(m *sim.Modbus) {
	m.SetHolding(0x10, 5350, 5600, 250, 0, 0xFFB8, 1) // 53.5 V, 56 V, 25 A, off, -7.2, load
	m.SetHolding(0x20, 0x8800, 0x453B)                // 3000.5 W, low word first
	m.SetReadOnly(0x20, 0x21)
	m.SetInput(0x100, 0xFFCC, 5402, 123) // -5.2 C, 54.02 V, 12.3 A
	m.SetInput(0x110, 0x0012, 0xD687)    // 123456.7 kWh
}

// startRectifier runs a simulated rectifier (unit 1, the example profile's
// registers) on a pseudo-terminal until the test ends.
func startRectifier(t *testing.T, dir string) *sim.Modbus {
	t.Helper()
	m, err := sim.NewModbus(filepath.Join(dir, "ttyRECT"), 1)
	if err != nil {
		t.Fatal(err)
	}
	rectifierRegisters(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
		m.Close()
	})
	return m
}

func newRig(t *testing.T, profile string, unit int) *rig {
	t.Helper()
	dir := t.TempDir()
	m := startRectifier(t, dir)
	if profile == "" {
		profile = exampleProfile
	} else if !strings.HasSuffix(profile, ".yaml") {
		path := filepath.Join(dir, "profile.yaml")
		if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
		profile = path
	}
	d, err := OpenDevice(context.Background(), hardware.Config{
		Name: "rect", Driver: "modbus", Port: m.Path(), Profile: profile,
		Unit: unit, Timeout: 200 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &rig{sim: m, dev: d}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var rectifierActual = hardware.Settings{
	"float_voltage":       53.5,
	"equalize_voltage":    56.0,
	"current_limit":       25.0,
	"equalize":            false,
	"temp_compensation":   -7.2,
	"lvd_mode":            "load",
	"rated_power":         3000.5,
	"battery_temperature": -5.2,
	"output_voltage":      54.02,
	"output_current":      12.3,
	"energy":              123456.7,
}

func TestReadAllInFewRequests(t *testing.T) {
	r := newRig(t, "", 1)
	got, err := r.dev.Read(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := hardware.Diff(rectifierActual, got); len(d) > 0 || len(got) != len(rectifierActual) {
		t.Errorf("read %v\nwant %v (differ: %v)", got, rectifierActual, d)
	}
	var reqs []string
	for _, q := range r.sim.Requests() {
		reqs = append(reqs, (Request{Function: q.Function, Address: q.Address, Count: q.Count}).String())
	}
	want := []string{"read 0x0010..0x0015", "read 0x0020..0x0021", "read input 0x0100..0x0102", "read input 0x0110..0x0111"}
	if !slices.Equal(reqs, want) {
		t.Errorf("requests %q, want %q", reqs, want)
	}
}

func TestReadSome(t *testing.T) {
	r := newRig(t, "", 1)
	got, err := r.dev.Read(ctxT(t), []string{"energy", "float_voltage"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["energy"] != 123456.7 || got["float_voltage"] != 53.5 {
		t.Errorf("read %v", got)
	}
	if n := len(r.sim.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if _, err := r.dev.Read(ctxT(t), []string{"voltage"}); !errors.Is(err, hardware.ErrInvalid) || !strings.Contains(err.Error(), "voltage: invalid setting: unknown setting") {
		t.Errorf("unknown setting: %v", err)
	}
}

func TestApplyReadBackEqual(t *testing.T) {
	r := newRig(t, "", 1)
	ctx := ctxT(t)
	desired := hardware.Settings{
		"float_voltage": "54.01 V", "equalize_voltage": 56.4, "current_limit": int64(42),
		"equalize": true, "temp_compensation": -7.5, "lvd_mode": "Battery",
	}
	canon, err := r.dev.Check(desired)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Apply(ctx, canon); err != nil {
		t.Fatal(err)
	}
	got, err := r.dev.Read(ctx, canon.Names())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range canon {
		// Exactly equal: canonical values are what a read returns.
		if got[name] != want {
			t.Errorf("%s: read back %#v, want %#v", name, got[name], want)
		}
	}
	regs, _ := r.sim.Holding(0x10, 6)
	if want := []uint16{5401, 5640, 420, 1, 0xFFB5, 2}; !slices.Equal(regs, want) {
		t.Errorf("registers %v, want %v", regs, want)
	}
}

// TestOnlyDifferencesWritten does what the reconciler does (read, diff,
// apply the difference) and checks that only differing registers are
// written, each with one request.
func TestOnlyDifferencesWritten(t *testing.T) {
	r := newRig(t, "", 1)
	ctx := ctxT(t)
	desired, err := r.dev.Check(hardware.Settings{
		"float_voltage": 53.5, "equalize_voltage": 56.0, "current_limit": 30, "equalize": false, "lvd_mode": "battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	actual, err := r.dev.Read(ctx, desired.Names())
	if err != nil {
		t.Fatal(err)
	}
	diff := hardware.Diff(desired, actual)
	if !slices.Equal(diff, []string{"current_limit", "lvd_mode"}) {
		t.Fatalf("diff %v", diff)
	}
	changes := hardware.Settings{}
	for _, n := range diff {
		changes[n] = desired[n]
	}
	r.sim.ClearRequests()
	if err := r.dev.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	var writes []sim.ModbusRequest
	for _, q := range r.sim.Requests() {
		if q.IsWrite() {
			writes = append(writes, q)
		}
	}
	if len(writes) != 2 || writes[0].Address != 0x12 || writes[0].Values[0] != 300 || writes[0].Function != WriteSingleRegister ||
		writes[1].Address != 0x15 || writes[1].Values[0] != 2 {
		t.Errorf("writes %+v, want 0x0012=300 and 0x0015=2 (function 06)", writes)
	}
	if len(r.sim.Requests()) != 2 {
		t.Errorf("requests %+v: Apply should only write", r.sim.Requests())
	}
}

func TestThirtyTwoBitWritesUseFunction16(t *testing.T) {
	prof := "write_multiple: false\nsettings:\n" +
		"  limit:\n    register: 0x40\n    type: int32\n    word_order: little\n" +
		"  setpoint:\n    register: 0x42\n    type: float32\n" +
		"  small:\n    register: 0x44\n    type: uint16\n"
	r := newRig(t, prof, 1)
	r.sim.SetHolding(0x40, 0, 0, 0, 0, 0)
	ctx := ctxT(t)
	if err := r.dev.Apply(ctx, hardware.Settings{"limit": -123456, "setpoint": 12.5, "small": 7}); err != nil {
		t.Fatal(err)
	}
	regs, _ := r.sim.Holding(0x40, 5)
	if want := []uint16{0x1DC0, 0xFFFE, 0x4148, 0, 7}; !slices.Equal(regs, want) {
		t.Errorf("registers %04x, want %04x", regs, want)
	}
	var fns []byte
	for _, q := range r.sim.Requests() {
		fns = append(fns, q.Function)
	}
	if !slices.Equal(fns, []byte{0x10, 0x10, 0x06}) {
		t.Errorf("functions %v, want 16, 16, 6", fns)
	}
	got, err := r.dev.Read(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["limit"] != -123456.0 || got["setpoint"] != 12.5 || got["small"] != 7.0 {
		t.Errorf("read back %v", got)
	}
	if n := len(r.sim.Requests()); n != 4 {
		t.Errorf("%d requests, want 4 (one read of 0x0040..0x0044)", n)
	}
}

func TestDriftIsSeenAndCorrected(t *testing.T) {
	r := newRig(t, "", 1)
	ctx := ctxT(t)
	desired, _ := r.dev.Check(hardware.Settings{"float_voltage": 54, "equalize": true})
	if err := r.dev.Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}
	// Someone at the front panel changes the float voltage.
	r.sim.SetHolding(0x10, 5000)
	actual, err := r.dev.Read(ctx, desired.Names())
	if err != nil {
		t.Fatal(err)
	}
	if d := hardware.Diff(desired, actual); !slices.Equal(d, []string{"float_voltage"}) || actual["float_voltage"] != 50.0 {
		t.Fatalf("after drift: read %v, diff %v", actual, d)
	}
	if err := r.dev.Apply(ctx, hardware.Settings{"float_voltage": desired["float_voltage"]}); err != nil {
		t.Fatal(err)
	}
	if regs, _ := r.sim.Holding(0x10, 1); regs[0] != 5400 {
		t.Errorf("register 0x0010 = %d after correction", regs[0])
	}
}

func TestPlan(t *testing.T) {
	r := newRig(t, "settings:\n  a:\n    register: 0x40\n    type: uint32\n  b:\n    register: 0x10\n    type: int16\n    scale: 0.01\n", 1)
	lines, err := r.dev.Plan(hardware.Settings{"a": 100000, "b": -1.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"write 0x0010 = 65386", "write 0x0040 = 1, 34464"}
	if !slices.Equal(lines, want) {
		t.Errorf("plan %q, want %q", lines, want)
	}
	ex := newRig(t, "", 1)
	lines, err = ex.dev.Plan(hardware.Settings{"float_voltage": 54})
	if err != nil || !slices.Equal(lines, []string{"write 0x0010 = 5400"}) {
		t.Errorf("plan %q, %v", lines, err)
	}
	if len(ex.sim.Requests()) != 0 || len(r.sim.Requests()) != 0 {
		t.Error("Plan talked to the device")
	}
}

func TestCheckRefuses(t *testing.T) {
	r := newRig(t, "", 1)
	_, err := r.dev.Check(hardware.Settings{
		"float_voltage": 60, "battery_temperature": 20, "rated_power": 100, "colour": "red", "lvd_mode": "off",
	})
	if !errors.Is(err, hardware.ErrInvalid) {
		t.Fatalf("error %v", err)
	}
	for _, want := range []string{
		"float_voltage: invalid setting: 60 is above the maximum 58 V",
		"battery_temperature: invalid setting: read-only (input register 0x0100)",
		"rated_power: invalid setting: read-only (holding register 0x0020)",
		"colour: invalid setting: unknown setting (profile ../../examples/profiles/rectifier.yaml has ",
		`lvd_mode: invalid setting: want one of disabled|load|battery, got "off"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Nothing invalid reaches the device.
	if err := r.dev.Apply(ctxT(t), hardware.Settings{"float_voltage": 54, "current_limit": 1000}); !errors.Is(err, hardware.ErrInvalid) {
		t.Errorf("Apply: %v", err)
	}
	if n := len(r.sim.Requests()); n != 0 {
		t.Errorf("%d requests after an invalid Apply", n)
	}
}

func TestExceptions(t *testing.T) {
	r := newRig(t, "settings:\n  fv:\n    register: 0x10\n    type: uint16\n  ghost:\n    register: 0x99\n    type: uint16\n", 1)
	ctx := ctxT(t)
	_, err := r.dev.Read(ctx, []string{"ghost"})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "modbus unit 1: read 0x0099: exception 2 (illegal data address)" {
		t.Errorf("read: %v", err)
	}
	err = r.dev.Apply(ctx, hardware.Settings{"ghost": 1})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "ghost: modbus unit 1: write 0x0099: exception 2 (illegal data address)" {
		t.Errorf("write: %v", err)
	}
	r.sim.SetLimit(0x10, 4200, 5800)
	err = r.dev.Apply(ctx, hardware.Settings{"fv": 6000})
	if !errors.Is(err, hardware.ErrRejected) || err.Error() != "fv: modbus unit 1: write 0x0010: exception 3 (illegal data value)" {
		t.Errorf("write out of the device's range: %v", err)
	}
	var ex *Exception
	if !errors.As(err, &ex) || ex.Code != 3 || ex.Function != WriteSingleRegister {
		t.Errorf("errors.As: %+v", ex)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*sim.Modbus)
		wantErr error
		msg     string
	}{
		{"no answer", func(m *sim.Modbus) { m.SetFault(sim.ModbusNoAnswer) }, hardware.ErrTimeout, "modbus unit 1: read 0x0010..0x0015: timeout: no answer within 200ms"},
		{"garbage", func(m *sim.Modbus) { m.SetFault(sim.ModbusGarbage) }, hardware.ErrGarbage, "modbus unit 1: read 0x0010..0x0015: garbage answer: bad CRC"},
		{"bad CRC", func(m *sim.Modbus) { m.SetFault(sim.ModbusBadCRC) }, hardware.ErrGarbage, "bad CRC"},
		{"wrong unit", func(m *sim.Modbus) { m.SetFault(sim.ModbusWrongUnit) }, hardware.ErrGarbage, "answer from unit 2, want 1"},
		{"short frame", func(m *sim.Modbus) { m.SetFault(sim.ModbusShortFrame) }, hardware.ErrGarbage, "short frame: 14 bytes"},
		{"trailing bytes", func(m *sim.Modbus) { m.SetFault(sim.ModbusTrailingBytes) }, hardware.ErrGarbage, "2 more bytes right after the frame"},
		{"busy", func(m *sim.Modbus) { m.SetException(6) }, hardware.ErrRejected, "modbus unit 1: read 0x0010..0x0015: exception 6 (server device busy)"},
		{"slow", func(m *sim.Modbus) { m.SetLatency(400 * time.Millisecond) }, hardware.ErrTimeout, "no answer within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "", 1)
			ctx := ctxT(t)
			names := []string{"float_voltage", "equalize_voltage", "current_limit", "equalize", "temp_compensation", "lvd_mode"}
			tt.set(r.sim)
			_, err := r.dev.Read(ctx, names)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want %v with %q", err, tt.wantErr, tt.msg)
			}
			t.Log(err)
			// The fault goes away: the driver recovers by itself. A late
			// answer to the failed request may still be on its way; it must
			// never pass for the answer to a later one.
			r.sim.SetFault(sim.ModbusNoFault)
			r.sim.SetException(0)
			r.sim.SetLatency(0)
			r.sim.SetHolding(0x10, 5355)
			for i := 0; ; i++ {
				got, err := r.dev.Read(ctx, []string{"float_voltage"})
				if err == nil {
					if got["float_voltage"] != 53.55 {
						t.Fatalf("after the fault: read %v", got)
					}
					break
				}
				if i == 5 {
					t.Fatalf("no recovery: %v", err)
				}
			}
		})
	}
}

func TestOtherUnitIsIgnored(t *testing.T) {
	r := newRig(t, "", 2) // the sim is unit 1
	_, err := r.dev.Read(ctxT(t), []string{"float_voltage"})
	if !errors.Is(err, hardware.ErrTimeout) || !strings.Contains(err.Error(), "modbus unit 2: read 0x0010: timeout") {
		t.Fatalf("error %v", err)
	}
	reqs := r.sim.Requests()
	if len(reqs) != 1 || reqs[0].Unit != 2 || reqs[0].Answered {
		t.Errorf("requests %+v", reqs)
	}
}

func TestUnplugReplug(t *testing.T) {
	r := newRig(t, "", 1)
	ctx := ctxT(t)
	names := []string{"float_voltage"}
	if _, err := r.dev.Read(ctx, names); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.Unplug(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := r.dev.Read(ctx, names)
		if !errors.Is(err, hardware.ErrDisconnected) {
			t.Fatalf("read %d while unplugged: %v, want ErrDisconnected", i, err)
		}
		t.Logf("unplugged: %v", err)
	}
	if err := r.dev.Apply(ctx, hardware.Settings{"float_voltage": 54}); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("apply while unplugged: %v", err)
	}
	if err := r.sim.Replug(); err != nil {
		t.Fatal(err)
	}
	// No reopen call: the next exchange finds the port again.
	got, err := r.dev.Read(ctx, names)
	if err != nil {
		t.Fatalf("after replug: %v", err)
	}
	if got["float_voltage"] != 53.5 {
		t.Errorf("after replug: %v", got)
	}
	if err := r.dev.Apply(ctx, hardware.Settings{"float_voltage": 54}); err != nil {
		t.Fatalf("apply after replug: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	r := newRig(t, "", 1)
	if err := r.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dev.Read(ctxT(t), nil); !errors.Is(err, hardware.ErrDisconnected) {
		t.Errorf("read after close: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  hardware.Config
		want string
	}{
		{"no profile", hardware.Config{Name: "r", Port: "/dev/null"}, "modbus r: no profile"},
		{"no port", hardware.Config{Name: "r", Profile: exampleProfile}, "modbus r: no port"},
		{"unit", hardware.Config{Name: "r", Port: "/dev/null", Profile: exampleProfile, Unit: 248}, "unit 248 out of range 1-247"},
		{"bad profile", hardware.Config{Name: "r", Port: "/dev/null", Profile: filepath.Join(dir, "none.yaml")}, "modbus profile"},
		{"missing port", hardware.Config{Name: "r", Port: filepath.Join(dir, "ttyUSB9"), Profile: exampleProfile}, "disconnected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(context.Background(), tt.cfg, nil)
			if err == nil {
				d.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	mk := func(table Table, addr uint16, typ Type) *Setting {
		return &Setting{Name: "s" + string(rune('a'+addr%26)), Table: table, Address: addr, Type: typ}
	}
	settings := []*Setting{
		mk(Holding, 12, Uint16), mk(Holding, 10, Uint32), mk(Holding, 13, Uint16), // 10..13
		mk(Holding, 15, Uint16),                       // gap at 14
		mk(Input, 13, Uint16), mk(Input, 14, Float32), // another table
		mk(Holding, 100, Uint32), mk(Holding, 102, Uint32), // 100..103
	}
	type g struct {
		table        Table
		start, count int
	}
	collect := func(max int) []g {
		var out []g
		for _, x := range groups(settings, max) {
			out = append(out, g{x.table, int(x.start), x.count})
		}
		return out
	}
	if got, want := collect(125), []g{{Holding, 10, 4}, {Holding, 15, 1}, {Holding, 100, 4}, {Input, 13, 3}}; !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	// A 32-bit value is never split across reads.
	if got, want := collect(3), []g{{Holding, 10, 3}, {Holding, 13, 1}, {Holding, 15, 1}, {Holding, 100, 2}, {Holding, 102, 2}, {Input, 13, 3}}; !slices.Equal(got, want) {
		t.Errorf("groups of 3 %v, want %v", got, want)
	}
	// 200 contiguous registers: two reads.
	var many []*Setting
	for i := range 200 {
		many = append(many, &Setting{Name: "r", Address: uint16(i), Type: Uint16})
	}
	if gs := groups(many, 125); len(gs) != 2 || gs[0].count != 125 || gs[1].count != 75 {
		t.Errorf("200 registers: %+v", gs)
	}
}
