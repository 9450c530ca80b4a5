package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/daemon/client"
	"edge/test/lab"
)

// Bounds of every wait. A figure that is not reached within its cap is
// reported as ">cap", never waited for longer.
const (
	setupTimeout   = 3 * time.Minute
	startCap       = 60 * time.Second // cold start, edged and serf -join
	failCap        = 60 * time.Second
	leaveCap       = 30 * time.Second
	partitionCap   = 90 * time.Second
	remergeCap     = 120 * time.Second
	restoreTimeout = 120 * time.Second
	handlerGrace   = 10 * time.Second // serf's handler runs after coalescing
	settle         = 5 * time.Second  // before the idle window
	stopTimeout    = 20 * time.Second
)

var labSeq atomic.Int32

// site is one lab running one system on n nodes.
type site struct {
	b     *testing.B
	e     *env
	sys   string
	n     int
	lab   *lab.Lab
	dir   string
	names []string
	gate  *os.File

	clients map[string]*client.Client // edged
	logs    *timelines                // serf: its member list, from its log
	events  *timelines                // serf: its event handler
	tail    *tailer

	released time.Time // of the cold start

	ready     *readyLog       // READY=1 (edged) or "agent running" (serf)
	notifiers []*notifySocket // edged's NOTIFY_SOCKETs, one per node
}

// logf prints progress at once (b.Logf holds it until the benchmark ends).
func (s *site) logf(format string, args ...any) {
	fmt.Printf("%s %s/n=%d: %s\n", time.Now().Format("15:04:05.000"), s.sys, s.n, fmt.Sprintf(format, args...))
}

func (s *site) exe() string {
	if isEdged(s.sys) {
		return "edged"
	}
	return "serf"
}

// argv is the command of every node: the wrapper, then the system.
func (s *site) argv() []string {
	argv := []string{"/bin/sh", s.e.wrapper, filepath.Join(s.dir, "gate"), "{dir}"}
	if isEdged(s.sys) {
		return append(argv, s.e.edged, "--config", "{config}")
	}
	argv = append(argv, s.e.serf, "agent",
		"-node", "{name}",
		"-bind", "{addr}:{gossip_port}",
		"-iface", "eth0",
		"-rpc-addr", "127.0.0.1:7373",
		"-encrypt", "{key}",
		"-config-file", s.e.serfConf,
		"-event-handler", "member-join,member-failed,member-leave,member-reap=/bin/sh "+s.e.handler+" {dir}/events",
	)
	if s.sys == sysDiscover {
		return append(argv, "-discover", "bench")
	}
	return append(argv, "-join", s.node1()+":7946")
}

func (s *site) node1() string {
	return (lab.Config{}).NodeAddr(1).String()
}

// newSite builds the lab and its n nodes, each blocked in the wrapper until
// released; nothing of the system runs yet.
func newSite(b *testing.B, e *env, sys string, n int) *site {
	b.Helper()
	dir, err := os.MkdirTemp("", "eb")
	if err != nil {
		b.Fatal(err)
	}
	s := &site{b: b, e: e, sys: sys, n: n, dir: dir, clients: map[string]*client.Client{}, ready: newReadyLog()}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cfg := lab.Config{
		Dir:      dir,
		Prefix:   fmt.Sprintf("eb%d_%d", os.Getpid()%100000, labSeq.Add(1)),
		LogLevel: "info",
	}
	if isEdged(sys) {
		cfg.Edged = e.edged
	}
	cfg.NoTLS = sys == sysEdgedNoRaft
	cfg.BootstrapExpect = min(3, n) // what a lab of n nodes gets
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		b.Fatalf("lab up: %v", err)
	}
	s.lab = l
	b.Cleanup(s.teardown)

	gate := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		b.Fatal(err)
	}
	// Held open read-write: readers never block in open(2), only in read(2)
	// until a token arrives; a token written early waits for its reader.
	if s.gate, err = os.OpenFile(gate, os.O_RDWR, 0); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		s.names = append(s.names, fmt.Sprintf("node%d", i))
	}
	// One at a time, so that node i gets address i (AddNode takes the next
	// free one). Each starts its wrapper, which waits at the gate.
	for i, name := range s.names {
		spec := lab.NodeSpec{Name: name, Argv: s.argv(), NoWait: true}
		if isEdged(sys) {
			// Our own NOTIFY_SOCKET (the node's Env wins over the lab's):
			// start-to-READY is timed from the wrapper's start stamp.
			sock, err := listenNotifySocket(filepath.Join(dir, "ready-"+name+".sock"), func(at time.Time) { s.ready.add(name, at) })
			if err != nil {
				b.Fatal(err)
			}
			s.notifiers = append(s.notifiers, sock)
			spec.Env = []string{"NOTIFY_SOCKET=" + filepath.Join(dir, "ready-"+name+".sock")}
		}
		node, err := l.AddNode(ctx, spec)
		if err != nil {
			b.Fatalf("add %s: %v", name, err)
		}
		if want := (lab.Config{}).NodeAddr(i + 1); node.Addr != want {
			b.Fatalf("add %s: address %s, want %s", name, node.Addr, want)
		}
	}
	if s.tail, err = newTailer(); err != nil {
		b.Fatal(err)
	}
	for _, node := range l.Nodes() {
		table := trafficTable(int(node.Gossip.Port()), int(node.Gossip.Port())+1)
		cmd := l.Command(ctx, node.Name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(table)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: traffic counters: nft: %v: %s", node.Name, err, out)
		}
	}
	if isEdged(sys) {
		for _, node := range l.Nodes() {
			s.clients[node.Name] = &client.Client{Socket: node.Socket}
		}
		return s
	}
	s.logs, s.events = newTimelines(), newTimelines()
	for _, node := range l.Nodes() {
		name := node.Name
		evFile := filepath.Join(node.Dir, "events")
		if err := os.WriteFile(evFile, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		err := s.tail.follow(node.Log, func(at time.Time, line string) {
			if strings.Contains(line, serfRunning) {
				s.ready.add(name, at)
			}
			if ev, ok := parseSerfLogLine(line, at); ok {
				s.logs.add(name, ev)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		err = s.tail.follow(evFile, func(_ time.Time, line string) {
			if ev, ok := parseHandlerLine(line); ok {
				s.events.add(name, ev)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func (s *site) teardown() {
	if s.tail != nil {
		s.tail.close()
	}
	for _, n := range s.notifiers {
		n.Close()
	}
	if dst := os.Getenv("BENCH_KEEP_LOGS"); dst != "" {
		s.keepLogs(filepath.Join(dst, fmt.Sprintf("%s-n%d", s.sys, s.n)))
	}
	if err := s.lab.Down(); err != nil {
		s.b.Errorf("lab down: %v", err)
	}
	if s.gate != nil {
		s.gate.Close()
	}
	os.RemoveAll(s.dir)
}

// keepLogs copies every node's log and event file to dir, for a look after
// the run (BENCH_KEEP_LOGS=DIR).
func (s *site) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.b.Logf("keep logs: %v", err)
		return
	}
	for _, node := range s.lab.Nodes() {
		for src, name := range map[string]string{node.Log: node.Name + ".log", filepath.Join(node.Dir, "events"): node.Name + ".events"} {
			if b, err := os.ReadFile(src); err == nil {
				_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
		}
	}
}

// release lets k waiting wrappers exec their command.
func (s *site) release(k int) {
	if _, err := s.gate.Write([]byte(strings.Repeat("\n", k))); err != nil {
		s.b.Fatalf("gate: %v", err)
	}
}

// starts waits until every named node has noted a start at or after after,
// and returns each node's last start.
func (s *site) starts(names []string, after time.Time) (map[string]time.Time, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := map[string]time.Time{}
		for _, name := range names {
			b, _ := os.ReadFile(filepath.Join(s.dir, name, "starts"))
			lines := strings.Fields(string(b))
			if len(lines) == 0 {
				continue
			}
			if t, ok := parseUnixTime(lines[len(lines)-1]); ok && !t.Before(after) {
				out[name] = t
			}
		}
		if len(out) == len(names) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d nodes started within 20s", len(out), len(names))
		}
		time.Sleep(10 * time.Millisecond) // setup only: the stamps are exact
	}
}

// waitFn waits for cond on one node's view and returns the first view that
// satisfies it.
type waitFn func(ctx context.Context, node string, cond func(view) bool) (view, error)

// primary is the source of the figures: edged's API (Since is when the node
// saw the change) or serf's member list (its log lines, stamped on arrival).
func (s *site) primary() waitFn {
	if isEdged(s.sys) {
		return s.waitEdged
	}
	return s.logs.wait
}

// waitEdged follows one node with blocking queries on its API.
func (s *site) waitEdged(ctx context.Context, node string, cond func(view) bool) (view, error) {
	c := s.clients[node]
	var index uint64
	var last view
	for {
		m, err := c.WaitMembers(ctx, index, 2*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			// Starting or restarting: no socket yet, or a stale connection.
			index = 0
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return last, ctx.Err()
			}
			continue
		}
		last = view{}
		for _, mem := range m.Members {
			last[mem.Name] = memberState{Status: mem.Status, Since: mem.Since}
		}
		if cond(last) {
			return last, nil
		}
		index = m.Index
	}
}

// converge waits on every listed node at once, until deadline, for its
// condition, and returns the first satisfying view of each node that got
// there and the last view of each that did not.
func converge(deadline time.Time, wait waitFn, nodes []string, cond func(node string) func(view) bool) (got, missed map[string]view) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	got, missed = map[string]view{}, map[string]view{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, node := range nodes {
		wg.Go(func() {
			v, err := wait(ctx, node, cond(node))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missed[node] = v
			} else {
				got[node] = v
			}
		})
	}
	wg.Wait()
	return got, missed
}

// timed measures one change: from t0 until every listed node's view
// satisfies its condition, the figure is the latest Since of members over
// those views, minus t0. For serf it also measures the event handler's view.
func (s *site) timed(t0 time.Time, limit time.Duration, nodes []string, cond func(node string) func(view) bool, members []string) figure {
	got, missed := converge(t0.Add(limit), s.primary(), nodes, cond)
	if len(missed) > 0 {
		return figure{Status: statusCap, Cap: limit.Seconds(), Note: missedNote(missed, len(nodes))}
	}
	f := ok(latest(got, members).Sub(t0).Seconds())
	if s.events != nil {
		hgot, hmissed := converge(t0.Add(limit+handlerGrace), s.events.wait, nodes, cond)
		if len(hmissed) == 0 {
			f.Handler = ptr(latest(hgot, members).Sub(t0).Seconds())
		} else {
			f.Note = "event handler: " + missedNote(hmissed, len(nodes))
		}
	}
	return f
}

func missedNote(missed map[string]view, of int) string {
	var some string
	for n, v := range missed {
		some = fmt.Sprintf("%s saw: %s", n, v)
		break
	}
	return fmt.Sprintf("%d of %d nodes did not get there (%s)", len(missed), of, some)
}

func same(c func(view) bool) func(string) func(view) bool {
	return func(string) func(view) bool { return c }
}

func except(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// measure runs every phase on a fresh lab and tears it down. held adds a
// second partition, held past memberlist's gossip to the dead, and soak the
// loss soak (edged).
func measure(b *testing.B, e *env, sys string, n int, held, soak bool, rep *report) run {
	began := time.Now()
	r := run{System: sys, N: n, Metrics: map[string]figure{}}
	r.Load[0] = loadAvg()
	s := newSite(b, e, sys, n)
	s.logf("lab up, %d nodes waiting at the gate", n)

	ready := s.coldStart(&r, rep)
	s.readyPhase(&r)
	skip := func(why string, keys ...string) {
		for _, k := range keys {
			if _, done := r.Metrics[k]; !done {
				r.Metrics[k] = figure{Status: statusSkipped, Note: why}
			}
		}
	}
	later := []string{mRSS, mCPU, mTx, mStartFP, mFail, mLeave, mPartition, mRemerge}
	if held {
		later = append(later, mRemergeHeld)
	}
	if soak {
		later = append(later, mSoakFP, mLossFail)
	}
	phases := []func(*run) bool{
		func(r *run) bool { s.raftFormed(r); s.idle(r); s.startFlaps(r); return true },
		s.killPhase,
		s.leavePhase,
		func(r *run) bool { return s.partitionPhase(r, 0) },
	}
	if held {
		phases = append(phases, func(r *run) bool { return s.partitionPhase(r, e.hold) })
	}
	if soak {
		phases = append(phases, func(r *run) bool { s.soakPhase(r); return true })
	}
	for _, p := range phases {
		if !ready {
			break
		}
		ready = p(&r)
	}
	if !ready {
		skip("the site was not whole before this phase", later...)
	}
	for k, f := range r.Metrics {
		if isEdged(sys) && (f.Status == statusCap || f.Status == statusError || f.Status == statusSkipped) {
			b.Errorf("%s: %s: %s", k, f.Status, f.Note)
		}
	}
	if b.Failed() || !ready {
		s.dumpLogs(3)
	}
	r.Load[1] = loadAvg()
	r.Took = time.Since(began).Round(time.Second).String()
	s.logf("done in %s; load average %.1f at the start, %.1f at the end", r.Took, r.Load[0], r.Load[1])
	return r
}

// dumpLogs prints the end of a few node logs.
func (s *site) dumpLogs(k int) {
	for i, node := range s.lab.Nodes() {
		if i >= k {
			break
		}
		b, _ := os.ReadFile(node.Log)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		s.b.Logf("--- %s (last %d lines):\n%s", node.Log, len(lines), strings.Join(lines, "\n"))
	}
}

// coldStart releases every node at once and times full membership. A serf
// agent that exits meanwhile (with -join, those that try node1 before it
// listens: "connection refused") is started again after 100 ms, as systemd's
// Restart=on-failure would.
func (s *site) coldStart(r *run, rep *report) bool {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var exits []string
	if !isEdged(s.sys) {
		for _, name := range s.names {
			wg.Go(func() {
				for {
					if s.lab.Wait(ctx, name) != nil && ctx.Err() != nil {
						return
					}
					mu.Lock()
					exits = append(exits, name+": "+lastLine(s.nodeLog(name), "==> "))
					mu.Unlock()
					select {
					case <-time.After(100 * time.Millisecond):
					case <-ctx.Done():
						return
					}
					s.release(1)
					if err := s.lab.Start(ctx, name); err != nil {
						return
					}
				}
			})
		}
	}
	released := time.Now()
	s.released = released
	s.release(s.n)
	st, err := s.starts(s.names, released.Add(-time.Second))
	if err != nil {
		cancel()
		wg.Wait()
		s.b.Fatalf("cold start: %v", err)
	}
	var first, t0 time.Time
	for _, t := range st {
		if t.After(t0) {
			t0 = t
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	limit := startCap
	if s.sys == sysDiscover {
		limit = s.e.discoverCap
	}
	f := s.timed(t0, limit, s.names, same(allAlive(s.names)), s.names)
	cancel()
	wg.Wait()
	notes := []string{fmt.Sprintf("the %d starts spread over %.0f ms", s.n, t0.Sub(first).Seconds()*1000)}
	if len(exits) > 0 {
		notes = append(notes, fmt.Sprintf("%d agent exits during the start, each restarted after 100 ms (%s)", len(exits), exits[0]))
	}
	f.Note = strings.Join(append([]string{f.Note}, notes...), "; ")
	f.Note = strings.TrimPrefix(f.Note, "; ")
	if isEdged(s.sys) {
		s.edgedStarted(&f, t0, rep)
	}
	r.Metrics[mFull] = f
	s.logf("cold start: %s", describe(f))
	if f.Status == statusOK {
		return true
	}
	if !isEdged(s.sys) {
		// Bring the anchor together by hand so the other phases can run.
		for _, name := range s.names {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			out, err := s.lab.Command(ctx, name, s.e.serf, "join", "-rpc-addr", "127.0.0.1:7373", s.node1()+":7946").CombinedOutput()
			cancel()
			if err != nil {
				s.logf("serf join on %s: %v: %s", name, err, strings.TrimSpace(string(out)))
			}
		}
		r.Notes = append(r.Notes, "cold start did not converge within the cap: every node was then joined to node1 by hand (serf join) for the other phases")
	}
	_, missed := converge(time.Now().Add(restoreTimeout), s.primary(), s.names, same(allAlive(s.names)))
	if len(missed) > 0 {
		s.logf("no full membership even after %s more: %s", restoreTimeout, missedNote(missed, s.n))
		return false
	}
	return true
}

func (s *site) nodeLog(name string) string {
	n, err := s.lab.Node(name)
	if err != nil {
		return ""
	}
	b, _ := os.ReadFile(n.Log)
	return string(b)
}

// lastLine returns the last line of text that starts with prefix, and the
// line after it (serf prints the error of a failed join on the next line).
func lastLine(text, prefix string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			out := strings.TrimSpace(lines[i])
			if i+1 < len(lines) {
				out += " " + strings.TrimSpace(lines[i+1])
			}
			return out
		}
	}
	return "no message"
}

// edgedStarted adds the figure from edged's own Node.Started to the note.
func (s *site) edgedStarted(f *figure, t0 time.Time, rep *report) {
	var last time.Time
	var version string
	for _, name := range s.names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := s.clients[name].Status(ctx)
		cancel()
		if err != nil {
			return
		}
		if st.Node.Started.After(last) {
			last = st.Node.Started
		}
		version = st.Node.Version
	}
	rep.Versions["edged"] = version
	if f.Status == statusOK {
		f.Note += fmt.Sprintf("; %.3f s from the last Node.Started", f.Value-last.Sub(t0).Seconds())
	}
}

func describe(f figure) string {
	switch f.Status {
	case statusOK:
		s := fmt.Sprintf("%.3f", f.Value)
		if f.Max != nil {
			s += fmt.Sprintf(" (max %.3f)", *f.Max)
		}
		if f.Handler != nil {
			s += fmt.Sprintf(" [handler %.3f]", *f.Handler)
		}
		if f.Note != "" {
			s += "; " + f.Note
		}
		return s
	case statusCap:
		return fmt.Sprintf(">%.0f s: %s", f.Cap, f.Note)
	}
	return f.Status + ": " + f.Note
}

// pids returns the system's process on every node.
func (s *site) pids() (map[string]int, error) {
	out := map[string]int{}
	for _, node := range s.lab.Nodes() {
		pid, err := findProc(node.Pid, s.exe())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node.Name, err)
		}
		out[node.Name] = pid
	}
	return out, nil
}

// idle samples RSS and CPU of every node over the idle window.
func (s *site) idle(r *run) {
	time.Sleep(settle)
	fail := func(err error) {
		r.Metrics[mRSS] = figure{Status: statusError, Note: err.Error()}
		r.Metrics[mCPU] = figure{Status: statusError, Note: err.Error()}
		s.logf("idle: %v", err)
	}
	var pids map[string]int
	before := map[string]procSample{}
	var err error
	for try := 0; try < 2; try++ {
		if pids, err = s.pids(); err == nil {
			for name, pid := range pids {
				if before[name], err = readProc(pid); err != nil {
					break
				}
			}
		}
		if err == nil {
			break
		}
		s.logf("idle: %v; trying again in 1 s", err)
		time.Sleep(time.Second)
	}
	if err != nil {
		fail(err)
		return
	}
	trafficBefore, terr := s.readTraffic()
	windowStart := time.Now()
	time.Sleep(s.e.idle)
	if terr == nil {
		var trafficAfter map[string]counters
		if trafficAfter, terr = s.readTraffic(); terr == nil {
			trafficFigures(r, trafficBefore, trafficAfter, time.Since(windowStart).Seconds())
			s.logf("idle traffic: %s", format(goalOf(mTx), r.Metrics[mTx], true))
		}
	}
	if terr != nil {
		r.Metrics[mTx] = figure{Status: statusError, Note: terr.Error()}
	}
	var rssSum, rssMax, cpuSum, cpuMax float64
	rssOf, cpuOf := map[string]float64{}, map[string]float64{}
	busiest := ""
	for name, pid := range pids {
		after, err := readProc(pid)
		if err != nil {
			fail(fmt.Errorf("%s: %w (did it exit during the idle window?)", name, err))
			return
		}
		rss := float64(after.RSSKiB) / 1024
		cpu := cpuPercent(before[name], after)
		rssOf[name], cpuOf[name] = rss, cpu
		rssSum, cpuSum = rssSum+rss, cpuSum+cpu
		rssMax = max(rssMax, rss)
		if busiest == "" || cpu > cpuMax {
			busiest, cpuMax = name, cpu
		}
	}
	k := float64(len(pids))
	r.Metrics[mRSS] = figure{Value: rssSum / k, Max: ptr(rssMax), PerNode: rssOf, Status: statusOK}
	note := fmt.Sprintf("utime+stime over %s; the busiest node is %s", s.e.idle, busiest)
	if role := s.raftRole(busiest); role != "" {
		note += " (raft " + role + ")"
	}
	r.Metrics[mCPU] = figure{Value: cpuSum / k, Max: ptr(cpuMax), PerNode: cpuOf, Status: statusOK, Note: note}
	s.logf("idle: RSS %.1f MB (max %.1f), CPU %.2f %% (max %.2f); %s", rssSum/k, rssMax, cpuSum/k, cpuMax, note)
}

// startFlaps counts the failures any node saw from the cold start to the
// end of the idle window: nothing failed, so every one is false.
func (s *site) startFlaps(r *run) {
	end := time.Now()
	fs, err := s.failures(s.released, end)
	if err != nil {
		r.Metrics[mStartFP] = figure{Status: statusError, Note: err.Error()}
		return
	}
	f := s.falseFigure(fs, fmt.Sprintf("the %.0f s from the release of the cold start to the end of the idle window", end.Sub(s.released).Seconds()))
	r.Metrics[mStartFP] = f
	s.logf("false failures after the cold start: %s", describe(f))
	if isEdged(s.sys) && len(fs) > 0 {
		s.b.Errorf("%d false failures after the cold start, no loss (%s)", len(fs), f.Detail)
	}
}

// raftFormed waits until every node names the same raft leader (edged with
// raft only) and notes when; the idle window should see a settled site.
func (s *site) raftFormed(r *run) {
	if s.sys != sysEdged {
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		leaders := map[string]int{}
		for _, name := range s.names {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := s.clients[name].Status(ctx)
			cancel()
			if err == nil && st.Raft != nil && st.Raft.Leader != "" {
				leaders[st.Raft.Leader]++
			}
		}
		for l, k := range leaders {
			if k == s.n {
				note := fmt.Sprintf("raft: one group, leader %s, seen by every node %.1f s after the release of the cold start (polled)", l, time.Since(s.released).Seconds())
				r.Notes = append(r.Notes, note)
				s.logf("%s", note)
				return
			}
		}
		if time.Now().After(deadline) {
			note := fmt.Sprintf("raft: no single leader seen by every node within 60 s (leaders named: %v)", leaders)
			r.Notes = append(r.Notes, note)
			s.b.Errorf("%s", note)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// raftRole returns an edged node's raft role, "" if unknown.
func (s *site) raftRole(node string) string {
	c := s.clients[node]
	if c == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil || st.Raft == nil {
		return ""
	}
	return st.Raft.Role
}

// restart starts a stopped node again and waits until every node sees every
// node alive, the restarted one since its restart.
func (s *site) restart(name string) bool {
	s.release(1)
	t := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := s.lab.Start(ctx, name)
	cancel()
	if err != nil {
		s.logf("restart %s: %v", name, err)
		return false
	}
	_, missed := converge(t.Add(restoreTimeout), s.primary(), s.names,
		same(and(allAlive(s.names), changedTo(api.StatusAlive, t, name))))
	if len(missed) > 0 {
		s.logf("restart %s: %s", name, missedNote(missed, s.n))
		return false
	}
	return true
}

// killPhase: kill -9 of the last node, seen as failed by all others.
func (s *site) killPhase(r *run) bool {
	target := s.names[s.n-1]
	t0 := time.Now()
	if err := s.lab.Kill(target); err != nil {
		r.Metrics[mFail] = figure{Status: statusError, Note: err.Error()}
		return false
	}
	f := s.timed(t0, failCap, except(s.names, target), same(changedTo(api.StatusFailed, t0, target)), []string{target})
	r.Metrics[mFail] = f
	s.logf("kill -9 %s: %s", target, describe(f))
	return s.restart(target)
}

// leavePhase: SIGTERM of one node, seen as left by all others.
func (s *site) leavePhase(r *run) bool {
	target := s.names[s.n-2]
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	t0 := time.Now()
	if err := s.lab.Stop(ctx, target); err != nil {
		r.Metrics[mLeave] = figure{Status: statusError, Note: err.Error()}
		return false
	}
	f := s.timed(t0, leaveCap, except(s.names, target), same(changedTo(api.StatusLeft, t0, target)), []string{target})
	r.Metrics[mLeave] = f
	s.logf("leave %s: %s", target, describe(f))
	return s.restart(target)
}

// partitionPhase splits the site in two halves until each side sees the
// other failed, keeps it split for hold more, heals, and times the re-merge.
// With hold 0 the figures are mPartition and mRemerge; else mRemergeHeld.
func (s *site) partitionPhase(r *run, hold time.Duration) bool {
	key := mRemerge
	if hold > 0 {
		key = mRemergeHeld
	}
	a, b := s.names[:s.n/2], s.names[s.n/2:]
	other := func(node string) []string {
		for _, x := range a {
			if x == node {
				return b
			}
		}
		return a
	}
	t0 := time.Now()
	if err := s.lab.Partition(a, b); err != nil {
		r.Metrics[key] = figure{Status: statusError, Note: err.Error()}
		return false
	}
	f := s.timed(t0, partitionCap, s.names, func(node string) func(view) bool {
		return changedTo(api.StatusFailed, t0, other(node)...)
	}, s.names)
	if hold == 0 {
		r.Metrics[mPartition] = f
	}
	s.logf("partition %d/%d: %s", len(a), len(b), describe(f))
	if hold > 0 && f.Status == statusOK {
		s.logf("partition held %s more", hold)
		time.Sleep(hold)
	}

	t1 := time.Now()
	if err := s.lab.Heal(); err != nil {
		r.Metrics[key] = figure{Status: statusError, Note: err.Error()}
		return false
	}
	if f.Status != statusOK {
		r.Metrics[key] = figure{Status: statusSkipped, Note: "the partition was not seen by every node"}
		_, missed := converge(t1.Add(restoreTimeout), s.primary(), s.names, same(allAlive(s.names)))
		return len(missed) == 0
	}
	g := s.timed(t1, remergeCap, s.names, func(node string) func(view) bool {
		return and(allAlive(s.names), changedTo(api.StatusAlive, t1, other(node)...))
	}, s.names)
	if hold > 0 {
		g.Note = strings.TrimPrefix(g.Note+fmt.Sprintf("; healed %s after every node saw the split", hold), "; ")
	}
	r.Metrics[key] = g
	s.logf("re-merge (hold %s): %s", hold, describe(g))
	if g.Status == statusOK {
		return true
	}
	_, missed := converge(time.Now().Add(restoreTimeout), s.primary(), s.names, same(allAlive(s.names)))
	return len(missed) == 0
}

// failures returns every failure any node saw with from <= At < to: edged's
// from its logs, serf's from its member list (log lines stamped on arrival).
func (s *site) failures(from, to time.Time) ([]failure, error) {
	if !isEdged(s.sys) {
		return s.logs.failuresBetween(from, to), nil
	}
	var out []failure
	for _, node := range s.lab.Nodes() {
		f, err := os.Open(node.Log)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if at, m, ok := parseEdgedFailed(sc.Text()); ok && !at.Before(from) && at.Before(to) {
				out = append(out, failure{At: at, Observer: node.Name, Member: m})
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node.Log, err)
		}
	}
	return out, nil
}

// falseFigure counts false failures and the incidents they make.
func (s *site) falseFigure(fs []failure, window string) figure {
	f := ok(float64(len(fs)))
	if len(fs) == 0 {
		f.Note = window
		return f
	}
	inc, wide := incidents(fs, 5*time.Second, s.n-1)
	f.Detail = fmt.Sprintf("%d incidents, %d seen by half the site or more", inc, wide)
	byMember := map[string]int{}
	for _, x := range fs {
		byMember[x.Member]++
	}
	var parts []string
	for m, k := range byMember {
		parts = append(parts, fmt.Sprintf("%s x%d", m, k))
	}
	slices.Sort(parts)
	f.Note = window + "; declared failed: " + strings.Join(parts, ", ")
	return f
}

// soakPhase: 10% loss for the soak time, counting every failure any node
// saw (there must be none), then a kill -9 under loss.
func (s *site) soakPhase(r *run) {
	soakStart := time.Now()
	if err := s.lab.Loss(10); err != nil {
		r.Metrics[mSoakFP] = figure{Status: statusError, Note: err.Error()}
		return
	}
	defer func() {
		if err := s.lab.Loss(0); err != nil {
			s.b.Errorf("loss off: %v", err)
		}
	}()
	s.logf("soak: 10%% loss for %s", s.e.soak)
	time.Sleep(s.e.soak)

	target := s.names[1]
	t0 := time.Now()
	if err := s.lab.Kill(target); err != nil {
		r.Metrics[mLossFail] = figure{Status: statusError, Note: err.Error()}
	} else {
		f := s.timed(t0, failCap, except(s.names, target), same(changedTo(api.StatusFailed, t0, target)), []string{target})
		r.Metrics[mLossFail] = f
		s.logf("kill -9 %s under 10%% loss: %s", target, describe(f))
	}

	all, err := s.failures(soakStart, time.Now())
	if err != nil {
		r.Metrics[mSoakFP] = figure{Status: statusError, Note: err.Error()}
		return
	}
	var falses []failure
	seenTarget := 0
	for _, x := range all {
		if x.Member == target && !x.At.Before(t0) {
			seenTarget++
			continue
		}
		falses = append(falses, x)
	}
	f := s.falseFigure(falses, fmt.Sprintf("%s at 10%% loss on %d nodes, then the kill (the killed node was seen failed %d times, want %d)",
		s.e.soak, s.n, seenTarget, s.n-1))
	if len(falses) > 0 {
		s.b.Errorf("soak: %d false failures under 10%% loss (%s)", len(falses), f.Detail)
	}
	r.Metrics[mSoakFP] = f
	s.logf("soak: %s", describe(f))
}
