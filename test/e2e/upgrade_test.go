package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// previousRelease is the commit of the previous release: the release a site
// upgrades from, and that must share a site with this one. Move it forward
// at every release.
const previousRelease = "0c95286"

// TestRollingUpgrade upgrades a 5-node site (TLS, raft, simulated radios)
// from the previous release, built from git, to this build, one node at a
// time, while a goroutine keeps applying site-wide changes one after the
// other. Each node is stopped gracefully (SIGTERM, like systemctl stop),
// given the new binary and started; the next one waits until it is alive
// for every peer, has caught up with the site's generation, and the raft
// group has its 3 voters again. Order: non-voters first, then voters, the
// leader last. While the site is mixed, `edgectl status` warns about it;
// afterwards it does not. At least one change must be confirmed while each
// node is down and while the site is mixed; every failed change must be
// one the test can explain (see checkApplies: a target stopped during that
// change, the election after the leader stopped). Then one node goes back
// to the previous release (a downgrade) and takes changes again. Finally every
// node holds the same generation and its radio the last confirmed value.
// Set EDGE_E2E_KEEP=DIR to keep the node logs of a failed run.
func TestRollingUpgrade(t *testing.T) {
	needRoot(t)
	oldEdged := buildPrevious(t)
	newEdged := filepath.Join(bin, "edged")
	oldV, newV := edgedVersion(t, oldEdged), edgedVersion(t, newEdged)
	if oldV == newV {
		t.Fatalf("the previous release and this build both say version %q: build this one with another VERSION", oldV)
	}
	t.Logf("upgrading from %s (%s) to %s (%s)", oldV, oldEdged, newV, newEdged)

	l := newLab(t, 5, func(c *lab.Config) {
		c.Edged = oldEdged
		c.Extra = lab.SimDevices
	})
	keepLogs(t, l)
	all := names(l)
	waitAll(t, l, all, 20*time.Second, "all 5 alive", exactly(all...))
	for _, n := range all {
		leaderOf(t, l, n)
	}
	checkVersions(t, l, "node1", map[string]string{}, oldV, newV)

	ap := startApplier(t, l, all, oldV)
	version := map[string]string{} // node -> release, once upgraded
	var leaderStopped, leaderAfter string
	for len(version) < len(all) {
		up := upNode(all, version, "")
		site := healthy(t, l, up)
		name := nextToUpgrade(all, version, site.Raft)
		wasLeader := name == site.Raft.Leader
		t.Logf("upgrading %s (leader %s, voters %v)", name, site.Raft.Leader, site.Raft.Voters)

		dist := ap.disturb(name, wasLeader)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.Stop(ctx, name)
		cancel()
		if err != nil {
			t.Fatalf("stop %s: %v", name, err)
		}
		stopped := time.Now()
		others := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == name })
		// Seen left (a graceful leave); failed is possible too for a node
		// that had only just rejoined, and changes go on without it.
		waitAll(t, l, others, 10*time.Second, name+" gone", func(v view) bool {
			return v[name].Status == api.StatusLeft || v[name].Status == api.StatusFailed
		})
		if wasLeader {
			leaderStopped = name
			leaderAfter = statusUntil(t, l, others[0], 30*time.Second, "a leader other than "+name, func(s api.Status) bool {
				return hasQuorum(s) && s.Raft.Leader != name
			}).Raft.Leader
		}
		if r, ok := ap.successSince(stopped, 60*time.Second); !ok {
			t.Fatalf("no change was confirmed while %s was down; the last attempts:\n%s", name, ap.lastAttempts(5))
		} else {
			t.Logf("while %s was down: change %d (power_dbm %d, generation %d) confirmed through %s", name, r.i, r.value, r.gen, r.node)
		}

		if err := l.SetEdged(name, newEdged); err != nil {
			t.Fatal(err)
		}
		version[name] = newV
		rejoin(t, l, all, name, newV)
		caught := time.Now()
		ap.settled(dist, newV)

		checkVersions(t, l, name, version, oldV, newV)
		if len(version) < len(all) {
			if r, ok := ap.successSince(caught, 60*time.Second); !ok {
				t.Fatalf("no change was confirmed with %d of %d nodes upgraded; the last attempts:\n%s", len(version), len(all), ap.lastAttempts(5))
			} else {
				t.Logf("mixed, %d of %d upgraded: change %d confirmed through %s", len(version), len(all), r.i, r.node)
			}
		}
	}
	if r, ok := ap.successSince(time.Now(), 60*time.Second); !ok {
		t.Fatalf("no change was confirmed after the upgrade; the last attempts:\n%s", ap.lastAttempts(5))
	} else {
		t.Logf("all upgraded: change %d confirmed through %s", r.i, r.node)
	}
	checkVersions(t, l, "node1", version, oldV, newV)
	if leaderStopped == "" {
		t.Errorf("the upgrade never stopped the raft leader")
	} else {
		t.Logf("the leader moved from %s to %s", leaderStopped, leaderAfter)
	}

	// Downgrade: one non-voter goes back to the previous release.
	site := healthy(t, l, all[0])
	back := ""
	for _, n := range slices.Backward(all) {
		if !slices.Contains(site.Raft.Voters, n) {
			back = n
			break
		}
	}
	t.Logf("downgrading %s to %s", back, oldV)
	dist := ap.disturb(back, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.Stop(ctx, back)
	cancel()
	if err != nil {
		t.Fatalf("stop %s: %v", back, err)
	}
	if err := l.SetEdged(back, oldEdged); err != nil {
		t.Fatal(err)
	}
	version[back] = oldV
	rejoin(t, l, all, back, oldV)
	caught := time.Now()
	ap.settled(dist, oldV)
	checkVersions(t, l, back, version, oldV, newV)
	if _, ok := ap.successSince(caught, 60*time.Second); !ok {
		t.Fatalf("no change was confirmed after %s went back to %s; the last attempts:\n%s", back, oldV, ap.lastAttempts(5))
	}

	results, dists := ap.stop()
	checkApplies(t, results, dists, oldV)
	converged(t, l, all)
}

// buildPrevious builds the previous release's edged from git into the
// test's temporary folder (about a minute; the Go build cache helps on the
// next run) and returns its path.
func buildPrevious(t *testing.T) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("the previous release is built from git, and this is not a git checkout: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	commit := previousRelease + "^{commit}"
	if exec.Command("git", "-C", repo, "cat-file", "-e", commit).Run() != nil {
		// A shallow CI checkout lacks it: fetch the history once.
		out, err := exec.Command("git", "-C", repo, "fetch", "--unshallow", "--quiet").CombinedOutput()
		if exec.Command("git", "-C", repo, "cat-file", "-e", commit).Run() != nil {
			t.Fatalf("commit %s (the previous release) is not in %s, and git fetch --unshallow did not bring it (%v: %s): clone with its history",
				previousRelease, repo, err, strings.TrimSpace(string(out)))
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("git", "-C", repo, "archive", previousRelease)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var aerr, terr strings.Builder
	archive.Stderr, untar.Stderr = &aerr, &terr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v: %s", previousRelease, err, aerr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("tar -x of git archive %s: %v: %s", previousRelease, err, terr.String())
	}
	out := filepath.Join(dir, "bin")
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X edge/daemon/api.Version="+previousRelease, "-o", out+"/", "./cmd/edged")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release (%s): %v\n%s", previousRelease, err, b)
	}
	t.Logf("built the previous release %s in %s", previousRelease, time.Since(start).Round(time.Second))
	return filepath.Join(out, "edged")
}

// edgedVersion asks a binary for its version.
func edgedVersion(t *testing.T, path string) string {
	t.Helper()
	b, err := exec.Command(path, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", path, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "edged ")
	if !ok || v == "" {
		t.Fatalf("%s --version: %q", path, b)
	}
	return v
}

// upNode returns a node that is not the excluded one: the first upgraded
// one if any (the new release answers), else the first.
func upNode(all []string, version map[string]string, except string) string {
	for _, n := range all {
		if version[n] != "" && n != except {
			return n
		}
	}
	for _, n := range all {
		if n != except {
			return n
		}
	}
	return ""
}

// healthy waits until, as node sees it, the site has a leader, its 3
// voters are alive, every node is alive and no change waits for a node
// (a safe moment to stop the next one), and returns that status.
func healthy(t *testing.T, l *lab.Lab, node string) api.Status {
	t.Helper()
	return statusUntil(t, l, node, 60*time.Second, "a leader, 3 alive voters and every node alive", func(s api.Status) bool {
		if !hasQuorum(s) || len(s.Raft.Voters) != 3 {
			return false
		}
		alive := 0
		for _, m := range s.Members {
			if m.Status == api.StatusAlive {
				alive++
			}
		}
		return alive == 5
	})
}

// nextToUpgrade picks the next node: a non-voter first, then a voter that
// does not lead, the leader last (one election in the whole upgrade).
func nextToUpgrade(all []string, version map[string]string, r *api.Raft) string {
	var voters, leader []string
	for _, n := range all {
		switch {
		case version[n] != "":
		case n == r.Leader:
			leader = append(leader, n)
		case slices.Contains(r.Voters, n):
			voters = append(voters, n)
		default:
			return n
		}
	}
	return slices.Concat(voters, leader)[0]
}

// rejoin starts the node (with the binary set for it) and waits until
// every node sees it alive with the release it now runs, and it has a
// leader and has caught up with the generation the site had when it
// started.
func rejoin(t *testing.T, l *lab.Lab, all []string, name, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.Start(ctx, name)
	cancel()
	if err != nil {
		t.Fatalf("start %s on %s: %v", name, version, err)
	}
	other := upNode(all, map[string]string{}, name)
	gen := statusUntil(t, l, other, 30*time.Second, "a leader", hasQuorum).Config.Generation
	waitAll(t, l, all, 20*time.Second, name+" alive on "+version, func(v view) bool {
		return v[name].Status == api.StatusAlive && v[name].Tags[api.TagVersion] == version
	})
	statusUntil(t, l, name, 30*time.Second, fmt.Sprintf("a leader and generation %d or later", gen), func(s api.Status) bool {
		return hasQuorum(s) && s.Config != nil && s.Config.Generation >= gen
	})
}

// checkVersions runs `edgectl status` and `status --json` on node and
// checks what they say about the releases: version maps the upgraded nodes
// to theirs (the others run old).
func checkVersions(t *testing.T, l *lab.Lab, node string, version map[string]string, old, cur string) {
	t.Helper()
	want := map[string]int{}
	for _, n := range names(l) {
		want[cmpOr(version[n], old)]++
	}
	out, stderr, code := edgectlOn(t, l, node, "status")
	if code != 0 {
		t.Fatalf("%s: edgectl status: exit %d: %s", node, code, stderr)
	}
	var warn string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "warning") && strings.Contains(line, "mixed releases") {
			warn = line
		}
		if strings.Contains(line, "incompatible") {
			t.Errorf("%s: edgectl status: %q: the releases share protocol 1", node, line)
		}
	}
	if testing.Verbose() {
		t.Logf("%s: edgectl status:\n%s", node, out)
	}
	if len(want) > 1 {
		for v, k := range want {
			if !strings.Contains(warn, fmt.Sprintf("%s on %d", v, k)) {
				t.Errorf("%s: edgectl status, mixed site (%v): no warning naming %s on %d:\n%s", node, want, v, k, out)
			}
		}
	} else if warn != "" {
		t.Errorf("%s: edgectl status warns %q on a site running one release", node, warn)
	}
	out, stderr, code = edgectlOn(t, l, node, "status", "--json")
	if code != 0 {
		t.Fatalf("%s: edgectl status --json: exit %d: %s", node, code, stderr)
	}
	st := decode[api.Status](t, "status --json", out)
	got := map[string]int{}
	for _, m := range st.Members {
		v := m.Tags[api.TagVersion]
		got[v]++
		proto, has := m.Tags[api.TagProto]
		switch {
		case v == old && has:
			t.Errorf("%s: member %s on %s advertises proto %q: the previous release had no such tag", node, m.Name, v, proto)
		case v == cur && proto != api.ThisProto().String():
			t.Errorf("%s: member %s on %s advertises proto %q, want %q", node, m.Name, v, proto, api.ThisProto())
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: status --json members run %v, want %v", node, got, want)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// converged waits until no change is in progress and checks that every
// node is at the same confirmed generation, with its hardware driven to
// it and its radio at the value of that generation's document.
func converged(t *testing.T, l *lab.Lab, all []string) {
	t.Helper()
	st := statusUntil(t, l, all[0], 60*time.Second, "no change in progress", func(s api.Status) bool {
		return hasQuorum(s) && s.Config.PendingChange == ""
	})
	gen := st.Config.Generation
	out, stderr, code := edgectlRetry(t, l, all[0], "history", "--json")
	if code != 0 {
		t.Fatalf("history: exit %d: %s", code, stderr)
	}
	h := decode[api.History](t, "history --json", out)
	var file string
	for _, g := range h.Generations {
		if g.Gen == gen {
			file = g.File
		}
	}
	m := docValue.FindStringSubmatch(file)
	if h.Confirmed != gen || m == nil {
		t.Fatalf("history: confirmed %d, generation %d's file %q: want one of this test's documents", h.Confirmed, gen, file)
	}
	value, _ := strconv.Atoi(m[1])
	for _, n := range all {
		statusUntil(t, l, n, 30*time.Second, fmt.Sprintf("generation %d, applied", gen), func(s api.Status) bool {
			return s.Config != nil && s.Config.Generation == gen && s.Config.Applied == gen && s.Config.PendingChange == ""
		})
		waitRadio(t, l, n, 15*time.Second, radio{"power_dbm": float64(value)})
	}
	t.Logf("every node at generation %d, radio0 power_dbm %d", gen, value)
}

// docValue finds the value in an applier document's name.
var docValue = regexp.MustCompile(`-power-(\d+)\.yaml$`)

// applyResult is one `edgectl apply` of the applier.
type applyResult struct {
	i          int
	node       string
	release    string // that node's, when the apply began
	value      int
	start, end time.Time
	ok         bool   // exit 0 and confirmed
	gen        uint64 // of the change, when edgectl printed it
	stderr     string
}

// disturbance is a node the test took down, from just before its stop
// until it was back and caught up.
type disturbance struct {
	node       string
	leader     bool
	start, end time.Time // end zero: not over
}

// applier keeps applying site documents, one after the other, each through
// the next node that is up, until stopped.
type applier struct {
	t   *testing.T
	l   *lab.Lab
	all []string
	dir string

	mu      sync.Mutex
	changed chan struct{} // closed at every result and release of a node
	down    map[string]bool
	release map[string]string // each node's release
	using   string
	dist    []*disturbance
	results []applyResult
	quit    bool
	done    chan struct{}
}

func startApplier(t *testing.T, l *lab.Lab, all []string, release string) *applier {
	a := &applier{t: t, l: l, all: all, dir: t.TempDir(), changed: make(chan struct{}), down: map[string]bool{}, release: map[string]string{}, done: make(chan struct{})}
	for _, n := range all {
		a.release[n] = release
	}
	go a.run()
	t.Cleanup(func() { _, _ = a.stop() })
	return a
}

// notifyLocked wakes the waiters; a.mu is held.
func (a *applier) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *applier) run() {
	defer close(a.done)
	edgectl := filepath.Join(bin, "edgectl")
	for i := 0; ; i++ {
		a.mu.Lock()
		if a.quit {
			a.mu.Unlock()
			return
		}
		node := ""
		for k := range a.all {
			if n := a.all[(i+k)%len(a.all)]; !a.down[n] {
				node = n
				break
			}
		}
		a.using = node
		release := a.release[node]
		a.mu.Unlock()

		value := 10 + i%20 // never the value of the change before
		doc := siteDoc("confirm_timeout: 30s", fmt.Sprintf(`"*": {radio0: {power_dbm: %d}}`, value))
		file := filepath.Join(a.dir, fmt.Sprintf("upgrade-%04d-power-%d.yaml", i, value))
		r := applyResult{i: i, node: node, release: release, value: value, start: time.Now()}
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			r.stderr = err.Error()
		} else {
			sock := ""
			if n, err := a.l.Node(node); err == nil {
				sock = n.Socket
			}
			ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
			cmd := exec.CommandContext(ctx, edgectl, "--socket", sock, "apply", "-f", file, "--auto-confirm", "--allow-missing", "--json")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			hung := ctx.Err() != nil
			cancel()
			r.stderr = strings.TrimSpace(errb.String())
			var ee *exec.ExitError
			switch {
			case hung:
				r.stderr = fmt.Sprintf("no answer within %s (hung); %s", cliTimeout, r.stderr)
			case err != nil && !errors.As(err, &ee):
				r.stderr = err.Error()
			}
			var ch api.Change
			if jerr := json.Unmarshal([]byte(out.String()), &ch); jerr == nil {
				r.gen = ch.Gen
				r.ok = err == nil && ch.State == "confirmed"
				if err == nil && !r.ok {
					r.stderr = "exit 0 but " + describeChange(ch)
				}
			}
		}
		r.end = time.Now()
		a.mu.Lock()
		a.results = append(a.results, r)
		a.using = ""
		a.notifyLocked()
		a.mu.Unlock()
		if !r.ok {
			// Pace the retries while the site recovers (a failure answers
			// at once: "no quorum" during an election).
			select {
			case <-time.After(250 * time.Millisecond):
			case <-a.done:
			}
		}
	}
}

// disturb takes node out of the applier's rotation (waiting for an apply
// that goes through it to end) and records the disturbance that starts.
func (a *applier) disturb(node string, leader bool) *disturbance {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down[node] = true
	for a.using == node {
		ch := a.changed
		a.mu.Unlock()
		<-ch
		a.mu.Lock()
	}
	d := &disturbance{node: node, leader: leader, start: time.Now()}
	a.dist = append(a.dist, d)
	return d
}

// settled ends a disturbance: the node is back, on release, and takes
// applies again.
func (a *applier) settled(d *disturbance, release string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d.end = time.Now()
	a.release[d.node] = release
	delete(a.down, d.node)
	a.notifyLocked()
}

// successSince waits for a confirmed change whose apply started at or after
// since.
func (a *applier) successSince(since time.Time, timeout time.Duration) (applyResult, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		for _, r := range a.results {
			if r.ok && !r.start.Before(since) {
				a.mu.Unlock()
				return r, true
			}
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-a.done:
			return applyResult{}, false
		case <-deadline.C:
			return applyResult{}, false
		}
	}
}

func (a *applier) lastAttempts(n int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for _, r := range a.results[max(0, len(a.results)-n):] {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	return b.String()
}

func (r applyResult) String() string {
	s := fmt.Sprintf("#%d via %s power_dbm %d at %s (%s)", r.i, r.node, r.value, r.start.Format("15:04:05.000"), r.end.Sub(r.start).Round(time.Millisecond))
	if r.ok {
		return s + fmt.Sprintf(": confirmed, generation %d", r.gen)
	}
	return s + ": " + r.stderr
}

// stop ends the applier (waiting for the apply under way) and returns
// every result and disturbance.
func (a *applier) stop() ([]applyResult, []*disturbance) {
	a.mu.Lock()
	a.quit = true
	a.mu.Unlock()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.results), slices.Clone(a.dist)
}

// checkApplies fails on every failed apply the test cannot explain. An
// explained failure is transient and caused by the upgrade itself:
//   - "target NODE went down before it validated" (aborted) or "NODE: node
//     went down during the apply" (rolled back), for a NODE the test was
//     stopping during that apply;
//   - "no quorum" while the leader was stopped and the others elected the
//     next one;
//   - "conflict: change ... is in progress" right after one of those, while
//     the new leader finishes the interrupted change;
//   - "conflict: your change is based on generation N but the site is at
//     generation N+1" through a node of the previous release: its read
//     index waited for raft's applied index, which counts entries handed to
//     the FSM, not applied by it, so under load it planned without the
//     confirm of the change before (fixed in this release: coord.Raft.Sync
//     waits for the FSM's own index).
func checkApplies(t *testing.T, results []applyResult, dists []*disturbance, old string) {
	t.Helper()
	overlaps := func(r applyResult, d *disturbance) bool {
		end := d.end
		if end.IsZero() {
			end = time.Now()
		}
		// The leader's view of a node that just left lags a little.
		return r.start.Before(end.Add(2*time.Second)) && r.end.After(d.start)
	}
	ok, failed := 0, 0
	why := map[string]int{}
	prevExplained := false
	for _, r := range results {
		if r.ok {
			ok++
			prevExplained = false
			continue
		}
		failed++
		reason := ""
		for _, d := range dists {
			if !overlaps(r, d) {
				continue
			}
			switch {
			case strings.Contains(r.stderr, "went down") && strings.Contains(r.stderr, d.node):
				reason = d.node + " was stopped during the change"
			case strings.Contains(r.stderr, "no quorum") && d.leader:
				reason = "election after the leader " + d.node + " stopped"
			case strings.Contains(r.stderr, "is in progress") && prevExplained:
				reason = "the change interrupted by " + d.node + "'s stop was still ending"
			}
			if reason != "" {
				break
			}
		}
		if reason == "" && r.release == old && strings.Contains(r.stderr, "conflict: your change is based on generation") {
			reason = "false conflict through a node of the previous release, whose read index did not wait for its FSM"
		}
		if reason == "" {
			t.Errorf("unexplained failure: %s", r)
			prevExplained = false
			continue
		}
		why[reason]++
		prevExplained = true
		t.Logf("explained failure (%s): %s", reason, r)
	}
	t.Logf("applies: %d confirmed, %d failed %v", ok, failed, why)
	if ok == 0 {
		t.Errorf("no change was confirmed during the upgrade")
	}
}
