package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"edge/coord"
	"edge/coord/store"
	"edge/daemon/api"
	"edge/hardware"
	"edge/hardware/line"
	"edge/hardware/sim"
	"edge/internal/nettest"
	"edge/internal/prom"
	"edge/internal/prom/promtest"
)

// exposition is a parsed scrape: samples by series ("name{labels}" as
// written), and each family's HELP and TYPE.
type exposition struct {
	samples map[string]float64
	help    map[string]string
	typ     map[string]string
	order   []string // families in the order of their TYPE lines
}

func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{samples: map[string]float64{}, help: map[string]string{}, typ: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "# HELP "):
			name, help, _ := strings.Cut(strings.TrimPrefix(l, "# HELP "), " ")
			if _, dup := e.help[name]; dup {
				t.Errorf("second HELP for %s", name)
			}
			e.help[name] = help
		case strings.HasPrefix(l, "# TYPE "):
			name, typ, _ := strings.Cut(strings.TrimPrefix(l, "# TYPE "), " ")
			if _, dup := e.typ[name]; dup {
				t.Errorf("second TYPE for %s", name)
			}
			e.typ[name] = typ
			e.order = append(e.order, name)
		case l == "" || strings.HasPrefix(l, "#"):
		default:
			i := strings.LastIndexByte(l, ' ')
			if i < 0 {
				t.Fatalf("bad sample line %q", l)
			}
			v, err := strconv.ParseFloat(l[i+1:], 64)
			if err != nil {
				t.Fatalf("bad value in %q: %v", l, err)
			}
			e.samples[l[:i]] = v
		}
	}
	return e
}

// value returns a sample that must be there.
func (e exposition) value(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := e.samples[series]
	if !ok {
		t.Fatalf("no sample %s", series)
	}
	return v
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return string(b)
}

// TestMetricFamilies: the table is valid, and a scrape writes each of its
// families once, with the table's help and type, and nothing else.
func TestMetricFamilies(t *testing.T) {
	m := newMetrics("", time.Now(), nil)
	var b strings.Builder
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	e := parseExposition(t, b.String())
	if len(e.order) != len(metricFamilies) {
		t.Errorf("scrape has %d families, the table %d", len(e.order), len(metricFamilies))
	}
	for i, f := range metricFamilies {
		if err := f.Validate(); err != nil {
			t.Error(err)
		}
		if i < len(e.order) && e.order[i] != f.Name {
			t.Errorf("family %d is %s, the table says %s", i, e.order[i], f.Name)
		}
		if e.help[f.Name] != f.Help || e.help[f.Name] == "" {
			t.Errorf("%s: help %q, want %q", f.Name, e.help[f.Name], f.Help)
		}
		if e.typ[f.Name] != string(f.Kind) {
			t.Errorf("%s: type %q, want %s", f.Name, e.typ[f.Name], f.Kind)
		}
		if !strings.HasPrefix(f.Name, "edge_") && !strings.HasPrefix(f.Name, "process_") && !strings.HasPrefix(f.Name, "go_") {
			t.Errorf("%s: not an edge_ family", f.Name)
		}
	}
	// Fixed label values are there at 0 without any source.
	for _, s := range []string{
		`edge_members{status="failed"}`, `edge_raft_role{role="none"}`, `edge_changes_total{outcome="rolled_back"}`,
		`edge_raft_apply_seconds_count`, `edge_raft_quorum`,
	} {
		if _, ok := e.samples[s]; !ok {
			t.Errorf("no %s", s)
		}
	}
	if e.value(t, `edge_raft_role{role="none"}`) != 1 || e.value(t, `edge_raft_role{role="leader"}`) != 0 {
		t.Error("raft off should read role none")
	}
	promtest.Check(t, b.String())

	// A family the table lacks cannot be written.
	w := prom.NewWriter(io.Discard)
	w.Begin(family("edge_not_in_table"))
	if err := w.Flush(); err == nil {
		t.Error("a family missing from the table was written")
	}
}

// peer is a stock serf agent on loopback with the site's key: stopping it
// without a leave makes it fail.
func peer(t *testing.T, name string, key []byte) *serf.Serf {
	t.Helper()
	sc := serf.DefaultConfig()
	sc.NodeName = name
	sc.Tags = map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "test"}
	sc.Logger = slog.NewLogLogger(slog.DiscardHandler, slog.LevelInfo)
	ml := memberlist.DefaultLANConfig()
	ml.BindAddr = "127.0.0.1"
	ml.BindPort = nettest.FreePort(t)
	ml.SecretKey = key
	ml.ProbeInterval = 200 * time.Millisecond
	ml.Logger = sc.Logger
	sc.MemberlistConfig = ml
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	return s
}

// TestMetricsScrape scrapes the metrics server fed by real parts: serf
// membership on loopback, a device manager with a simulated radio in
// memory and an SCPI instrument on a pseudo-terminal driven by the line
// driver. Values follow events: a member fails, a device fails, serial
// round trips happen.
func TestMetricsScrape(t *testing.T) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// This node's membership.
	mc := coord.DefaultMembershipConfig()
	mc.NodeName = "n1"
	mc.BindAddr = "127.0.0.1"
	mc.AdvertiseAddr = netip.MustParseAddr("127.0.0.1")
	mc.Port = nettest.FreePort(t)
	mc.Key = key
	mc.SnapshotPath = filepath.Join(t.TempDir(), "serf.snapshot")
	mc.Tags = map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "test"}
	mem, err := coord.NewMembership(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	memDone := make(chan error, 1)
	go func() { memDone <- mem.Run(ctx) }()
	defer func() { cancel(); <-memDone }()
	other := peer(t, "n2", key)
	if _, err := other.Join([]string{mem.LocalAddr()}, true); err != nil {
		t.Fatal(err)
	}

	// The devices: a radio in memory that the test makes fail, and an SCPI
	// instrument on a pty.
	radio, err := sim.NewMemory("radio0", "radio")
	if err != nil {
		t.Fatal(err)
	}
	scpi, err := sim.NewSCPI(filepath.Join(t.TempDir(), "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- scpi.Run(ctx) }()
	defer func() { cancel(); <-simDone; scpi.Close() }()
	reg := hardware.NewRegistry()
	reg.Register("sim", func(context.Context, hardware.Config, *slog.Logger) (hardware.Device, error) {
		radio.Reopen()
		return radio, nil
	})
	reg.Register("line", line.Open)

	m := newMetrics("127.0.0.1:0", time.Now(), nil)
	m.members = func() []api.Member { ms, _ := mem.Members(); return ms }
	sc := hardware.SupervisorConfig{
		Interval: 50 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		BreakerAfter: 1000, BreakerCooldown: time.Second, OpTimeout: 2 * time.Second,
		Observe: m.observeExchange,
	}
	mgr, err := hardware.NewManager(sc, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.devices = mgr.Statuses
	hwDone := make(chan error, 1)
	go func() {
		hwDone <- mgr.Run(ctx, []hardware.Config{
			{Name: "radio0", Driver: "sim", Settings: hardware.Settings{"power_dbm": int64(20)}},
			{Name: "sg0", Driver: "line", Port: scpi.Path(), Profile: filepath.Join("..", "examples", "profiles", "scpi-instrument.yaml"),
				Timeout: 500 * time.Millisecond, Settings: hardware.Settings{"frequency": int64(3550)}},
		})
	}()
	defer func() { cancel(); <-hwDone }()

	if err := m.listen(); err != nil {
		t.Fatal(err)
	}
	defer m.close()
	addr := m.ln.Addr().String()
	runDone := make(chan error, 1)
	go func() { runDone <- m.run(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	// until scrapes until cond holds for the exposition, waking on the
	// parts' own change notifications (and, for suspect/failed states that
	// change without one, at the next probe).
	until := func(what string, cond func(exposition) bool) exposition {
		t.Helper()
		deadline := time.Now().Add(guard)
		for {
			e := parseExposition(t, scrape(t, addr))
			if cond(e) {
				return e
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached; samples %v", what, e.samples)
			}
			_, idx := mem.Members()
			wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			select {
			case <-mgr.Changed():
			case <-wctx.Done():
			}
			mem.Wait(wctx, idx)
			wcancel()
		}
	}
	get := func(e exposition, s string) float64 { return e.samples[s] }

	e := until("two alive, devices in sync", func(e exposition) bool {
		return get(e, `edge_members{status="alive"}`) == 2 &&
			get(e, `edge_device_in_sync{device="radio0"}`) == 1 && get(e, `edge_device_in_sync{device="sg0"}`) == 1
	})
	if get(e, `edge_members{status="failed"}`) != 0 || get(e, `edge_device_state{device="sg0",driver="line",state="ok"}`) != 1 ||
		get(e, `edge_device_state{device="sg0",driver="line",state="error"}`) != 0 {
		t.Errorf("first scrape: %v", e.samples)
	}
	rt := e.value(t, `edge_serial_roundtrip_seconds_count{device="sg0",driver="line"}`)
	if rt < 3 { // at least *IDN?, SYST:ERR? and a query
		t.Errorf("round trips %v, want at least 3", rt)
	}
	if _, ok := e.samples[`edge_serial_roundtrip_seconds_count{device="radio0",driver="sim"}`]; ok {
		t.Error("a device in memory has serial round trips")
	}
	promtest.Check(t, scrape(t, addr))

	// Round trips go on with every drift check.
	until("more round trips", func(e exposition) bool {
		return get(e, `edge_serial_roundtrip_seconds_count{device="sg0",driver="line"}`) > rt
	})

	// The instrument stops answering: timeouts are counted.
	scpi.SetFaults(sim.LineFaults{NoAnswer: true})
	until("timeouts counted", func(e exposition) bool {
		return get(e, `edge_serial_timeouts_total{device="sg0",driver="line"}`) >= 1 &&
			get(e, `edge_device_state{device="sg0",driver="line",state="degraded"}`) == 1
	})
	scpi.SetFaults(sim.LineFaults{})

	// The radio fails: its errors are counted and its state shows.
	radio.SetFaults(sim.Faults{Reject: "-222,\"Data out of range\""})
	radio.Set("power_dbm", int64(30)) // so the next check applies and fails
	e = until("radio errors counted", func(e exposition) bool {
		return get(e, `edge_device_reconcile_errors_total{device="radio0"}`) >= 1 &&
			get(e, `edge_device_state{device="radio0",driver="sim",state="error"}`) == 1
	})
	if get(e, `edge_device_drift_total{device="radio0"}`) != 1 {
		t.Errorf("drift %v, want 1", get(e, `edge_device_drift_total{device="radio0"}`))
	}

	// The other member dies without a leave: failed.
	if err := other.Shutdown(); err != nil {
		t.Fatal(err)
	}
	until("n2 failed", func(e exposition) bool {
		return get(e, `edge_members{status="failed"}`) == 1 && get(e, `edge_members{status="alive"}`) == 1
	})
	promtest.Check(t, scrape(t, addr))

	// Only GET /metrics.
	for _, c := range []struct{ method, path string }{{"POST", "/metrics"}, {"GET", "/"}, {"GET", "/metrics/x"}} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s %s answered 200", c.method, c.path)
		}
	}
}

// TestMetricsCountChanges: changes are counted once, by outcome, when they
// end after edged started; their apply time is observed once.
func TestMetricsCountChanges(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	m := newMetrics("", start, nil)
	step := func(c *store.Change, state string, at time.Time) {
		c.State = state
		c.History = append(c.History, store.Transition{State: state, Time: at})
	}
	change := func(id string, created time.Time) *store.Change {
		c := &store.Change{ID: id, Created: created}
		step(c, store.Proposed, created)
		return c
	}
	before, after := start.Add(-time.Minute), start.Add(time.Minute)

	old := change("old", before.Add(-time.Second))
	step(old, store.Applied, before)
	step(old, store.RolledBack, before) // ended before start: replayed, not counted
	late := change("late", before)
	step(late, store.Applied, after)
	step(late, store.Confirmed, after.Add(time.Second)) // ended after start: counted
	running := change("running", after)
	step(running, store.Applying, after)
	rejected := change("rejected", after)
	step(rejected, store.Rejected, after)
	st := &store.State{Changes: []*store.Change{old, late, running, rejected}}

	for range 3 { // scraped again and again: counted once
		m.countChanges(st)
	}
	want := map[string]uint64{store.Confirmed: 1, store.RolledBack: 0, store.Rejected: 1, store.Aborted: 0}
	for o, n := range want {
		if got := m.changes.With(o).Load(); got != n {
			t.Errorf("%s: %d, want %d", o, got, n)
		}
	}
	if n := m.changeApply.Count(); n != 1 {
		t.Errorf("apply times observed %d, want 1 (late only)", n)
	}

	// The running change ends; the old ones leave the bounded history.
	step(running, store.Applied, after.Add(2*time.Second))
	step(running, store.Aborted, after.Add(3*time.Second))
	st = &store.State{Changes: []*store.Change{running}}
	m.countChanges(st)
	m.countChanges(st)
	if got := m.changes.With(store.Aborted).Load(); got != 1 {
		t.Errorf("aborted %d, want 1", got)
	}
	if n := m.changeApply.Count(); n != 2 {
		t.Errorf("apply times observed %d, want 2", n)
	}
	if len(m.counted) != 1 || len(m.timed) != 1 {
		t.Errorf("bookkeeping not pruned: counted %v timed %v", m.counted, m.timed)
	}
}

// TestMetricsObserve: what the hooks count.
func TestMetricsObserve(t *testing.T) {
	m := newMetrics("", time.Now(), nil)
	m.observeApply(3*time.Millisecond, true)
	m.observeApply(time.Second, false) // never committed
	if n := m.raftApply.Count(); n != 1 {
		t.Errorf("raft applies observed %d, want 1", n)
	}
	m.observeExchange("sg0", "line", time.Millisecond, nil)
	m.observeExchange("sg0", "line", time.Millisecond, fmt.Errorf("x: %w", hardware.ErrRejected))
	m.observeExchange("sg0", "line", time.Second, fmt.Errorf("x: %w", hardware.ErrTimeout))
	m.observeExchange("sg0", "line", time.Millisecond, fmt.Errorf("x: %w", hardware.ErrDisconnected))
	if n := m.roundTrip.With("sg0", "line").Count(); n != 2 {
		t.Errorf("round trips %d, want 2 (a good and an error answer)", n)
	}
	if n := m.timeouts.With("sg0", "line").Load(); n != 1 {
		t.Errorf("timeouts %d, want 1", n)
	}
	// A device gone from the inventory leaves the exposition.
	m.devices = func() []hardware.Status { return []hardware.Status{{Name: "other", Driver: "line"}} }
	var b strings.Builder
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `device="sg0"`) {
		t.Errorf("removed device still exposed:\n%s", b.String())
	}
}

// TestMetricsAddressInUse: a metrics_address that cannot be listened on
// stops the start with an error naming the key, before anything starts.
func TestMetricsAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte("cg8StVXbQJ0gPvMd9o7yrg6W6F3X0tr6SDOmvv0X7Ug=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Node, cfg.Site, cfg.KeyFile = "n1", "test", keyFile
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Socket = shortSocketPath(t)
	cfg.AdvertiseAddr = netip.MustParseAddr("127.0.0.1")
	cfg.GossipPort = nettest.FreePort(t)
	cfg.MetricsAddress = busy.Addr().String()
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "metrics_address "+cfg.MetricsAddress+": listen tcp") || errors.Is(err, ErrConfig) {
		t.Fatalf("Run = %v, want a listen error naming metrics_address", err)
	}
	if _, err := os.Stat(cfg.Socket); err == nil {
		t.Error("the API socket was made before the start failed")
	}
	// Nothing bound the gossip port.
	l, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", cfg.GossipPort))
	if err != nil {
		t.Errorf("gossip port taken after a failed start: %v", err)
	} else {
		l.Close()
	}
}

// TestMetricsDocs keeps the Metrics section of docs/operations.md true to
// the table: every family is described, every metric it names exists, and
// its scrape config and alert rules pass promtool.
func TestMetricsDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal("docs/operations.md has no \"## Metrics\" section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	for _, f := range metricFamilies {
		if !strings.Contains(sec, "`"+f.Name+"`") && !strings.Contains(sec, "`"+f.Name+"{") && !strings.Contains(sec, f.Name+"`,") {
			t.Errorf("docs: %s is not described", f.Name)
		}
	}
	for _, name := range regexp.MustCompile(`\bedge_[a-z_]+`).FindAllString(sec, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if _, ok := familyIndex[base]; !ok {
			t.Errorf("docs name %s, which edged does not serve", name)
		}
	}
	var rules, scrapeConfig string
	for _, block := range strings.Split(sec, "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		switch {
		case strings.HasPrefix(block, "groups:"):
			rules = block
		case strings.HasPrefix(block, "scrape_configs:"):
			scrapeConfig = block
		}
	}
	if rules == "" || scrapeConfig == "" {
		t.Fatal("docs: no alert rules or no scrape config block")
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: .ci/deps.sh installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	for _, c := range []struct{ what, file, text string }{
		{"rules", "rules.yml", rules},
		{"config", "prometheus.yml", scrapeConfig},
	} {
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(p, "check", c.what, path).CombinedOutput(); err != nil {
			t.Errorf("promtool check %s on the docs' block: %v\n%s", c.what, err, out)
		}
	}
}
