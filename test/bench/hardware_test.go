package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"edge/hardware"
	"edge/hardware/line"
	"edge/hardware/modbus"
	"edge/hardware/sim"
)

// The hardware benchmarks (issue 3) need no root: the devices are the
// simulators, on ptys with the line rate emulated (sim SetBaud) or in
// memory. Each does its own repetitions; run them with
//
//	go test -run '^$' -bench Hardware -benchtime 1x ./test/bench/
//
// docs/benchmarks.md ("Hardware") says what the figures mean.

// hwReps is how many set+verify round trips each case times, after
// hwWarmup untimed ones.
const (
	hwReps   = 200
	hwWarmup = 10
)

// hwTarget: one set+verify within 1.5 times the wire-time floor, plus the
// device's own latency.
const hwTarget = 1.5

// hwCase is one device and line rate of the set+verify benchmark.
type hwCase struct {
	driver string // "line" (SCPI simulator, scpi-instrument profile) or "modbus" (rectifier profile)
	baud   int
}

func (c hwCase) name() string { return fmt.Sprintf("%s/%d", c.driver, c.baud) }

// hwRoundTrip is what one case measured.
type hwRoundTrip struct {
	hwCase
	reps int
	// bytesOp are the bytes of one set+verify, both ways, as the simulator
	// counted them.
	bytesOp float64
	// floor is bytesOp characters of 10 bits at baud.
	floor time.Duration
	// silence is the quiet the protocol makes the driver wait in one
	// set+verify (Modbus: t3.5 after each answer); 0 for the line driver.
	silence time.Duration
	// latency is the device's own latency (think time) per set+verify:
	// 0 for the simulators.
	latency       time.Duration
	p50, p99, max time.Duration
}

func (r hwRoundTrip) ratio() float64 { return float64(r.p50) / float64(r.floor) }

func (r hwRoundTrip) target() time.Duration {
	return time.Duration(hwTarget*float64(r.floor)) + r.latency
}

// hwValues alternate, so that every set changes the device.
var hwValues = map[string]struct {
	setting string
	values  [2]float64
}{
	"line":   {"frequency", [2]float64{3550, 3600}}, // MHz
	"modbus": {"float_voltage", [2]float64{54, 53.5}},
}

// BenchmarkHardwareSetVerify times one set+verify (Apply of one setting,
// then Read of it, as the reconciler does) against the simulators paced at
// the line rate, and compares it with the time its bytes take on the wire.
func BenchmarkHardwareSetVerify(b *testing.B) {
	var results []hwRoundTrip
	load := hwLoad()
	for _, c := range []hwCase{{"line", 115200}, {"line", 19200}, {"modbus", 115200}, {"modbus", 19200}} {
		b.Run(c.name(), func(b *testing.B) {
			r := hwSetVerify(b, c)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(hwMS(r.p50), "p50_ms")
			b.ReportMetric(hwMS(r.p99), "p99_ms")
			b.ReportMetric(hwMS(r.floor), "floor_ms")
			b.ReportMetric(r.ratio(), "p50/floor")
			b.ReportMetric(r.bytesOp, "bytes/op")
			results = append(results, r)
		})
	}
	if len(results) > 0 {
		fmt.Printf("\n%s\nload average: %s before, %s after\n\n", hwRoundTripTable(results), load, hwLoad())
	}
}

// hwLoad is the 1-minute load average: the figures mean little on a busy
// machine.
func hwLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// hwSetVerify opens a paced simulator and its driver and times hwReps
// set+verify round trips.
func hwSetVerify(b *testing.B, c hwCase) hwRoundTrip {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		dev   hardware.Device
		bytes func() (int64, int64)
		r     = hwRoundTrip{hwCase: c, reps: hwReps}
	)
	switch c.driver {
	case "line":
		s, err := sim.NewSCPI(filepath.Join(b.TempDir(), "ttySG"))
		if err != nil {
			b.Fatal(err)
		}
		s.SetBaud(c.baud)
		hwServe(ctx, b, s)
		prof, err := line.LoadProfile("../../examples/profiles/scpi-instrument.yaml")
		if err != nil {
			b.Fatal(err)
		}
		d, err := line.OpenProfile(ctx, hardware.Config{Name: "sg", Driver: "line", Port: s.Path(), Baud: c.baud}, prof, nil)
		if err != nil {
			b.Fatal(err)
		}
		dev, bytes = d, s.Bytes
	case "modbus":
		m, err := sim.NewModbus(filepath.Join(b.TempDir(), "ttyMB"), 1)
		if err != nil {
			b.Fatal(err)
		}
		// The rectifier's settings block, 0x0010-0x0015.
		m.SetHolding(0x10, 5400, 5600, 250, 0, uint16(0x10000-30), 0)
		m.SetBaud(c.baud)
		hwServe(ctx, b, m)
		d, err := modbus.OpenDevice(ctx, hardware.Config{Name: "rect", Driver: "modbus", Port: m.Path(), Profile: "../../examples/profiles/rectifier.yaml", Baud: c.baud, Unit: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		dev, bytes = d, m.Bytes
		// The master waits t3.5 of silence after each of the two answers
		// (Modbus over serial line 2.5.1.1: 1.75 ms above 19200 baud).
		t35 := 35 * time.Second / time.Duration(c.baud)
		if c.baud > 19200 {
			t35 = 1750 * time.Microsecond
		}
		r.silence = 2 * t35
	}
	defer dev.Close()

	v := hwValues[c.driver]
	one := func(i int) time.Duration {
		want := v.values[i%2]
		start := time.Now()
		if err := dev.Apply(ctx, hardware.Settings{v.setting: want}); err != nil {
			b.Fatalf("set %s: %v", v.setting, err)
		}
		got, err := dev.Read(ctx, []string{v.setting})
		took := time.Since(start)
		if err != nil {
			b.Fatalf("verify %s: %v", v.setting, err)
		}
		if !hardware.Equal(got[v.setting], want) {
			b.Fatalf("verify %s: read %v, set %v", v.setting, got[v.setting], want)
		}
		return took
	}
	for i := range hwWarmup {
		one(i)
	}
	in0, out0 := bytes()
	times := make([]time.Duration, hwReps)
	for i := range times {
		times[i] = one(i)
	}
	in, out := bytes()
	r.bytesOp = float64(in-in0+out-out0) / hwReps
	r.floor = time.Duration(r.bytesOp * 10 * float64(time.Second) / float64(c.baud))
	slices.Sort(times)
	r.p50, r.p99, r.max = hwPercentile(times, 0.50), hwPercentile(times, 0.99), times[len(times)-1]
	return r
}

// hwServe runs a simulator until the benchmark ends.
func hwServe(ctx context.Context, b *testing.B, s interface {
	Run(context.Context) error
	Close() error
}) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("simulator: %v", err)
		}
		s.Close()
	})
}

// hwPercentile of sorted values, nearest rank.
func hwPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func hwMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func hwRoundTripTable(rs []hwRoundTrip) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "| case | bytes/op | floor ms | device latency ms | p50 ms | p99 ms | max ms | p50/floor | target ms (1.5x floor + latency) | met | protocol silence ms | p50/(floor+silence) |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		met := "yes"
		if r.p50 > r.target() {
			met = fmt.Sprintf("no (+%.2f ms)", hwMS(r.p50-r.target()))
		}
		silence, withSilence := "-", "-"
		if r.silence > 0 {
			silence = fmt.Sprintf("%.2f", hwMS(r.silence))
			withSilence = fmt.Sprintf("%.2f", float64(r.p50)/float64(r.floor+r.silence))
		}
		fmt.Fprintf(&sb, "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s |\n",
			r.name(), r.bytesOp, hwMS(r.floor), hwMS(r.latency), hwMS(r.p50), hwMS(r.p99), hwMS(r.max), r.ratio(), hwMS(r.target()), met, silence, withSilence)
	}
	return sb.String()
}

// Reconcile benchmark: hwDevices in-memory simulated devices (the `sim`
// driver, radio and rectifier models in turn) on one hardware.Manager with
// the default supervisor config.
const (
	hwDevices = 50
	hwUpdates = 20               // changes of every device's desired settings, timed one by one
	hwSteady  = 10 * time.Second // CPU window with nothing to change (one drift-check interval)
)

// hwInventory returns the devices with their desired settings, round 0 or
// 1 (every value differs from the other round's and from the models'
// defaults, except equalize).
func hwInventory(round int) []hardware.Config {
	devs := make([]hardware.Config, hwDevices)
	for i := range devs {
		d := hardware.Config{Name: fmt.Sprintf("dev%02d", i), Driver: "sim"}
		if i%2 == 0 {
			d.Options = map[string]string{"model": "radio"}
			d.Settings = hardware.Settings{"frequency_mhz": []float64{3550, 3600}[round], "power_dbm": []float64{20, 23}[round], "enabled": true, "mode": "manual"}
		} else {
			d.Options = map[string]string{"model": "rectifier"}
			d.Settings = hardware.Settings{"float_voltage": []float64{54, 53.5}[round], "current_limit": []float64{25, 30}[round], "equalize": false}
		}
		devs[i] = d
	}
	return devs
}

// hwInSync reports whether every device of devs reads back its desired
// settings.
func hwInSync(sts []hardware.Status, devs []hardware.Config) bool {
	if len(sts) != len(devs) {
		return false
	}
	want := make(map[string]hardware.Settings, len(devs))
	for _, d := range devs {
		want[d.Name] = d.Settings
	}
	for _, st := range sts {
		w, ok := want[st.Name]
		if !ok || !st.InSync || st.State != hardware.StateOK {
			return false
		}
		for k, v := range w {
			if !hardware.Equal(v, st.Actual[k]) {
				return false
			}
		}
	}
	return true
}

// hwWaitInSync waits for every device to read back devs' settings.
func hwWaitInSync(ctx context.Context, mgr *hardware.Manager, devs []hardware.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		idx := mgr.Index()
		if hwInSync(mgr.Statuses(), devs) {
			return nil
		}
		mgr.Wait(ctx, idx)
		if ctx.Err() != nil {
			return fmt.Errorf("%d devices not in sync after 30s", hwDevices)
		}
	}
}

// hwCPU is the process's user+system CPU time so far.
func hwCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHardwareReconcile times 50 devices from Run to all in sync, then
// changes of all their desired settings (Update) to all in sync again, and
// takes the CPU of both and of hwSteady of steady state (drift checks at
// the default interval).
func BenchmarkHardwareReconcile(b *testing.B) {
	reg := hardware.NewRegistry()
	reg.Register("sim", sim.OpenMemory)
	cfg := hardware.DefaultSupervisorConfig()
	mgr, err := hardware.NewManager(cfg, reg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("manager: %v", err)
		}
	}()

	load := hwLoad()
	devs := hwInventory(0)
	cpu0, t0 := hwCPU(), time.Now()
	go func() { done <- mgr.Run(ctx, devs) }()
	if err := hwWaitInSync(ctx, mgr, devs); err != nil {
		b.Fatalf("start: %v", err)
	}
	coldTime, coldCPU := time.Since(t0), hwCPU()-cpu0

	times := make([]time.Duration, hwUpdates)
	cpu0 = hwCPU()
	for i := range times {
		devs = hwInventory((i + 1) % 2)
		t := time.Now()
		if err := mgr.Update(devs); err != nil {
			b.Fatal(err)
		}
		if err := hwWaitInSync(ctx, mgr, devs); err != nil {
			b.Fatalf("update %d: %v", i+1, err)
		}
		times[i] = time.Since(t)
	}
	updateCPU := (hwCPU() - cpu0) / hwUpdates
	slices.Sort(times)

	// The updates restarted every device's drift-check timer at once:
	// start the window half an interval later, so that it holds one
	// round of drift checks rather than sitting just before one.
	time.Sleep(cfg.Interval / 2)
	before := map[string]time.Time{}
	for _, st := range mgr.Statuses() {
		before[st.Name] = st.LastVerified
	}
	cpu0 = hwCPU()
	time.Sleep(hwSteady)
	steadyCPU := hwCPU() - cpu0
	checks := 0
	for _, st := range mgr.Statuses() {
		if st.LastVerified.After(before[st.Name]) {
			checks++
		}
	}
	if !hwInSync(mgr.Statuses(), devs) {
		b.Error("devices drifted out of sync in steady state")
	}

	steadyPct := 100 * float64(steadyCPU) / float64(hwSteady)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(hwMS(coldTime), "start_ms")
	b.ReportMetric(hwMS(coldCPU), "start_cpu_ms")
	b.ReportMetric(hwMS(hwPercentile(times, 0.5)), "update_p50_ms")
	b.ReportMetric(hwMS(hwPercentile(times, 0.99)), "update_p99_ms")
	b.ReportMetric(hwMS(updateCPU), "update_cpu_ms")
	b.ReportMetric(steadyPct, "steady_cpu_pct")
	fmt.Printf("\n| %d devices, one manager, interval %s | time | CPU (user+sys) |\n|---|---|---|\n", hwDevices, cfg.Interval)
	fmt.Printf("| Run to all in sync (open, read, apply, verify) | %.2f ms | %.2f ms |\n", hwMS(coldTime), hwMS(coldCPU))
	fmt.Printf("| Update of all desired settings to all in sync (%d times) | p50 %.2f ms, p99 %.2f ms | %.2f ms each |\n",
		hwUpdates, hwMS(hwPercentile(times, 0.5)), hwMS(hwPercentile(times, 0.99)), hwMS(updateCPU))
	fmt.Printf("| steady state, %s (%d drift checks) | - | %.1f ms = %.3f%% of one core |\n\nload average: %s before, %s after\n\n", hwSteady, checks, hwMS(steadyCPU), steadyPct, load, hwLoad())
}

func TestHardwareHelpers(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var sorted []time.Duration
	for i := 1; i <= 200; i++ {
		sorted = append(sorted, ms(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{0.5, ms(100)}, {0.99, ms(198)}, {1, ms(200)}, {0, ms(1)}} {
		if got := hwPercentile(sorted, tt.p); got != tt.want {
			t.Errorf("p%v of 1..200 ms = %s, want %s", tt.p*100, got, tt.want)
		}
	}

	devs := hwInventory(0)
	var sts []hardware.Status
	for _, d := range devs {
		sts = append(sts, hardware.Status{Name: d.Name, State: hardware.StateOK, InSync: true, Actual: d.Settings.Clone()})
	}
	if !hwInSync(sts, devs) {
		t.Error("in sync: not seen")
	}
	if hwInSync(sts, hwInventory(1)) {
		t.Error("the other round's settings: seen in sync (a stale InSync must not count)")
	}
	if hwInSync(sts[1:], devs) {
		t.Error("a device missing: seen in sync")
	}
}
