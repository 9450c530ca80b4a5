package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/hardware/sim"
	"edge/internal/prom/promtest"
	"edge/test/lab"
)

// metricsPort is where the lab's nodes serve GET /metrics in this test.
const metricsPort = 9464

// scrapeFrom fetches GET /metrics of node at its site address from inside
// the namespace of node from, as a Prometheus on the site network would.
func scrapeFrom(t *testing.T, l *lab.Lab, from, node string) string {
	t.Helper()
	addr := netip.AddrPortFrom(mustNode(t, l, node).Addr, metricsPort).String()
	var body []byte
	var status string
	var ctype string
	err := l.Do(from, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return err
		}
		if err := req.Write(c); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status, ctype = resp.Status, resp.Header.Get("Content-Type")
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		t.Fatalf("scrape %s from %s: %v", addr, from, err)
	}
	if status != "200 OK" || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Fatalf("scrape %s: %s (%s): %s", addr, status, ctype, body)
	}
	return string(body)
}

// TestMetricsOnTheLab: three nodes serve GET /metrics on their site
// address; node1 also drives an SCPI instrument (line driver) and a Modbus
// rectifier on pseudo-terminals. The scrapes agree with the site: three
// members alive, one leader, a change moves the generation and the change
// counters on every node, serial round trips are counted, and promtool
// finds nothing to say. A failed node shows as failed; a reload that moves
// metrics_address is refused until a restart.
func TestMetricsOnTheLab(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	scpi, err := sim.NewSCPI(filepath.Join(dir, "ttySG"))
	if err != nil {
		t.Fatal(err)
	}
	rect, err := sim.NewModbus(filepath.Join(dir, "ttyRECT"), 1)
	if err != nil {
		t.Fatal(err)
	}
	rect.SetHolding(0x10, 5400, 5600, 250, 0, uint16(0x10000-30), 0) // the settings block
	for _, s := range []interface{ Run(context.Context) error }{scpi, rect} {
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("simulator: %v", err)
			}
		})
	}
	t.Cleanup(func() { scpi.Close(); rect.Close() })
	profiles, err := filepath.Abs(filepath.Join("..", "..", "examples", "profiles"))
	if err != nil {
		t.Fatal(err)
	}

	l := newLab(t, 3, func(c *lab.Config) { c.Extra = lab.SimDevices; c.MetricsPort = metricsPort })
	keepLogs(t, l)
	all := names(l)
	waitAll(t, l, all, 20*time.Second, "all 3 alive", exactly(all...))

	// node1 gets the serial devices by a reload.
	n1 := mustNode(t, l, "node1")
	conf, err := os.ReadFile(n1.Config)
	if err != nil {
		t.Fatal(err)
	}
	serialDevs := fmt.Sprintf(`  - name: sg0
    driver: line
    port: %s
    profile: %s
    timeout: 500ms
    settings: {frequency: 3550}
  - name: rect1
    driver: modbus
    port: %s
    profile: %s
    unit: 1
    settings: {float_voltage: 54.0}
`, scpi.Path(), filepath.Join(profiles, "scpi-instrument.yaml"), rect.Path(), filepath.Join(profiles, "rectifier.yaml"))
	if err := os.WriteFile(n1.Config, append(conf, serialDevs...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(n1.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitDevices(t, l, "node1", 20*time.Second, "serial devices in sync", func(m map[string]api.Device) bool {
		return len(m) == 4 && m["sg0"].InSync && m["rect1"].InSync && m["radio0"].InSync
	})
	for _, n := range all {
		leaderOf(t, l, n)
	}
	b := settle(t, l)

	// Every node as the others see it.
	before := map[string]map[string]float64{}
	leaders := 0
	for _, n := range all {
		text := scrapeFrom(t, l, "node1", n)
		s := samples(t, text)
		before[n] = s
		if s[`edge_members{status="alive"}`] != 3 || s[`edge_members{status="failed"}`] != 0 {
			t.Errorf("%s: members alive %v failed %v, want 3 and 0", n, s[`edge_members{status="alive"}`], s[`edge_members{status="failed"}`])
		}
		leaders += int(s[`edge_raft_role{role="leader"}`])
		if s[`edge_raft_quorum`] != 1 || s[`edge_raft_voters`] != 3 || s[`edge_config_generation`] != float64(b.gen) {
			t.Errorf("%s: quorum %v voters %v generation %v, want 1, 3, %d", n, s[`edge_raft_quorum`], s[`edge_raft_voters`], s[`edge_config_generation`], b.gen)
		}
		if s[`edge_device_state{device="radio0",driver="sim",state="ok"}`] != 1 || s[`edge_device_in_sync{device="rect0"}`] != 1 {
			t.Errorf("%s: sim devices not shown ok and in sync", n)
		}
		// The node's own release (make build stamps it; not this test's).
		version := statusUntil(t, l, n, 10*time.Second, "status", func(api.Status) bool { return true }).Node.Version
		if s[`edge_build_info{version="`+version+`",goversion="`+goVersion(t, text)+`"}`] != 1 {
			t.Errorf("%s: no build info for version %s", n, version)
		}
	}
	if leaders != 1 {
		t.Errorf("%d nodes say they lead, want exactly 1", leaders)
	}
	s1 := before["node1"]
	for _, series := range []string{
		`edge_serial_roundtrip_seconds_count{device="sg0",driver="line"}`,
		`edge_serial_roundtrip_seconds_count{device="rect1",driver="modbus"}`,
	} {
		if s1[series] <= 0 {
			t.Errorf("node1: %s = %v, want round trips", series, s1[series])
		}
	}
	if s1[`edge_device_state{device="rect1",driver="modbus",state="ok"}`] != 1 {
		t.Error("node1: rect1 not ok")
	}
	promtest.Check(t, scrapeFrom(t, l, "node2", "node1"))

	// A change, made on node2: every node counts it and moves.
	doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 27}}`)
	out, stderr, code := edgectlRetry(t, l, "node2", "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--json")
	if code != 0 {
		t.Fatalf("apply: exit %d: %s%s", code, stderr, out)
	}
	ch := decode[api.Change](t, "apply --json", out)
	if ch.State != "confirmed" {
		t.Fatalf("apply: %s", describeChange(ch))
	}
	for _, n := range all {
		statusUntil(t, l, n, 20*time.Second, fmt.Sprintf("generation %d confirmed and applied", ch.Gen), func(s api.Status) bool {
			return s.Config != nil && s.Config.Generation == ch.Gen && s.Config.Applied == ch.Gen
		})
		s := samples(t, scrapeFrom(t, l, "node3", n))
		if s[`edge_config_generation`] != float64(ch.Gen) || s[`edge_config_applied_generation`] != float64(ch.Gen) {
			t.Errorf("%s: generation %v applied %v, want %d", n, s[`edge_config_generation`], s[`edge_config_applied_generation`], ch.Gen)
		}
		if got, was := s[`edge_changes_total{outcome="confirmed"}`], before[n][`edge_changes_total{outcome="confirmed"}`]; got != was+1 {
			t.Errorf("%s: confirmed changes %v, want %v", n, got, was+1)
		}
		if s[`edge_change_apply_seconds_count`] != before[n][`edge_change_apply_seconds_count`]+1 {
			t.Errorf("%s: change apply times %v, want one more than %v", n, s[`edge_change_apply_seconds_count`], before[n][`edge_change_apply_seconds_count`])
		}
		// Every target reports its progress through raft.
		if s[`edge_raft_apply_seconds_count`] <= before[n][`edge_raft_apply_seconds_count`] {
			t.Errorf("%s: raft apply count %v, was %v: no commit observed", n, s[`edge_raft_apply_seconds_count`], before[n][`edge_raft_apply_seconds_count`])
		}
		if s[`edge_raft_commit_index`] <= before[n][`edge_raft_commit_index`] || s[`edge_raft_applied_index`] == 0 {
			t.Errorf("%s: commit index %v (was %v), applied %v", n, s[`edge_raft_commit_index`], before[n][`edge_raft_commit_index`], s[`edge_raft_applied_index`])
		}
	}

	// A reload that moves metrics_address: refused until a restart, the
	// old address keeps serving.
	conf, err = os.ReadFile(n1.Config)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(string(conf), fmt.Sprintf(":%d\"", metricsPort), ":9465\"", 1)
	if moved == string(conf) {
		t.Fatalf("no metrics_address in node1's config:\n%s", conf)
	}
	if err := os.WriteFile(n1.Config, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(n1.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n1.Log, 10*time.Second, "keys=[metrics_address]")
	scrapeFrom(t, l, "node2", "node1")

	// node3 dies: the others count it failed.
	if err := l.Kill("node3"); err != nil {
		t.Fatal(err)
	}
	waitAll(t, l, []string{"node1", "node2"}, 20*time.Second, "node3 failed", status("node3", api.StatusFailed))
	for _, n := range []string{"node1", "node2"} {
		s := samples(t, scrapeFrom(t, l, "node1", n))
		if s[`edge_members{status="failed"}`] != 1 || s[`edge_members{status="alive"}`] != 2 {
			t.Errorf("%s: alive %v failed %v after node3 died, want 2 and 1", n, s[`edge_members{status="alive"}`], s[`edge_members{status="failed"}`])
		}
	}
}

// goVersion returns the goversion label of edge_build_info in a scrape.
func goVersion(t *testing.T, text string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, `goversion="`)
	if !ok {
		t.Fatal("no edge_build_info goversion")
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// TestMetricsUnderSystemd: the hardened unit as shipped lets edged listen
// on metrics_address and read its own /proc figures.
func TestMetricsUnderSystemd(t *testing.T) {
	l := newLab(t, 1, nil)
	keepLogs(t, l)
	p := startPID1(t, l, "sd1")
	addr := netip.AddrPortFrom(mustNode(t, l, "sd1").Addr, metricsPort)
	appendFile(t, filepath.Join(p.stage, "etc", "edged", "edged.yaml"), fmt.Sprintf("metrics_address: %q\n", addr.String()))
	p.must(60*time.Second, "systemctl", "start", "edged")
	// Type=notify: READY=1 comes after the metrics listener is open.
	text := scrapeFrom(t, l, "node1", "sd1")
	s := samples(t, text)
	for _, series := range []string{"process_open_fds", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if _, ok := s[series]; !ok {
			t.Errorf("no %s under the hardened unit (/proc/self unreadable?)", series)
		}
	}
	if s["process_open_fds"] <= 0 || s["process_resident_memory_bytes"] <= 0 {
		t.Errorf("open fds %v, resident bytes %v", s["process_open_fds"], s["process_resident_memory_bytes"])
	}
	if _, ok := s[`edge_device_in_sync{device="link0"}`]; !ok {
		t.Errorf("no netlink device in the scrape:\n%s", text)
	}
	promtest.Check(t, text)
}

// samples reads a scrape's samples by series.
func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	s, err := promtest.Samples(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
