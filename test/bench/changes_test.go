package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/daemon/client"
	"edge/test/lab"
)

// The coordinated-change benchmark (make bench): on a lab of 30 nodes with
// simulated devices, `edgectl apply` of a change to every node, applied,
// read back and confirmed, 50 times; one raft commit as a client sees it;
// leader failover; RSS per node with raft. Beside it, in the same lab and
// the same run, the anchor: a 3-member etcd cluster (Debian's etcd-server)
// on three of the nodes' namespaces, one `etcdctl put` seen by 30
// `etcdctl watch` (one per namespace), and one put over etcd's HTTP API.

// Metric keys of the change benchmark.
const (
	cApply       = "apply_ms"           // edgectl apply --auto-confirm, wall time
	cApplyServer = "apply_server_ms"    // the change's created -> confirmed, leader's clock
	cCommit      = "commit_leader_ms"   // lock acquire on the leader: one raft commit
	cCommitFwd   = "commit_follower_ms" // the same on a non-voter: forwarded to the leader
	cFailover    = "failover_s"         // kill -9 of the leader -> a write commits again
	cFailoverAll = "failover_all_s"     // ... -> every node names the new leader
	cRSS         = "rss_mb"             // every edged, after the applies
	cApplyCPU    = "apply_cpu_ms"       // CPU of one edged per change, mean over the nodes
	cEtcdWatch   = "etcd_watch_ms"      // etcdctl put -> 30 etcdctl watchers saw it
	cEtcdPut     = "etcd_put_ms"        // HTTP put to the etcd leader: one raft commit
)

// changeSettings come from the environment; make bench passes none.
type changeSettings struct {
	sizes     []int // BENCH_CHANGES_N, default 10,30
	applies   int   // BENCH_CHANGES, default 50
	commits   int   // BENCH_COMMITS, default 200
	failovers int   // BENCH_FAILOVERS, default 3
}

func loadChangeSettings() (changeSettings, error) {
	s := changeSettings{sizes: []int{10, 30}, applies: 50, commits: 200, failovers: 3}
	if err := envSizes("BENCH_CHANGES_N", &s.sizes); err != nil {
		return s, err
	}
	for _, v := range []struct {
		env      string
		p        *int
		min, max int
	}{
		{"BENCH_CHANGES", &s.applies, 1, 10000},
		{"BENCH_COMMITS", &s.commits, 1, 100000},
		{"BENCH_FAILOVERS", &s.failovers, 0, 20},
	} {
		if raw := os.Getenv(v.env); raw != "" {
			k, err := strconv.Atoi(raw)
			if err != nil || k < v.min || k > v.max {
				return s, fmt.Errorf("%s=%q: want a number from %d to %d", v.env, raw, v.min, v.max)
			}
			*v.p = k
		}
	}
	return s, nil
}

// changeReport is BenchmarkChanges, as written to results/changes-*.json.
type changeReport struct {
	Date     string            `json:"date"`
	Commit   string            `json:"commit"`
	Dirty    bool              `json:"dirty"`
	Versions map[string]string `json:"versions"`
	Machine  machine           `json:"machine"`
	Applies  int               `json:"applies"`
	Runs     []*changeRun      `json:"runs"`
	Took     string            `json:"took"`
}

// changeRun is one lab size.
type changeRun struct {
	N int `json:"n"`
	// Latencies hold p50 as Value and p99, max, samples (and failed) in
	// PerNode; see the table for what each is.
	Metrics map[string]figure `json:"metrics"`
	Notes   []string          `json:"notes,omitempty"`
	Load    [2]float64        `json:"load"`
	Took    string            `json:"took"`
}

// bench of changes: the lab and what the phases share.
type changeBench struct {
	b       *testing.B
	e       *env
	s       changeSettings
	n       int
	lab     *lab.Lab
	names   []string
	clients map[string]*client.Client
	http    map[string]*http.Client // to etcd, per namespace
	dir     string                  // the bench's own files (not the lab's)
	rep     *changeRun
}

func (c *changeBench) logf(format string, args ...any) {
	fmt.Printf("%s changes/n=%d: %s\n", time.Now().Format("15:04:05.000"), c.n, fmt.Sprintf(format, args...))
}

func (c *changeBench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.rep.Notes = append(c.rep.Notes, msg)
	c.logf("%s", msg)
}

func BenchmarkChanges(b *testing.B) {
	needRoot(b)
	s, err := loadChangeSettings()
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, settings{})
	etcd, etcdErr := exec.LookPath("etcd")
	etcdctl, etcdctlErr := exec.LookPath("etcdctl")
	if err := errors.Join(etcdErr, etcdctlErr); err != nil {
		b.Fatalf("the anchor needs etcd and etcdctl (make deps installs etcd-server and etcd-client): %v", err)
	}
	began := time.Now()
	rep := &changeReport{
		Date: began.Format("2006-01-02"), Versions: map[string]string{}, Machine: machineInfo(), Applies: s.applies,
	}
	rep.Commit, rep.Dirty = gitCommit()
	if out, err := exec.Command(etcd, "--version").Output(); err == nil {
		rep.Versions["etcd"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	for _, n := range s.sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			r := runChanges(b, e, s, n, etcd, etcdctl)
			rep.Runs = append(rep.Runs, r)
			b.ReportMetric(0, "ns/op")
			for k, f := range r.Metrics {
				if f.Status == statusOK {
					b.ReportMetric(f.Value, "p50_"+k)
				}
			}
		})
	}
	rep.Took = time.Since(began).Round(time.Second).String()
	for _, r := range rep.Runs {
		fmt.Printf("\n%s", changeTable(rep, r))
		for _, n := range r.Notes {
			fmt.Printf("note: n=%d: %s\n", r.N, n)
		}
	}
	path, err := writeJSON("results", "changes-", rep.Date+"-"+rep.Commit, rep)
	if err != nil {
		b.Errorf("write results: %v", err)
		return
	}
	fmt.Printf("results: %s (and results/changes-latest.json); took %s\n", path, rep.Took)
}

// runChanges measures one lab of n nodes.
func runChanges(b *testing.B, e *env, s changeSettings, n int, etcd, etcdctl string) *changeRun {
	began := time.Now()
	r := &changeRun{N: n, Metrics: map[string]figure{}}
	r.Load[0] = loadAvg()
	dir, err := os.MkdirTemp("", "ec")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	own, err := os.MkdirTemp("", "ecb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(own)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	cfg := lab.Config{
		Nodes:        n,
		Dir:          dir,
		Prefix:       fmt.Sprintf("ec%d_%d", os.Getpid()%100000, labSeq.Add(1)),
		Edged:        e.edged,
		LogLevel:     "info",
		Extra:        lab.SimDevices,
		ReadyTimeout: time.Minute,
	}
	c := &changeBench{b: b, e: e, s: s, n: n, rep: r, clients: map[string]*client.Client{}, http: map[string]*http.Client{}, dir: own}
	c.logf("starting %d nodes", n)
	c.lab, err = lab.Up(ctx, cfg)
	cancel()
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	defer func() {
		if dst := os.Getenv("BENCH_KEEP_LOGS"); dst != "" {
			keepNodeLogs(c.lab, filepath.Join(dst, fmt.Sprintf("changes-n%d", n)))
		}
		if err := c.lab.Down(); err != nil {
			b.Errorf("lab down: %v", err)
		}
	}()
	for _, node := range c.lab.Nodes() {
		c.names = append(c.names, node.Name)
		c.clients[node.Name] = &client.Client{Socket: node.Socket}
	}
	leader, err := c.waitRaft(2*time.Minute, "")
	if err != nil {
		b.Fatalf("raft never formed: %v", err)
	}
	c.logf("raft: leader %s, every node holds a replica", leader)

	c.applyPhase()
	c.commitPhase()
	c.rssPhase()
	c.failoverPhase()
	c.etcdPhase(etcd, etcdctl)
	r.Load[1] = loadAvg()
	r.Took = time.Since(began).Round(time.Second).String()
	return r
}

// keepNodeLogs copies every node's log to dir (BENCH_KEEP_LOGS=DIR).
func keepNodeLogs(l *lab.Lab, dir string) {
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	for _, n := range l.Nodes() {
		if b, err := os.ReadFile(n.Log); err == nil {
			_ = os.WriteFile(filepath.Join(dir, n.Name+".log"), b, 0o644)
		}
	}
}

// status asks one node, bounded.
func (c *changeBench) status(node string, limit time.Duration) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return c.clients[node].Status(ctx)
}

// waitRaft waits until every running node names one leader other than
// not, and holds a replica (a voter or a non-voter), and returns the
// leader. Nodes are asked one after the other, so a pass is ~n requests.
func (c *changeBench) waitRaft(limit time.Duration, not string) (string, error) {
	deadline := time.Now().Add(limit)
	var last string
	for {
		leaders := map[string]int{}
		asked := 0
		for _, n := range c.names {
			if n == not {
				continue
			}
			asked++
			st, err := c.status(n, 5*time.Second)
			if err != nil {
				last = fmt.Sprintf("%s: %v", n, err)
				continue
			}
			if st.Raft == nil {
				last = n + ": raft off"
				continue
			}
			switch st.Raft.Role {
			case "leader", "follower", "nonvoter":
				if st.Raft.Leader != "" && st.Raft.Leader != not {
					leaders[st.Raft.Leader]++
					continue
				}
			}
			last = fmt.Sprintf("%s: role %s, leader %q", n, st.Raft.Role, st.Raft.Leader)
		}
		for l, k := range leaders {
			if k == asked {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("after %s: leaders named %v; last: %s", limit, leaders, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// applyDoc is change i: every radio's power, so every node changes.
func applyDoc(i int) (string, float64) {
	p := float64(21 + i%10)
	return fmt.Sprintf("version: 1\nsite: lab\npolicy: {confirm_timeout: 1m}\nnodes:\n  \"*\": {radio0: {power_dbm: %g}}\n", p), p
}

// applyPhase runs the applies one after the other, each from the next node
// (an engineer may be on any of them), and checks every result.
func (c *changeBench) applyPhase() {
	edgectl := c.e.edgectl
	cpu0, at0 := c.cpuTicks()
	var wall, server []time.Duration
	var last float64
	failed := 0
	for i := 0; i < c.s.applies; i++ {
		doc, p := applyDoc(i)
		path := filepath.Join(c.dir, "site.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			c.b.Fatal(err)
		}
		node := c.names[i%len(c.names)]
		n, _ := c.lab.Node(node)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, edgectl, "--socket", n.Socket, "apply", "-f", path, "--auto-confirm", "--json")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		cancel()
		if err != nil {
			failed++
			c.note("apply %d from %s: %v: %s", i+1, node, err, strings.TrimSpace(errb.String()))
			continue
		}
		var ch api.Change
		if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
			failed++
			c.note("apply %d: output: %v", i+1, err)
			continue
		}
		if bad := checkChange(ch, c.names); bad != "" {
			failed++
			c.note("apply %d from %s: %s", i+1, node, bad)
			continue
		}
		wall = append(wall, d)
		if len(ch.History) > 0 {
			server = append(server, ch.History[len(ch.History)-1].Time.Sub(ch.Created))
		}
		last = p
	}
	c.rep.Metrics[cApply] = latencyFigure(wall, failed)
	c.rep.Metrics[cApplyServer] = latencyFigure(server, 0)
	// What a node spends on a change (idle work included): on a site every
	// node has a CPU of its own; in the lab all of them share this machine's.
	if cpu1, at1 := c.cpuTicks(); cpu1 > cpu0 && c.s.applies > 0 {
		ms := float64(cpu1-cpu0) / clockTicks * 1000
		f := ok(ms / float64(len(c.names)) / float64(c.s.applies))
		f.Detail = fmt.Sprintf("all nodes together used %.2f cores over the %.1f s of applies", ms/1000/at1.Sub(at0).Seconds(), at1.Sub(at0).Seconds())
		c.rep.Metrics[cApplyCPU] = f
		c.logf("CPU per node per change: %.1f ms (%s)", f.Value, f.Detail)
	}
	c.logf("apply to %d nodes: %s", len(c.names), describeLatency(c.rep.Metrics[cApply]))
	if failed > 0 {
		c.note("%d of %d applies did not end confirmed on every node (each one above)", failed, c.s.applies)
	}
	// The hardware of every node reads back the last change.
	if last != 0 {
		for _, n := range c.names {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d, err := c.clients[n].Devices(ctx)
			cancel()
			if err != nil {
				c.b.Errorf("%s: devices: %v", n, err)
				continue
			}
			i := slices.IndexFunc(d.Devices, func(d api.Device) bool { return d.Name == "radio0" })
			if i < 0 || d.Devices[i].Actual["power_dbm"] != last {
				c.b.Errorf("%s: radio0 reads %v after the last change, want power_dbm %g", n, d.Devices, last)
			}
		}
	}
}

// checkChange says what is wrong with a finished apply: it must be
// confirmed with every node applied.
func checkChange(ch api.Change, names []string) string {
	if ch.State != "confirmed" || !ch.Final {
		return fmt.Sprintf("change %s ended %s (%s)", ch.ID, ch.State, ch.Reason)
	}
	if len(ch.Nodes) != len(names) {
		return fmt.Sprintf("change %s reached %d nodes, want %d", ch.ID, len(ch.Nodes), len(names))
	}
	for _, p := range ch.Nodes {
		if p.Phase != "applied" {
			return fmt.Sprintf("change %s: %s is %s (%s)", ch.ID, p.Node, p.Phase, p.Reason)
		}
	}
	return ""
}

// latencyFigure: p50 as the value, p99 and max beside it, in ms.
func latencyFigure(ds []time.Duration, failed int) figure {
	if len(ds) == 0 {
		return figure{Status: statusError, Note: "no sample"}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	f := ok(hwMS(hwPercentile(s, 0.50)))
	f.PerNode = map[string]float64{"p99": hwMS(hwPercentile(s, 0.99)), "max": hwMS(s[len(s)-1]), "samples": float64(len(s))}
	if failed > 0 {
		f.PerNode["failed"] = float64(failed)
	}
	return f
}

func describeLatency(f figure) string {
	if f.Status != statusOK {
		return f.Status + ": " + f.Note
	}
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms over %.0f", f.Value, f.PerNode["p99"], f.PerNode["max"], f.PerNode["samples"])
}

// leaderAndNonvoter returns the leader and one non-voter (a voter when
// the site has no non-voter).
func (c *changeBench) leaderAndNonvoter() (leader, other string) {
	for _, n := range c.names {
		st, err := c.status(n, 5*time.Second)
		if err != nil || st.Raft == nil {
			continue
		}
		switch st.Raft.Role {
		case "leader":
			leader = n
		case "nonvoter":
			other = n
		case "follower":
			if other == "" {
				other = n
			}
		}
	}
	return leader, other
}

// commitPhase takes and frees a lock, the smallest raft write a client can
// make, on the leader and on a non-voter (forwarded over mutual TLS).
func (c *changeBench) commitPhase() {
	leader, other := c.leaderAndNonvoter()
	if leader == "" || other == "" {
		c.rep.Metrics[cCommit] = figure{Status: statusError, Note: "no leader or follower found"}
		return
	}
	for _, x := range []struct{ key, node string }{{cCommit, leader}, {cCommitFwd, other}} {
		var ds []time.Duration
		failed := 0
		cl := c.clients[x.node]
		for i := 0; i < c.s.commits; i++ {
			// A lock of its own per try: a try that times out after its
			// commit leaves a holder behind, which must not block the rest.
			req := api.LockRequest{Name: fmt.Sprintf("bench-commit-%s-%d", x.node, i), Holder: "bench", Limit: 1}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t0 := time.Now()
			_, err := cl.Lock(ctx, req)
			d := time.Since(t0)
			if err == nil {
				ds = append(ds, d)
				err = cl.Unlock(ctx, req)
			}
			cancel()
			if err != nil {
				failed++
				if failed <= 3 {
					c.note("lock on %s: %v", x.node, err)
				}
			}
		}
		c.rep.Metrics[x.key] = latencyFigure(ds, failed)
		c.logf("%s on %s: %s", x.key, x.node, describeLatency(c.rep.Metrics[x.key]))
	}
}

// cpuTicks is the CPU time every edged of the lab used so far.
func (c *changeBench) cpuTicks() (uint64, time.Time) {
	var sum uint64
	for _, n := range c.lab.Nodes() {
		pid, err := findProc(n.Pid, "edged")
		if err != nil {
			continue
		}
		if ps, err := readProc(pid); err == nil {
			sum += ps.Ticks
		}
	}
	return sum, time.Now()
}

// rssPhase reads every edged's resident memory.
func (c *changeBench) rssPhase() {
	leader, _ := c.leaderAndNonvoter()
	per := map[string]float64{}
	var sum, top float64
	for _, n := range c.lab.Nodes() {
		pid, err := findProc(n.Pid, "edged")
		if err != nil {
			c.note("rss %s: %v", n.Name, err)
			continue
		}
		ps, err := readProc(pid)
		if err != nil {
			c.note("rss %s: %v", n.Name, err)
			continue
		}
		mb := float64(ps.RSSKiB) / 1024
		per[n.Name] = mb
		sum += mb
		top = max(top, mb)
	}
	if len(per) == 0 {
		c.rep.Metrics[cRSS] = figure{Status: statusError, Note: "no edged found"}
		return
	}
	f := ok(sum / float64(len(per)))
	f.Max, f.PerNode = ptr(top), per
	f.Detail = fmt.Sprintf("leader %s %.1f MB", leader, per[leader])
	c.rep.Metrics[cRSS] = f
	c.logf("rss: mean %.1f MB, max %.1f MB, %s", f.Value, top, f.Detail)
}

// failoverPhase kills the leader with SIGKILL and times, from the kill,
// the first write that commits again (a lock through a surviving voter,
// retried every 20 ms) and the moment every other node names the new
// leader. The old leader is restarted before the next round.
func (c *changeBench) failoverPhase() {
	var first, all []time.Duration
	for round := 0; round < c.s.failovers; round++ {
		old, _ := c.leaderAndNonvoter()
		if old == "" {
			c.note("failover %d: no leader", round+1)
			break
		}
		st, err := c.status(old, 5*time.Second)
		if err != nil || st.Raft == nil {
			c.note("failover %d: %s: %v", round+1, old, err)
			break
		}
		probe := ""
		for _, v := range st.Raft.Voters {
			if v != old {
				probe = v
				break
			}
		}
		if probe == "" {
			c.note("failover %d: no other voter", round+1)
			break
		}
		t0 := time.Now()
		if err := c.lab.Kill(old); err != nil {
			c.note("failover %d: kill %s: %v", round+1, old, err)
			break
		}
		var wrote time.Duration
		var lastErr error
		for i := 0; time.Since(t0) < 30*time.Second; i++ {
			req := api.LockRequest{Name: fmt.Sprintf("bench-failover-%d-%d", round, i), Holder: "probe", Limit: 1}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, err := c.clients[probe].Lock(ctx, req)
			lastErr = err
			if err == nil {
				wrote = time.Since(t0)
				_ = c.clients[probe].Unlock(ctx, req)
				cancel()
				break
			}
			cancel()
			time.Sleep(20 * time.Millisecond)
		}
		if wrote == 0 {
			c.note("failover %d: no write committed within 30 s of killing %s (last error: %v)", round+1, old, lastErr)
		} else {
			first = append(first, wrote)
		}
		newLeader, err := c.waitRaft(30*time.Second, old)
		if err != nil {
			c.note("failover %d: %v", round+1, err)
		} else {
			all = append(all, time.Since(t0))
			c.logf("failover %d: killed %s; a write committed after %.2f s, all %d others name %s after %.2f s (polled)",
				round+1, old, wrote.Seconds(), len(c.names)-1, newLeader, time.Since(t0).Seconds())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.lab.Start(ctx, old)
		cancel()
		if err != nil {
			c.b.Errorf("failover %d: restart %s: %v", round+1, old, err)
			return
		}
		if _, err := c.waitRaft(time.Minute, ""); err != nil {
			c.b.Errorf("failover %d: after restarting %s: %v", round+1, old, err)
			return
		}
	}
	c.rep.Metrics[cFailover] = secondsFigure(first)
	c.rep.Metrics[cFailoverAll] = secondsFigure(all)
}

// secondsFigure: the median as the value, max beside it, in seconds.
func secondsFigure(ds []time.Duration) figure {
	if len(ds) == 0 {
		return figure{Status: statusError, Note: "no sample"}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	f := ok(s[len(s)/2].Seconds())
	f.Max = ptr(s[len(s)-1].Seconds())
	f.PerNode = map[string]float64{"samples": float64(len(s))}
	return f
}

// etcdPhase starts a 3-member etcd on node1..node3 of the same lab (edged
// keeps running), 30 etcdctl watchers, one per namespace, and times puts.
func (c *changeBench) etcdPhase(etcd, etcdctl string) {
	if len(c.names) < 3 {
		return
	}
	members := c.names[:3]
	var initial []string
	urls := map[string]string{}
	for _, m := range members {
		n, _ := c.lab.Node(m)
		initial = append(initial, fmt.Sprintf("%s=http://%s:12380", m, n.Addr))
		urls[m] = fmt.Sprintf("http://%s:12379", n.Addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var procs []*exec.Cmd
	var wg sync.WaitGroup
	defer func() {
		cancel() // the readers stop sending
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
		wg.Wait()
	}()
	for _, m := range members {
		n, _ := c.lab.Node(m)
		data := filepath.Join(c.dir, "etcd-"+m)
		logf, err := os.Create(data + ".log")
		if err != nil {
			c.b.Fatal(err)
		}
		defer logf.Close()
		cmd := c.lab.Command(ctx, m, etcd,
			"--name", m, "--data-dir", data,
			"--listen-peer-urls", fmt.Sprintf("http://%s:12380", n.Addr),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:12380", n.Addr),
			"--listen-client-urls", urls[m], "--advertise-client-urls", urls[m],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench",
		)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			c.b.Fatalf("etcd on %s: %v", m, err)
		}
		procs = append(procs, cmd)
	}
	endpoints := strings.Join([]string{urls[members[0]], urls[members[1]], urls[members[2]]}, ",")
	ctl := func(ctx context.Context, node string, args ...string) *exec.Cmd {
		cmd := c.lab.Command(ctx, node, append([]string{etcdctl, "--endpoints", endpoints}, args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		return cmd
	}
	// Healthy: one put goes through.
	deadline := time.Now().Add(time.Minute)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := ctl(pctx, members[0], "put", "bench/ready", "1").CombinedOutput()
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.rep.Metrics[cEtcdWatch] = figure{Status: statusError, Note: "etcd did not start: " + strings.TrimSpace(string(out))}
			c.b.Errorf("etcd did not start: %v: %s", err, out)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.logf("etcd: 3 members up on %v", members)

	// The watchers: one etcdctl watch in every namespace, each connected to
	// one member (round robin), its lines time-stamped as they arrive.
	type seen struct {
		watcher int
		value   string
		at      time.Time
	}
	seenc := make(chan seen, 1024)
	for i, n := range c.names {
		member := urls[members[i%3]]
		cmd := c.lab.Command(ctx, n, etcdctl, "--endpoints", member, "watch", "bench/key")
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err := cmd.StdoutPipe()
		if err != nil {
			c.b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			c.b.Fatalf("etcdctl watch on %s: %v", n, err)
		}
		procs = append(procs, cmd)
		wg.Add(1)
		go func(i int, r io.Reader) {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if v := sc.Text(); strings.HasPrefix(v, "v") || strings.HasPrefix(v, "w") {
					select {
					case seenc <- seen{i, v, time.Now()}:
					case <-ctx.Done():
						return
					}
				}
			}
		}(i, out)
	}
	// awaitAll waits until every watcher has seen value.
	awaitAll := func(value string, limit time.Duration) (time.Time, bool) {
		got := map[int]bool{}
		var lastAt time.Time
		timer := time.NewTimer(limit)
		defer timer.Stop()
		for len(got) < len(c.names) {
			select {
			case s := <-seenc:
				if s.value == value && !got[s.watcher] {
					got[s.watcher] = true
					lastAt = s.at
				}
			case <-timer.C:
				return lastAt, false
			}
		}
		return lastAt, true
	}
	// Warm up until every watcher is in place: watches start asynchronously,
	// so put until one value reaches all of them.
	ready := false
	for k := 0; k < 60 && !ready; k++ {
		v := fmt.Sprintf("w%d", k)
		if out, err := ctl(ctx, members[0], "put", "bench/key", v).CombinedOutput(); err != nil {
			c.note("etcd warm-up put: %v: %s", err, out)
			continue
		}
		_, ready = awaitAll(v, time.Second)
	}
	if !ready {
		c.rep.Metrics[cEtcdWatch] = figure{Status: statusError, Note: "the watchers never all saw a put"}
		c.b.Errorf("etcd: the watchers never all saw a put")
		return
	}
	var lat []time.Duration
	failed := 0
	for i := 0; i < c.s.applies; i++ {
		v := fmt.Sprintf("v%d", i)
		writer := c.names[i%len(c.names)]
		t0 := time.Now()
		if out, err := ctl(ctx, writer, "put", "bench/key", v).CombinedOutput(); err != nil {
			failed++
			c.note("etcd put %d: %v: %s", i, err, out)
			continue
		}
		at, ok := awaitAll(v, 10*time.Second)
		if !ok {
			failed++
			c.note("etcd put %d: not every watcher saw it within 10 s", i)
			continue
		}
		lat = append(lat, at.Sub(t0))
	}
	c.rep.Metrics[cEtcdWatch] = latencyFigure(lat, failed)
	c.logf("etcd put -> %d watchers: %s", len(c.names), describeLatency(c.rep.Metrics[cEtcdWatch]))
	c.etcdPuts(urls, members)
}

// etcdPuts times single puts over etcd's HTTP API (the v3 JSON gateway) on
// one kept-alive connection to the leader, from the leader's namespace: one
// raft commit, as commitPhase measures it for edged.
func (c *changeBench) etcdPuts(urls map[string]string, members []string) {
	leader := ""
	for _, m := range members {
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := c.etcdPost(m, urls[m]+"/v3/maintenance/status", struct{}{}, &st); err == nil && st.Leader != "" && st.Leader == st.Header.MemberID {
			leader = m
		}
	}
	if leader == "" {
		c.rep.Metrics[cEtcdPut] = figure{Status: statusError, Note: "no etcd leader found over HTTP"}
		return
	}
	var ds []time.Duration
	failed := 0
	for i := 0; i < c.s.commits; i++ {
		body := map[string]string{
			"key":   base64.StdEncoding.EncodeToString([]byte("bench/put")),
			"value": base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))),
		}
		t0 := time.Now()
		if err := c.etcdPost(leader, urls[leader]+"/v3/kv/put", body, nil); err != nil {
			failed++
			if failed <= 3 {
				c.note("etcd HTTP put: %v", err)
			}
			continue
		}
		ds = append(ds, time.Since(t0))
	}
	c.rep.Metrics[cEtcdPut] = latencyFigure(ds, failed)
	c.logf("etcd put on the leader %s: %s", leader, describeLatency(c.rep.Metrics[cEtcdPut]))
}

// etcdPost posts body as JSON to url from node's namespace, over one
// kept-alive connection per node, and decodes the answer into out.
func (c *changeBench) etcdPost(node, url string, body, out any) error {
	hc := c.http[node]
	if hc == nil {
		hc = c.httpFrom(node)
		c.http[node] = hc
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := hc.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// httpFrom is an HTTP client whose connections are dialed on a thread
// inside node's namespace, so they belong to it for their whole life.
func (c *changeBench) httpFrom(node string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var conn net.Conn
				err := c.lab.Do(node, func() error {
					var err error
					conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return err
				})
				return conn, err
			},
			MaxIdleConnsPerHost: 1,
		},
	}
}

// changeTable renders the figures of one run beside their goals and
// anchors.
func changeTable(rep *changeReport, r *changeRun) string {
	m := r.Metrics
	var b strings.Builder
	fmt.Fprintf(&b, "coordinated change, %d nodes, commit %s", r.N, rep.Commit)
	if rep.Dirty {
		b.WriteString(" (dirty)")
	}
	fmt.Fprintf(&b, ", load %.1f -> %.1f, took %s\n", r.Load[0], r.Load[1], r.Took)
	row := func(what string, f figure, unit, goal string) {
		val := f.Status
		if f.Status == statusOK {
			val = fmt.Sprintf("%s %s", num(f.Value), unit)
			if p99, ok := f.PerNode["p99"]; ok {
				val += fmt.Sprintf(" (p99 %s, max %s)", num(p99), num(f.PerNode["max"]))
			} else if f.Max != nil {
				val += fmt.Sprintf(" (max %s)", num(*f.Max))
			}
			if f.Detail != "" {
				val += ", " + f.Detail
			}
		} else if f.Note != "" {
			val += ": " + f.Note
		}
		fmt.Fprintf(&b, "  %-48s %-44s %s\n", what, val, goal)
	}
	verdict := func(okIf bool, goal string) string {
		if okIf {
			return goal + ": met"
		}
		return goal + ": missed"
	}
	a := m[cApply]
	row("edgectl apply, all nodes applied+read back (p50)", a, "ms", verdict(a.Status == statusOK && a.PerNode["p99"] <= 300, "goal p99 <= 300 ms"))
	row("  the same, leader's clock (created->confirmed)", m[cApplyServer], "ms", "")
	row("  CPU of one node per change (mean)", m[cApplyCPU], "ms", "")
	row("one raft commit, client on the leader (p50)", m[cCommit], "ms", "")
	row("one raft commit, client on a non-voter (p50)", m[cCommitFwd], "ms", "")
	f := m[cFailover]
	row("failover: kill -9 leader -> write commits (median)", f, "s", verdict(f.Status == statusOK && f.Max != nil && *f.Max <= 2, "goal <= 2 s"))
	row("failover: -> every node names the leader (median)", m[cFailoverAll], "s", "")
	rss := m[cRSS]
	row("RSS per edged with raft (mean)", rss, "MB", verdict(rss.Status == statusOK && rss.Max != nil && *rss.Max <= 20, "goal <= 20 MB (max)"))
	row(fmt.Sprintf("anchor: etcdctl put -> %d etcdctl watchers (p50)", r.N), m[cEtcdWatch], "ms", "")
	row("anchor: etcd put over HTTP on its leader (p50)", m[cEtcdPut], "ms", "")
	if e, w := m[cApply], m[cEtcdWatch]; e.Status == statusOK && w.Status == statusOK && w.Value > 0 {
		fmt.Fprintf(&b, "  ratio apply / etcd write-to-watch: p50 %.2fx, p99 %.2fx\n", e.Value/w.Value, e.PerNode["p99"]/w.PerNode["p99"])
	}
	if e, w := m[cCommit], m[cEtcdPut]; e.Status == statusOK && w.Status == statusOK && w.Value > 0 {
		fmt.Fprintf(&b, "  ratio raft commit / etcd put: p50 %.2fx, p99 %.2fx\n", e.Value/w.Value, e.PerNode["p99"]/w.PerNode["p99"])
	}
	return b.String()
}
