package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Settings, from the environment (make bench passes none, so the defaults
// are what the docs report).
type settings struct {
	sizes       []int         // BENCH_N, default 3,10,30
	systems     []string      // BENCH_SYSTEMS, default edged,edged-noraft,serf-join,serf-discover
	soak        time.Duration // BENCH_SOAK, default 5m; 0 skips the soak
	idle        time.Duration // BENCH_IDLE, the CPU window, default 20s
	discoverCap time.Duration // BENCH_DISCOVER_CAP, default 150s
	hold        time.Duration // BENCH_PARTITION_HOLD, default 35s; 0 skips the held partition
}

func loadSettings() (settings, error) {
	s := settings{
		sizes:       []int{3, 10, 30},
		systems:     []string{sysEdged, sysEdgedNoRaft, sysJoin, sysDiscover},
		soak:        5 * time.Minute,
		idle:        20 * time.Second,
		discoverCap: 150 * time.Second,
		hold:        35 * time.Second,
	}
	if err := envSizes("BENCH_N", &s.sizes); err != nil {
		return s, err
	}
	if v := os.Getenv("BENCH_SYSTEMS"); v != "" {
		s.systems = nil
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			switch f {
			case sysEdged, sysEdgedNoRaft, sysJoin, sysDiscover:
				s.systems = append(s.systems, f)
			default:
				return s, fmt.Errorf("BENCH_SYSTEMS: unknown system %q (want %s, %s, %s, %s)", f, sysEdged, sysEdgedNoRaft, sysJoin, sysDiscover)
			}
		}
	}
	for _, d := range []struct {
		env string
		p   *time.Duration
	}{{"BENCH_SOAK", &s.soak}, {"BENCH_IDLE", &s.idle}, {"BENCH_DISCOVER_CAP", &s.discoverCap}, {"BENCH_PARTITION_HOLD", &s.hold}} {
		if v := os.Getenv(d.env); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t < 0 {
				return s, fmt.Errorf("%s=%q: want a duration such as 5m", d.env, v)
			}
			*d.p = t
		}
	}
	return s, nil
}

// envSizes reads lab sizes ("3,10,30") from the environment variable env
// into sizes, which keeps its default when env is unset.
func envSizes(env string, sizes *[]int) error {
	v := os.Getenv(env)
	if v == "" {
		return nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 || n > 200 {
			return fmt.Errorf("%s=%q: want sizes from 3 to 200, comma-separated", env, v)
		}
		out = append(out, n)
	}
	*sizes = out
	return nil
}

// needRoot skips outside CI when not root, and fails in CI.
func needRoot(tb testing.TB) {
	tb.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			tb.Fatal("the benchmarks need root and Linux network namespaces; CI must run them as root")
		}
		tb.Skip("needs root and network namespaces (run make bench as root)")
	}
}

// env is what every site shares: binaries and the scripts the nodes run.
type env struct {
	settings
	edged    string
	edgectl  string
	serf     string
	dir      string
	wrapper  string // gate + start stamp, then exec
	handler  string // serf event handler
	serfConf string // leave_on_terminate
}

const wrapperScript = `#!/bin/sh
# Node wrapper of the benchmarks: wait for one start token (a newline) on the
# gate FIFO, note the start time, then exec the command, which so keeps the
# pid the lab recorded. usage: wrapper.sh GATE NODEDIR COMMAND [ARG...]
gate=$1 dir=$2
shift 2
read -r _ <"$gate" || exit 1
t=$(date +%s.%N)
echo "$t" >>"$dir/starts"
echo "$t start" >>"$dir/events"
echo "bench: start $t"
exec "$@"
`

const handlerScript = `#!/bin/sh
# serf event handler of the benchmarks: one line per member, stamped with the
# time the handler ran. usage: handler.sh FILE
t=$(date +%s.%N)
while IFS= read -r line; do
	printf '%s %s %s\n' "$t" "$SERF_EVENT" "$line"
done >>"$1"
`

func newEnv(b *testing.B, s settings) *env {
	b.Helper()
	dir, err := os.MkdirTemp("", "edge-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{
		settings: s,
		dir:      dir,
		wrapper:  filepath.Join(dir, "wrapper.sh"),
		handler:  filepath.Join(dir, "handler.sh"),
		serfConf: filepath.Join(dir, "serf.json"),
	}
	for p, body := range map[string]string{
		e.wrapper:  wrapperScript,
		e.handler:  handlerScript,
		e.serfConf: `{"leave_on_terminate": true}` + "\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	bin := os.Getenv("EDGE_BIN")
	if bin == "" {
		bin = dir
		out, err := exec.Command("go", "build", "-o", dir+"/", "edge/cmd/edged", "edge/cmd/edgectl").CombinedOutput()
		if err != nil {
			b.Fatalf("build edged and edgectl: %v\n%s", err, out)
		}
	}
	e.edged, e.edgectl = filepath.Join(bin, "edged"), filepath.Join(bin, "edgectl")
	for _, p := range []string{e.edged, e.edgectl} {
		if _, err := os.Stat(p); err != nil {
			b.Fatalf("%v (make build, or set EDGE_BIN)", err)
		}
	}
	e.serf = findSerf()
	return e
}

// findSerf returns the stock serf agent: $BENCH_SERF, serf in $PATH, or
// $(go env GOPATH)/bin/serf where make deps installs it; "" if none.
func findSerf() string {
	if p := os.Getenv("BENCH_SERF"); p != "" {
		return p
	}
	if p, err := exec.LookPath("serf"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "serf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// BenchmarkSite measures, for each size and system, on one fresh lab each:
// cold start to full membership, false failures after it, kill -9
// detection, graceful leave, partition and re-merge, idle RSS and CPU; at
// the largest size a partition held past memberlist's gossip to the dead;
// and for both edged variants at 30 nodes a false-positive soak under 10%
// loss followed by a kill under loss. It prints one table and writes
// results/<date>-<commit>.json and results/latest.json.
func BenchmarkSite(b *testing.B) {
	needRoot(b)
	s, err := loadSettings()
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, s)
	began := time.Now()
	rep := report{
		Date:     began.Format("2006-01-02"),
		Versions: map[string]string{},
		Machine:  machineInfo(),
		Settings: map[string]string{
			"sizes":          fmt.Sprint(s.sizes),
			"systems":        strings.Join(s.systems, ","),
			"soak":           s.soak.String(),
			"idle_window":    s.idle.String(),
			"discover_cap":   s.discoverCap.String(),
			"partition_hold": s.hold.String(),
		},
	}
	rep.Commit, rep.Dirty = gitCommit()
	if e.serf != "" {
		if out, err := exec.Command(e.serf, "version").Output(); err == nil {
			rep.Versions["serf"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]) + " (" + e.serf + ")"
		}
	}
	soakN := s.sizes[len(s.sizes)-1]
	for _, n := range s.sizes {
		if n == 30 {
			soakN = 30
		}
	}
	if soakN != 30 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the soak ran at N=%d, not 30 (BENCH_N)", soakN))
	}
	for _, n := range s.sizes {
		for _, sys := range s.systems {
			b.Run(fmt.Sprintf("%s/n=%d", sys, n), func(b *testing.B) {
				if !isEdged(sys) && e.serf == "" {
					if os.Getenv("CI") != "" {
						b.Fatal("serf agent not found: run make deps")
					}
					rep.Notes = append(rep.Notes, sys+": skipped, no serf agent (make deps installs it)")
					b.Skip("no serf agent: run make deps")
				}
				largest := n == s.sizes[len(s.sizes)-1]
				r := measure(b, e, sys, n, largest && s.hold > 0, isEdged(sys) && n == soakN && s.soak > 0, &rep)
				reportMetrics(b, r)
				rep.Runs = append(rep.Runs, r)
			})
		}
	}
	rep.Took = time.Since(began).Round(time.Second).String()
	if len(rep.Runs) == 0 {
		return
	}
	fmt.Printf("\n%s\n", table(rep.Runs))
	for _, r := range rep.Runs {
		for _, note := range r.Notes {
			fmt.Printf("note: %s n=%d: %s\n", r.System, r.N, note)
		}
	}
	for _, note := range rep.Notes {
		fmt.Printf("note: %s\n", note)
	}
	path, err := writeReport("results", rep)
	if err != nil {
		b.Errorf("write results: %v", err)
		return
	}
	fmt.Printf("results: %s (and results/latest.json); took %s\n", path, rep.Took)
}

// reportMetrics hands the figures measured to the benchmark output.
func reportMetrics(b *testing.B, r run) {
	units := map[string]string{
		mFull: "full_s", mFail: "fail_s", mLeave: "leave_s", mPartition: "partition_s",
		mRemerge: "remerge_s", mRemergeHeld: "remerge_held_s", mRSS: "rss_MB", mCPU: "cpu_pct",
		mStartFP: "false_failures_start", mSoakFP: "false_failures_soak", mLossFail: "fail_loss_s",
		mReady: "ready_s", mTx: "tx_B/s",
	}
	b.ReportMetric(0, "ns/op") // one iteration of a whole scenario: meaningless
	for k, f := range r.Metrics {
		unit := units[k]
		if f.Status != statusOK || unit == "" {
			continue
		}
		b.ReportMetric(f.Value, unit)
		if f.Max != nil {
			b.ReportMetric(*f.Max, "max_"+unit)
		}
		if f.Handler != nil {
			b.ReportMetric(*f.Handler, "handler_"+unit)
		}
	}
}

func machineInfo() machine {
	m := machine{Nproc: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.Atoi(f[0])
					m.MemMB = kb / 1024
				}
			}
		}
	}
	return m
}

// gitCommit returns the short commit of the checkout and whether it has
// uncommitted changes.
func gitCommit() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "nogit", false
	}
	st, _ := exec.Command("git", "status", "--porcelain").Output()
	return strings.TrimSpace(string(out)), len(strings.TrimSpace(string(st))) > 0
}
