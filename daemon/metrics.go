package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"edge/coord"
	"edge/coord/store"
	"edge/daemon/api"
	"edge/hardware"
	"edge/internal/prom"
)

// metricFamilies is the one table of every family GET /metrics serves:
// name, type, labels and HELP text. The scrape writes them in this order;
// a family missing here cannot be written (the scrape fails), and a test
// checks that every one is written with its help. docs/operations.md
// lists them for people.
var metricFamilies = []prom.Family{
	{Name: "edge_build_info", Kind: prom.Gauge, Labels: []string{"version", "goversion"},
		Help: "Always 1; the labels name the edged release and the Go version it was built with."},
	{Name: "edge_members", Kind: prom.Gauge, Labels: []string{"status"},
		Help: "Members of the site's gossip cluster as this node sees them, by status (alive, suspect, failed, left); this node included."},
	{Name: "edge_raft_role", Kind: prom.Gauge, Labels: []string{"role"},
		Help: "1 for this node's raft role, 0 for the others: leader, follower, nonvoter, candidate, forming (a new site waiting for its first voters) or none (raft off on this node)."},
	{Name: "edge_raft_quorum", Kind: prom.Gauge,
		Help: "1 when this node knows a raft leader, so the site config can change from here; 0 when not (no quorum, or raft off)."},
	{Name: "edge_raft_voters", Kind: prom.Gauge,
		Help: "Raft voters in the configuration this node knows."},
	{Name: "edge_raft_commit_index", Kind: prom.Gauge,
		Help: "The highest raft log index this node knows to be committed."},
	{Name: "edge_raft_applied_index", Kind: prom.Gauge,
		Help: "The raft log index of the last entry this node's replica applied."},
	{Name: "edge_raft_apply_seconds", Kind: prom.Histogram,
		Help: "Time to commit the raft commands this node proposed (on the leader, or forwarded to it), including commands the store refused; commands that never committed (no quorum) are left out."},
	{Name: "edge_raft_leader_changes_total", Kind: prom.Counter,
		Help: "Times this node saw a new raft leader take office (an election won) since edged started."},
	{Name: "edge_config_generation", Kind: prom.Gauge,
		Help: "The site config generation the site is confirmed at, in this node's replica (0: none yet)."},
	{Name: "edge_config_applied_generation", Kind: prom.Gauge,
		Help: "The site config generation this node's hardware is driven to."},
	{Name: "edge_changes_total", Kind: prom.Counter, Labels: []string{"outcome"},
		Help: "Site config changes that ended (confirmed, rolled_back, rejected, aborted) since edged started, as recorded in this node's replica; every node counts every change of the site."},
	{Name: "edge_change_apply_seconds", Kind: prom.Histogram,
		Help: "Time from a change's proposal to its APPLIED step (every target applied it), for changes applied since edged started, by the times recorded in the replica."},
	{Name: "edge_device_state", Kind: prom.Gauge, Labels: []string{"device", "driver", "state"},
		Help: "1 for each device's state, 0 for the others: ok, degraded, disconnected, error."},
	{Name: "edge_device_in_sync", Kind: prom.Gauge, Labels: []string{"device"},
		Help: "1 when the device's read-back matches its desired settings, else 0."},
	{Name: "edge_device_reconcile_errors_total", Kind: prom.Counter, Labels: []string{"device"},
		Help: "Failed reconcile attempts of the device (open, read, apply or verify) since its supervisor started."},
	{Name: "edge_device_drift_total", Kind: prom.Counter, Labels: []string{"device"},
		Help: "Times the device, once at its desired settings, was found to have left them (drift), since its supervisor started."},
	{Name: "edge_serial_roundtrip_seconds", Kind: prom.Histogram, Labels: []string{"device", "driver"},
		Help: "Serial command/answer round trips (line-protocol commands and Modbus requests) that got an answer, good or an error answer."},
	{Name: "edge_serial_timeouts_total", Kind: prom.Counter, Labels: []string{"device", "driver"},
		Help: "Serial commands and Modbus requests that got no complete answer in time."},
	{Name: "process_start_time_seconds", Kind: prom.Gauge,
		Help: "When edged started, in seconds since the Unix epoch."},
	{Name: "process_cpu_seconds_total", Kind: prom.Counter,
		Help: "CPU time edged used, user and system, in seconds."},
	{Name: "process_resident_memory_bytes", Kind: prom.Gauge,
		Help: "Resident memory of edged in bytes."},
	{Name: "process_open_fds", Kind: prom.Gauge,
		Help: "Open file descriptors of edged."},
	{Name: "go_goroutines", Kind: prom.Gauge,
		Help: "Goroutines of edged."},
	{Name: "go_memstats_heap_alloc_bytes", Kind: prom.Gauge,
		Help: "Bytes of allocated heap objects."},
	{Name: "go_memstats_sys_bytes", Kind: prom.Gauge,
		Help: "Bytes of memory the Go runtime obtained from the system."},
}

var familyIndex = func() map[string]prom.Family {
	m := make(map[string]prom.Family, len(metricFamilies))
	for _, f := range metricFamilies {
		m[f.Name] = f
	}
	return m
}()

// family returns a family of the table; an unknown name gives a family
// without help, which the writer refuses.
func family(name string) prom.Family {
	if f, ok := familyIndex[name]; ok {
		return f
	}
	return prom.Family{Name: name, Kind: prom.Gauge}
}

// Label values that are always written, so that a series exists at 0.
var (
	memberStatuses = []string{api.StatusAlive, api.StatusSuspect, api.StatusFailed, api.StatusLeft}
	raftRoles      = []string{"leader", "follower", "nonvoter", "candidate", "forming", "none"}
	changeOutcomes = []string{store.Confirmed, store.RolledBack, store.Rejected, store.Aborted}
	deviceStates   = []string{hardware.StateOK, hardware.StateDegraded, hardware.StateDisconnected, hardware.StateError}
)

// Histogram buckets, in seconds.
var (
	raftApplyBuckets   = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	changeApplyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	serialBuckets      = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// raftView is what a scrape reads of raft and the replica.
type raftView struct {
	status          api.Raft
	commit, applied uint64
	state           *store.State
	appliedGen      uint64 // the generation this node's hardware is driven to
}

// metrics serves GET /metrics on metrics_address: gauges read from their
// sources at each scrape, counters and histograms fed by the hooks the
// daemon wires (raft applies, serial exchanges, leader changes).
type metrics struct {
	addr    string
	started time.Time
	log     *slog.Logger

	// Sources, read at each scrape. raft returns nil while raft is off.
	members func() []api.Member
	raft    func() *raftView
	devices func() []hardware.Status

	raftApply     *prom.Hist
	leaderChanges prom.Count
	changes       *prom.Vec[*prom.Count] // by outcome
	changeApply   *prom.Hist
	roundTrip     *prom.Vec[*prom.Hist]  // by device, driver
	timeouts      *prom.Vec[*prom.Count] // by device, driver

	mu sync.Mutex
	// counted: changes already counted in changes, or final before edged
	// started; timed: changes whose apply time was observed, or skipped.
	counted, timed map[string]bool

	ln   net.Listener
	srv  *http.Server
	once sync.Once // closes ln
}

// newMetrics returns metrics for addr with no sources; started is when
// edged started (changes that ended before are not counted).
func newMetrics(addr string, started time.Time, log *slog.Logger) *metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &metrics{
		addr: addr, started: started, log: log,
		members:     func() []api.Member { return nil },
		raft:        func() *raftView { return nil },
		devices:     func() []hardware.Status { return nil },
		raftApply:   prom.NewHist(raftApplyBuckets),
		changes:     prom.NewCountVec(),
		changeApply: prom.NewHist(changeApplyBuckets),
		roundTrip:   prom.NewHistVec(serialBuckets),
		timeouts:    prom.NewCountVec(),
		counted:     map[string]bool{},
		timed:       map[string]bool{},
	}
}

// newMetrics returns the daemon's metrics, reading its parts at each
// scrape.
func (d *Daemon) newMetrics() *metrics {
	m := newMetrics(d.cfg.MetricsAddress, d.started, d.log.With("part", "metrics"))
	m.members = func() []api.Member { ms, _ := d.member.Members(); return ms }
	m.devices = func() []hardware.Status { return d.hw.Statuses() }
	m.raft = func() *raftView {
		if d.raft == nil {
			return nil
		}
		rf := d.raft.Store().Raft()
		st := d.raft.Store().State()
		v := &raftView{status: d.raft.Status(), commit: rf.CommitIndex(), applied: rf.AppliedIndex(), state: st}
		v.appliedGen, _ = st.DesiredGen(d.cfg.Node)
		return v
	}
	return m
}

// observeApply is coord.RaftConfig.OnApply.
func (m *metrics) observeApply(took time.Duration, committed bool) {
	if committed {
		m.raftApply.Observe(took.Seconds())
	}
}

// observeExchange is hardware.SupervisorConfig.Observe: exchanges that got
// an answer (good or an error answer) go to the round-trip histogram,
// timeouts to their counter; others (a port gone, garbage) are the
// device's reconcile errors.
func (m *metrics) observeExchange(device, driver string, took time.Duration, err error) {
	switch {
	case err == nil || errors.Is(err, hardware.ErrRejected):
		m.roundTrip.With(device, driver).Observe(took.Seconds())
	case errors.Is(err, hardware.ErrTimeout):
		m.timeouts.With(device, driver).Inc()
	}
}

// listen opens metrics_address. A nil m (metrics off) does nothing.
func (m *metrics) listen() error {
	if m == nil {
		return nil
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return fmt.Errorf("metrics_address %s: %w", m.addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", m.handle)
	m.ln = ln
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	m.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// close closes the listener if run never took it over; safe to call on a
// nil m and more than once.
func (m *metrics) close() {
	if m == nil || m.ln == nil {
		return
	}
	m.once.Do(func() { m.ln.Close() })
}

// shutdownGrace bounds how long a scrape in progress may take at shutdown.
const shutdownGrace = time.Second

// run serves scrapes, and counts leader changes when r is not nil, until
// ctx is done.
func (m *metrics) run(ctx context.Context, r *coord.Raft) error {
	served := make(chan error, 1)
	go func() { served <- m.srv.Serve(m.ln) }()
	var observations chan raft.Observation // nil (never ready) without raft
	if r != nil {
		observations = make(chan raft.Observation, 16)
		obs := raft.NewObserver(observations, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		})
		rf := r.Store().Raft()
		rf.RegisterObserver(obs)
		defer rf.DeregisterObserver(obs)
	}
	var leader raft.ServerID
	for {
		select {
		case o := <-observations:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				if lo.LeaderID != "" && lo.LeaderID != leader {
					m.leaderChanges.Inc()
				}
				leader = lo.LeaderID
			}
		case err := <-served:
			return fmt.Errorf("metrics: %w", err)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			err := m.srv.Shutdown(sctx)
			cancel()
			if err != nil {
				m.srv.Close()
			}
			<-served
			return nil
		}
	}
}

func (m *metrics) handle(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := m.write(&buf); err != nil {
		m.log.Error("scrape failed", "err", err)
		http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", prom.ContentType)
	_, _ = w.Write(buf.Bytes())
}

// write writes every family of the table.
func (m *metrics) write(out io.Writer) error {
	w := prom.NewWriter(out)
	begin := func(name string) { w.Begin(family(name)) }
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	begin("edge_build_info")
	w.Value(1, api.Version, runtime.Version())

	counts := map[string]int{}
	for _, mem := range m.members() {
		counts[mem.Status]++
	}
	begin("edge_members")
	for _, s := range memberStatuses {
		w.Value(float64(counts[s]), s)
	}

	rv := m.raft()
	role := "none"
	var (
		view  raftView
		state = &store.State{}
	)
	if rv != nil {
		view, role = *rv, rv.status.Role
		if rv.state != nil {
			state = rv.state
		}
	}
	begin("edge_raft_role")
	for _, r := range raftRoles {
		w.Value(bool01(r == role), r)
	}
	begin("edge_raft_quorum")
	w.Value(bool01(view.status.Quorum))
	begin("edge_raft_voters")
	w.Value(float64(len(view.status.Voters)))
	begin("edge_raft_commit_index")
	w.Value(float64(view.commit))
	begin("edge_raft_applied_index")
	w.Value(float64(view.applied))
	begin("edge_raft_apply_seconds")
	w.Histogram(m.raftApply)
	begin("edge_raft_leader_changes_total")
	w.Value(float64(m.leaderChanges.Load()))

	m.countChanges(state)
	begin("edge_config_generation")
	w.Value(float64(state.Confirmed))
	begin("edge_config_applied_generation")
	w.Value(float64(view.appliedGen))
	begin("edge_changes_total")
	for _, o := range changeOutcomes {
		w.Value(float64(m.changes.With(o).Load()), o)
	}
	begin("edge_change_apply_seconds")
	w.Histogram(m.changeApply)

	sts := m.devices()
	drivers := make(map[string]string, len(sts))
	for _, st := range sts {
		drivers[st.Name] = st.Driver
	}
	begin("edge_device_state")
	for _, st := range sts {
		for _, s := range deviceStates {
			w.Value(bool01(st.State == s), st.Name, st.Driver, s)
		}
	}
	begin("edge_device_in_sync")
	for _, st := range sts {
		w.Value(bool01(st.InSync), st.Name)
	}
	begin("edge_device_reconcile_errors_total")
	for _, st := range sts {
		w.Value(float64(st.Errors), st.Name)
	}
	begin("edge_device_drift_total")
	for _, st := range sts {
		w.Value(float64(st.Drifts), st.Name)
	}
	// Devices removed from the inventory (or given another driver) leave
	// the exposition.
	current := func(v []string) bool { return drivers[v[0]] == v[1] }
	m.roundTrip.Retain(current)
	m.timeouts.Retain(current)
	begin("edge_serial_roundtrip_seconds")
	m.roundTrip.Each(func(v []string, h *prom.Hist) { w.Histogram(h, v...) })
	begin("edge_serial_timeouts_total")
	m.timeouts.Each(func(v []string, c *prom.Count) { w.Value(float64(c.Load()), v...) })

	begin("process_start_time_seconds")
	w.Value(float64(m.started.UnixMilli()) / 1000)
	cpu, rss, err := procStat()
	begin("process_cpu_seconds_total")
	if err == nil {
		w.Value(cpu)
	}
	begin("process_resident_memory_bytes")
	if err == nil {
		w.Value(rss)
	}
	begin("process_open_fds")
	if n, err := openFDs(); err == nil {
		w.Value(float64(n))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	begin("go_goroutines")
	w.Value(float64(runtime.NumGoroutine()))
	begin("go_memstats_heap_alloc_bytes")
	w.Value(float64(ms.HeapAlloc))
	begin("go_memstats_sys_bytes")
	w.Value(float64(ms.Sys))
	return w.Flush()
}

// countChanges counts the changes of st that ended since edged started,
// and observes their apply time, each once. Changes that ended before are
// marked without counting: a restarted node replays its log.
func (m *metrics) countChanges(st *store.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make(map[string]bool, len(st.Changes))
	for _, c := range st.Changes {
		live[c.ID] = true
		if !m.counted[c.ID] && store.Final(c.State) {
			m.counted[c.ID] = true
			if at, ok := reached(c, c.State); !ok || !at.Before(m.started) {
				m.changes.With(c.State).Inc()
			}
		}
		if !m.timed[c.ID] {
			if at, ok := reached(c, store.Applied); ok {
				m.timed[c.ID] = true
				if !at.Before(m.started) {
					m.changeApply.Observe(max(at.Sub(c.Created), 0).Seconds())
				}
			} else if store.Final(c.State) {
				m.timed[c.ID] = true // ended without being applied
			}
		}
	}
	// The replica keeps a bounded history: forget what left it.
	for id := range m.counted {
		if !live[id] {
			delete(m.counted, id)
		}
	}
	for id := range m.timed {
		if !live[id] {
			delete(m.timed, id)
		}
	}
}

// reached returns when c last reached state.
func reached(c *store.Change, state string) (time.Time, bool) {
	for i := len(c.History) - 1; i >= 0; i-- {
		if c.History[i].State == state {
			return c.History[i].Time, true
		}
	}
	return time.Time{}, false
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture edged is built for.
const clockTicks = 100

// procStat reads edged's CPU seconds and resident bytes from
// /proc/self/stat.
func procStat() (cpu, rss float64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15, rss 24 (in pages).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/self/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return 0, 0, errors.New("/proc/self/stat: too few fields")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	pages, err3 := strconv.ParseInt(f[21], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, fmt.Errorf("/proc/self/stat: %w", err)
	}
	return float64(utime+stime) / clockTicks, float64(pages * int64(os.Getpagesize())), nil
}

// openFDs counts edged's open file descriptors.
func openFDs() (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	return len(fds) - 1, nil // less the one reading the folder
}
