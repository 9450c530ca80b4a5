package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Metric keys, in the JSON and in the table.
const (
	mFull      = "full_membership_s"
	mFail      = "failure_seen_s"
	mLeave     = "leave_seen_s"
	mPartition = "partition_seen_s"
	mRemerge   = "remerge_s"
	// mRemergeHeld: the partition is held past memberlist's 30 s of gossip
	// to dead nodes, so only a reconnect can end it.
	mRemergeHeld = "remerge_after_hold_s"
	mRSS         = "rss_mb"
	mCPU         = "idle_cpu_pct"
	mStartFP     = "false_failures_after_start"
	mSoakFP      = "soak_false_failures"
	mLossFail    = "failure_seen_under_loss_s"
	mReady       = "start_to_ready_s"
	mTx          = "idle_tx_bytes_per_s"
)

// Figure statuses.
const (
	statusOK      = "ok"
	statusCap     = "cap"     // not reached within Cap seconds
	statusError   = "error"   // could not be measured; see Note
	statusSkipped = "skipped" // not run; see Note
)

// Systems under test.
const (
	sysEdged = "edged"
	// sysEdgedNoRaft is edged without site credentials, so raft stays off:
	// membership and discovery alone.
	sysEdgedNoRaft = "edged-noraft"
	sysDiscover    = "serf-discover"
	sysJoin        = "serf-join"
)

// isEdged reports whether sys is one of the edged variants.
func isEdged(sys string) bool { return sys == sysEdged || sys == sysEdgedNoRaft }

// figure is one measured number.
type figure struct {
	// Value is seconds, MB, percent of one core or a count. For RSS and CPU
	// it is the mean over the nodes.
	Value float64 `json:"value"`
	// Max is the maximum over the nodes (RSS and CPU), and PerNode every
	// node's value.
	Max     *float64           `json:"max,omitempty"`
	PerNode map[string]float64 `json:"per_node,omitempty"`
	// Handler is, for serf, the same change as the agent's event handler saw
	// it. The agent coalesces member events (1 s quiet, 3 s at most) before
	// it runs handlers, so this is what a script on serf learns, later than
	// serf's member list (Value).
	Handler *float64 `json:"handler,omitempty"`
	// Detail is shown next to the value in the table (for failure counts:
	// how many incidents they make).
	Detail string  `json:"detail,omitempty"`
	Status string  `json:"status"`
	Cap    float64 `json:"cap,omitempty"`
	Note   string  `json:"note,omitempty"`
}

func ok(v float64) figure { return figure{Value: v, Status: statusOK} }

func ptr(v float64) *float64 { return &v }

// run is every figure of one system at one size.
type run struct {
	System  string            `json:"system"`
	N       int               `json:"n"`
	Metrics map[string]figure `json:"metrics"`
	// Load is the 1-minute load average of the machine when the run began
	// and ended: the benchmarks share it with whatever else runs there.
	Load  [2]float64 `json:"load"`
	Notes []string   `json:"notes,omitempty"`
	Took  string     `json:"took"`
}

// machine describes where the numbers were taken.
type machine struct {
	Nproc  int    `json:"nproc"`
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu"`
	MemMB  int    `json:"mem_mb"`
	Go     string `json:"go"`
}

// report is the whole run, as written to results/*.json.
type report struct {
	Date     string            `json:"date"`
	Commit   string            `json:"commit"`
	Dirty    bool              `json:"dirty"`
	Versions map[string]string `json:"versions"`
	Machine  machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Runs     []run             `json:"runs"`
	Notes    []string          `json:"notes,omitempty"`
	Took     string            `json:"took"`
}

// loadAvg returns the 1-minute load average, or -1.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// goal is a DESIGN.md number. Limit < 0 means no goal.
type goal struct {
	Metric string
	What   string
	Limit  float64
	Unit   string
	// OnMax: the goal holds for every node, so it is checked on Max.
	OnMax bool
}

var goals = []goal{
	{mFull, "cold start to full membership on every node", 2, "s", false},
	{mFail, "kill -9 seen as failed by all", 3, "s", false},
	{mLeave, "graceful leave seen as left by all", 1, "s", false},
	{mPartition, "partition: each side sees the other failed", -1, "s", false},
	{mRemerge, "re-merge after the heal", 5, "s", false},
	{mRemergeHeld, "re-merge after a long partition (held past the 30 s of gossip to the dead)", 5, "s", false},
	{mRSS, "RSS per node (mean, max)", 20, "MB", true},
	{mCPU, "idle CPU per node, % of a core (mean, max)", 0.5, "%", true},
	{mTx, "idle traffic sent per node, bytes/s (mean, max; by class)", -1, "B/s", false},
	{mReady, "start to ready (READY=1; serf: agent running), all nodes at once (median, max)", -1, "s", false},
	{mStartFP, "false failures in the 25 s after the cold start, no loss", 0, "", false},
	{mSoakFP, "false failures under 10% loss (soak)", 0, "", false},
	{mLossFail, "kill -9 seen as failed by all, under 10% loss", 3, "s", false},
}

// met reports whether f meets g: "yes", "NO" or "-" (no goal or nothing
// measured).
func met(g goal, f figure, have bool) string {
	if g.Limit < 0 || !have || f.Status == statusSkipped {
		return "-"
	}
	if f.Status != statusOK {
		return "NO"
	}
	v := f.Value
	if g.OnMax && f.Max != nil {
		v = *f.Max
	}
	if v <= g.Limit {
		return "yes"
	}
	return "NO"
}

// format renders a figure for the table.
func format(g goal, f figure, have bool) string {
	if !have {
		return "-"
	}
	switch f.Status {
	case statusSkipped:
		return "skipped"
	case statusError:
		return "error"
	case statusCap:
		return fmt.Sprintf(">%s %s", num(f.Cap), g.Unit)
	}
	s := num(f.Value)
	if f.Max != nil {
		s += " (" + num(*f.Max) + ")"
	}
	if g.Unit != "" {
		s += " " + g.Unit
	}
	if f.Handler != nil {
		s += " [handler " + num(*f.Handler) + "]"
	}
	if f.Detail != "" {
		s += " (" + f.Detail + ")"
	}
	return s
}

// num prints with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e6:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// ratio renders edged/anchor.
func ratio(e, a figure, haveE, haveA bool) string {
	if !haveE || !haveA || e.Status != statusOK {
		return "-"
	}
	switch a.Status {
	case statusOK:
		if a.Value == 0 {
			return "-"
		}
		return num(e.Value/a.Value) + "x"
	case statusCap:
		return "<" + num(e.Value/a.Cap) + "x"
	}
	return "-"
}

// table renders the report as a Markdown table: one row per metric and size,
// edged with its goal, edged without raft (when measured), then each anchor
// with the ratio edged/anchor.
func table(runs []run) string {
	find := func(sys string, n int, metric string) (figure, bool) {
		for _, r := range runs {
			if r.System == sys && r.N == n {
				f, ok := r.Metrics[metric]
				return f, ok
			}
		}
		return figure{}, false
	}
	var sizes []int
	noRaft := false
	for _, r := range runs {
		if !containsInt(sizes, r.N) {
			sizes = append(sizes, r.N)
		}
		noRaft = noRaft || r.System == sysEdgedNoRaft
	}
	var b strings.Builder
	if noRaft {
		b.WriteString("| metric | N | edged | goal | met | edged, raft off | met | serf -discover | edged/anchor | serf -join | edged/anchor |\n")
		b.WriteString("| --- | --: | --: | --: | :-: | --: | :-: | --: | --: | --: | --: |\n")
	} else {
		b.WriteString("| metric | N | edged | goal | met | serf -discover | edged/anchor | serf -join | edged/anchor |\n")
		b.WriteString("| --- | --: | --: | --: | :-: | --: | --: | --: | --: |\n")
	}
	for _, g := range goals {
		for _, n := range sizes {
			fe, haveE := find(sysEdged, n, g.Metric)
			fr, haveR := find(sysEdgedNoRaft, n, g.Metric)
			fd, haveD := find(sysDiscover, n, g.Metric)
			fj, haveJ := find(sysJoin, n, g.Metric)
			if !haveE && !haveR && !haveD && !haveJ {
				continue
			}
			lim := "-"
			if g.Limit >= 0 {
				lim = "<= " + num(g.Limit)
				if g.Unit != "" {
					lim += " " + g.Unit
				}
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |", g.What, n, format(g, fe, haveE), lim, met(g, fe, haveE))
			if noRaft {
				fmt.Fprintf(&b, " %s | %s |", format(g, fr, haveR), met(g, fr, haveR))
			}
			fmt.Fprintf(&b, " %s | %s | %s | %s |\n",
				format(g, fd, haveD), ratio(fe, fd, haveE, haveD),
				format(g, fj, haveJ), ratio(fe, fj, haveE, haveJ))
		}
	}
	return b.String()
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// writeReport writes rep to dir/<date>-<commit>.json and dir/latest.json and
// returns the first path.
func writeReport(dir string, rep report) (string, error) {
	return writeJSON(dir, "", rep.Date+"-"+rep.Commit, rep)
}

// writeJSON writes v to dir/<prefix><name>.json and dir/<prefix>latest.json,
// each through a temporary file, and returns the first path.
func writeJSON(dir, prefix, name string, v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, prefix+name+".json")
	for _, p := range []string{path, filepath.Join(dir, prefix+"latest.json")} {
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, p); err != nil {
			return "", err
		}
	}
	return path, nil
}
