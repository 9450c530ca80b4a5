package hardware_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/sim"
)

func fastConfig() hardware.SupervisorConfig {
	return hardware.SupervisorConfig{
		Interval:        time.Hour, // drift checks only when poked
		MinBackoff:      5 * time.Millisecond,
		MaxBackoff:      20 * time.Millisecond,
		BreakerAfter:    3,
		BreakerCooldown: 50 * time.Millisecond,
		OpTimeout:       200 * time.Millisecond,
	}
}

// registry whose "sim" driver hands out the given devices by name.
func registry(devs map[string]*sim.Memory) *hardware.Registry {
	r := hardware.NewRegistry()
	r.Register("sim", func(_ context.Context, cfg hardware.Config, _ *slog.Logger) (hardware.Device, error) {
		m := devs[cfg.Name]
		m.Reopen()
		return m, nil
	})
	return r
}

func newMem(t *testing.T, name, model string) *sim.Memory {
	t.Helper()
	m, err := sim.NewMemory(name, model)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runSup(t *testing.T, cfg hardware.SupervisorConfig, reg *hardware.Registry, dev hardware.Config) *hardware.Supervisor {
	t.Helper()
	s, err := hardware.NewSupervisor(cfg, reg, dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// waitStatus waits on status-change events until cond holds.
func waitStatus(t *testing.T, s *hardware.Supervisor, what string, cond func(hardware.Status) bool) hardware.Status {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := s.Changed()
		st := s.Status()
		if cond(st) {
			return st
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not reached; status %+v", what, st)
		}
	}
}

var radio = hardware.Settings{"frequency_mhz": 3550.0, "power_dbm": int64(20), "enabled": true, "mode": "auto"}

func TestSupervisorAppliesOnlyTheDifferenceAndVerifies(t *testing.T) {
	m := newMem(t, "r0", "radio")
	m.Set("mode", "auto") // already right: must not be sent
	s := runSup(t, fastConfig(), registry(map[string]*sim.Memory{"r0": m}), hardware.Config{Name: "r0", Driver: "sim", Settings: radio})
	st := waitStatus(t, s, "in sync", func(st hardware.Status) bool { return st.State == hardware.StateOK && st.InSync })
	applied := m.Applied()
	if len(applied) != 1 {
		t.Fatalf("applied %v, want one change", applied)
	}
	if _, sent := applied[0]["mode"]; sent || len(applied[0]) != 3 {
		t.Errorf("applied %v: want only the 3 differing settings", applied[0])
	}
	if st.LastVerified.IsZero() || st.Actual["frequency_mhz"] != 3550.0 {
		t.Errorf("status %+v", st)
	}
}

func TestSupervisorDrift(t *testing.T) {
	for _, mode := range []string{"correct", "report"} {
		t.Run(mode, func(t *testing.T) {
			m := newMem(t, "r0", "radio")
			s := runSup(t, fastConfig(), registry(map[string]*sim.Memory{"r0": m}), hardware.Config{Name: "r0", Driver: "sim", Settings: radio, OnDrift: mode})
			waitStatus(t, s, "in sync", func(st hardware.Status) bool { return st.InSync })
			m.Set("power_dbm", int64(30)) // someone at the front panel
			s.Poke()
			if mode == "correct" {
				waitStatus(t, s, "corrected", func(st hardware.Status) bool { return st.InSync && len(m.Applied()) == 2 })
				if got := m.Get("power_dbm"); !hardware.Equal(got, int64(20)) {
					t.Errorf("power %v after correction", got)
				}
				return
			}
			st := waitStatus(t, s, "drift reported", func(st hardware.Status) bool { return !st.InSync })
			if len(st.Drift) != 1 || st.Drift[0] != (hardware.Drift{Setting: "power_dbm", Desired: "20", Actual: "30"}) {
				t.Errorf("drift %+v", st.Drift)
			}
			if st.State != hardware.StateOK || len(m.Applied()) != 1 {
				t.Errorf("report mode touched the device or marked it unhealthy: %+v, applied %v", st, m.Applied())
			}
		})
	}
}

func TestSupervisorFaultsAndRecovery(t *testing.T) {
	tests := []struct {
		name   string
		fault  sim.Faults
		state  string
		errSub string
	}{
		{"unplugged", sim.Faults{Disconnected: true}, hardware.StateDisconnected, "disconnected"},
		{"no answer", sim.Faults{Timeout: true}, hardware.StateDegraded, "timeout"},
		{"garbage", sim.Faults{Garbage: true}, hardware.StateDegraded, "garbage"},
		{"error answer", sim.Faults{Reject: "-222,\"Data out of range\""}, hardware.StateError, "Data out of range"},
		{"ignores writes", sim.Faults{Ignore: true}, hardware.StateError, "did not take the value"},
		{"slow", sim.Faults{Latency: time.Hour}, hardware.StateDegraded, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMem(t, "r0", "radio")
			m.SetFaults(tt.fault)
			s := runSup(t, fastConfig(), registry(map[string]*sim.Memory{"r0": m}), hardware.Config{Name: "r0", Driver: "sim", Settings: radio})
			st := waitStatus(t, s, "failing", func(st hardware.Status) bool { return st.State == tt.state && st.LastError != "" })
			if !strings.Contains(st.LastError, tt.errSub) {
				t.Errorf("last error %q, want %q", st.LastError, tt.errSub)
			}
			// The breaker opens after repeated failures...
			waitStatus(t, s, "breaker open", func(st hardware.Status) bool { return st.BreakerOpen })
			// ...and the device recovers by itself once the fault is gone.
			m.SetFaults(sim.Faults{})
			st = waitStatus(t, s, "recovered", func(st hardware.Status) bool { return st.State == hardware.StateOK && st.InSync })
			if st.LastError != "" || st.BreakerOpen || st.Failures != 0 {
				t.Errorf("after recovery: %+v", st)
			}
		})
	}
}

func TestOneFailingDeviceNeverStallsAnother(t *testing.T) {
	slow := newMem(t, "slow", "radio")
	slow.SetFaults(sim.Faults{Latency: time.Hour})
	fine := newMem(t, "fine", "rectifier")
	reg := registry(map[string]*sim.Memory{"slow": slow, "fine": fine})
	cfg := fastConfig()
	cfg.OpTimeout = time.Hour // the slow device blocks its own supervisor for good
	mgr, err := hardware.NewManager(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- mgr.Run(ctx, []hardware.Config{
			{Name: "slow", Driver: "sim", Settings: radio},
			{Name: "fine", Driver: "sim", Settings: hardware.Settings{"float_voltage": 54.0}},
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitManager(t, mgr, "fine in sync", func(sts []hardware.Status) bool {
		for _, st := range sts {
			if st.Name == "fine" {
				return st.InSync
			}
		}
		return false
	})
}

func waitManager(t *testing.T, mgr *hardware.Manager, what string, cond func([]hardware.Status) bool) []hardware.Status {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := mgr.Changed()
		sts := mgr.Statuses()
		if cond(sts) {
			return sts
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not reached; %+v", what, sts)
		}
	}
}

func TestManagerUpdate(t *testing.T) {
	a, b := newMem(t, "a", "radio"), newMem(t, "b", "rectifier")
	reg := registry(map[string]*sim.Memory{"a": a, "b": b})
	mgr, err := hardware.NewManager(fastConfig(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx, []hardware.Config{{Name: "a", Driver: "sim", Settings: radio}}) }()
	defer func() {
		cancel()
		<-done
	}()
	byName := func(sts []hardware.Status, n string) (hardware.Status, bool) {
		for _, st := range sts {
			if st.Name == n {
				return st, true
			}
		}
		return hardware.Status{}, false
	}
	waitManager(t, mgr, "a in sync", func(s []hardware.Status) bool { st, ok := byName(s, "a"); return ok && st.InSync })

	// Add b, change a's desired power: no restart of a, b starts.
	next := radio.Clone()
	next["power_dbm"] = int64(25)
	if err := mgr.Update([]hardware.Config{{Name: "a", Driver: "sim", Settings: next}, {Name: "b", Driver: "sim", Settings: hardware.Settings{"equalize": true}}}); err != nil {
		t.Fatal(err)
	}
	waitManager(t, mgr, "both in sync", func(s []hardware.Status) bool {
		sa, _ := byName(s, "a")
		sb, ok := byName(s, "b")
		return ok && sb.InSync && sa.InSync && hardware.Equal(a.Get("power_dbm"), int64(25))
	})
	// Remove a.
	if err := mgr.Update([]hardware.Config{{Name: "b", Driver: "sim", Settings: hardware.Settings{"equalize": true}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := byName(mgr.Statuses(), "a"); ok {
		t.Error("a still listed after removal")
	}
	// Unknown drivers are refused and change nothing.
	if err := mgr.Update([]hardware.Config{{Name: "x", Driver: "nope"}}); err == nil || !strings.Contains(err.Error(), `unknown driver "nope"`) {
		t.Errorf("unknown driver: %v", err)
	}
	if _, ok := byName(mgr.Statuses(), "b"); !ok {
		t.Error("a refused update removed b")
	}
}

func TestEqualAndDiff(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{int64(5), 5.0, true},
		{54.0, 54.00000000001, true},
		{54.0, 54.01, false},
		{"a", "a", true},
		{"5", int64(5), false},
		{true, true, true},
		{[]string{"a", "b"}, []string{"a", "b"}, true},
		{[]string{"a"}, []string{"b"}, false},
		{nil, nil, true},
	}
	for _, tt := range tests {
		if got := hardware.Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%v, %v) = %v", tt.a, tt.b, got)
		}
	}
	d := hardware.Diff(hardware.Settings{"a": 1.0, "b": "x", "c": true}, hardware.Settings{"a": int64(1), "b": "y"})
	if strings.Join(d, ",") != "b,c" {
		t.Errorf("Diff = %v", d)
	}
}

// TestSupervisorCounters: failed attempts add to Errors; a drift away from
// settings the device had reached adds one to Drifts per departure (not per
// check), in both on_drift modes.
func TestSupervisorCounters(t *testing.T) {
	for _, mode := range []string{"correct", "report"} {
		t.Run(mode, func(t *testing.T) {
			m := newMem(t, "r0", "radio")
			m.SetFaults(sim.Faults{Timeout: true})
			s := runSup(t, fastConfig(), registry(map[string]*sim.Memory{"r0": m}), hardware.Config{Name: "r0", Driver: "sim", Settings: radio, OnDrift: mode})
			waitStatus(t, s, "two failed attempts", func(st hardware.Status) bool { return st.Errors >= 2 })
			m.SetFaults(sim.Faults{})
			st := waitStatus(t, s, "in sync", func(st hardware.Status) bool { return st.InSync })
			errs := st.Errors
			if st.Drifts != 0 {
				t.Errorf("first apply counted as drift: %+v", st)
			}
			m.Set("power_dbm", int64(30))
			s.Poke()
			st = waitStatus(t, s, "one drift", func(st hardware.Status) bool { return st.Drifts == 1 })
			// Check again: in report mode the drift is still there, in
			// correct mode it was corrected; neither is a new drift.
			s.Poke()
			st = waitStatus(t, s, "checked again", func(st2 hardware.Status) bool { return st2.LastVerified.After(st.LastVerified) })
			if st.Drifts != 1 {
				t.Errorf("drifts %d after a second check, want 1", st.Drifts)
			}
			if mode == "correct" {
				// A second departure is a second drift.
				m.Set("power_dbm", int64(31))
				s.Poke()
				waitStatus(t, s, "second drift", func(st hardware.Status) bool { return st.Drifts == 2 && st.InSync })
			}
			if st := s.Status(); st.Errors != errs {
				t.Errorf("errors %d, want %d: no attempt failed since", st.Errors, errs)
			}
		})
	}
}

// TestSupervisorObserve: the supervisor hands SupervisorConfig.Observe to
// the driver in its Config, naming the device and its driver.
func TestSupervisorObserve(t *testing.T) {
	type seen struct {
		device, driver string
		took           time.Duration
		err            error
	}
	got := make(chan seen, 16)
	cfg := fastConfig()
	cfg.Observe = func(device, driver string, took time.Duration, err error) { got <- seen{device, driver, took, err} }
	r := hardware.NewRegistry()
	m := newMem(t, "sg0", "radio")
	r.Register("serialish", func(_ context.Context, c hardware.Config, _ *slog.Logger) (hardware.Device, error) {
		if c.Observe == nil {
			return nil, errors.New("no observer handed over")
		}
		c.Observe(3*time.Millisecond, nil)
		c.Observe(time.Second, hardware.ErrTimeout)
		return m, nil
	})
	runSup(t, cfg, r, hardware.Config{Name: "sg0", Driver: "serialish"})
	for _, want := range []seen{{"sg0", "serialish", 3 * time.Millisecond, nil}, {"sg0", "serialish", time.Second, hardware.ErrTimeout}} {
		select {
		case s := <-got:
			if s != want {
				t.Errorf("observed %+v, want %+v", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no exchange observed")
		}
	}
}
