package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/hardware"
	"edge/test/lab"
)

// slowRadio is the lab's simulated inventory (lab.SimDevices) with a radio
// that takes 300 ms per read and per apply: a change then keeps a node busy
// for about a second, long enough to kill a process in the middle of it.
var slowRadio = func() []string {
	out := slices.Clone(lab.SimDevices)
	for i, l := range out {
		if strings.TrimSpace(l) == "options: {model: radio}" {
			out[i] = strings.Replace(l, "{model: radio}", "{model: radio, latency: 300ms}", 1)
		}
	}
	return out
}()

// keepLogs copies the lab's node logs to $EDGE_E2E_KEEP/TEST/ when the test
// fails (the lab's folder is removed with it), for a look at whole logs.
func keepLogs(t *testing.T, l *lab.Lab) {
	dir := os.Getenv("EDGE_E2E_KEEP")
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Log(err)
			return
		}
		for _, n := range l.Nodes() {
			if b, err := os.ReadFile(n.Log); err == nil {
				_ = os.WriteFile(filepath.Join(out, n.Name+".log"), b, 0o644)
			}
		}
		t.Logf("node logs kept in %s", out)
	})
}

// siteDoc returns a site document for the lab's site: policy is the flow
// mapping of policy: ("" for none), nodes the lines under nodes: (indented
// by two spaces).
func siteDoc(policy string, nodes ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\nsite: lab\n")
	if policy != "" {
		fmt.Fprintf(&b, "policy: {%s}\n", policy)
	}
	b.WriteString("nodes:\n")
	for _, n := range nodes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

// writeDoc writes a site document into the test's temporary folder.
func writeDoc(t *testing.T, name, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// radio is radio0's read-back values on one node.
type radio map[string]any

func (r radio) String() string {
	keys := slices.Sorted(maps.Keys(r))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, r[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// has reports whether every setting of want reads back with that value.
func (r radio) has(want radio) bool {
	for k, v := range want {
		if !hardware.Equal(r[k], v) {
			return false
		}
	}
	return true
}

// radioNow returns radio0 of the node as last read back.
func radioNow(t *testing.T, l *lab.Lab, node string) (radio, api.Device) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := clientOf(t, l, node).Devices(ctx)
	if err != nil {
		t.Fatalf("%s: devices: %v", node, err)
	}
	for _, dev := range d.Devices {
		if dev.Name == "radio0" {
			return radio(dev.Actual), dev
		}
	}
	t.Fatalf("%s: no radio0 in %+v", node, d.Devices)
	return nil, api.Device{}
}

// waitRadio waits, with blocking queries on the node's devices, until radio0
// is in sync and reads back every value of want.
func waitRadio(t *testing.T, l *lab.Lab, node string, timeout time.Duration, want radio) {
	t.Helper()
	if ok, last := radioReaches(t, l, node, timeout, want); !ok {
		t.Fatalf("%s: radio0 does not read back %v within %s (last: in_sync=%v state=%s actual=%v err=%q)",
			node, want, timeout, last.InSync, last.State, radio(last.Actual), last.LastError)
	}
}

// radioReaches reports whether radio0 came to read back want (in sync)
// within the timeout, following the node's devices with blocking queries,
// and what it read last.
func radioReaches(t *testing.T, l *lab.Lab, node string, timeout time.Duration, want radio) (bool, api.Device) {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var index uint64
	var last api.Device
	for {
		d, err := c.WaitDevices(ctx, index, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return false, last
			}
			retryPause(ctx)
			continue
		}
		for _, dev := range d.Devices {
			if dev.Name == "radio0" {
				last = dev
			}
		}
		if last.InSync && radio(last.Actual).has(want) {
			return true, last
		}
		index = d.Index
	}
}

// holdRadio watches radio0 on every listed node until the deadline and fails
// if any of them stops reading back want: for behaviour that is a time-out
// (a confirmed change must outlive its confirm deadline).
func holdRadio(t *testing.T, l *lab.Lab, nodes []string, until time.Time, want radio) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		c := clientOf(t, l, n)
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), until)
			defer cancel()
			var index uint64
			for {
				d, err := c.WaitDevices(ctx, index, time.Until(until)+time.Second)
				if err != nil {
					if ctx.Err() == nil {
						errs[i] = fmt.Errorf("%s: %w", n, err)
					}
					return
				}
				for _, dev := range d.Devices {
					if dev.Name == "radio0" && !radio(dev.Actual).has(want) {
						errs[i] = fmt.Errorf("%s: radio0 reads %v at %s, want %v until %s", n, radio(dev.Actual),
							time.Now().Format(time.TimeOnly), want, until.Format(time.TimeOnly))
						return
					}
				}
				index = d.Index
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// statusUntil returns the node's status once cond holds. Raft and site
// config have no blocking query of their own: each wait is a membership
// blocking query capped at 300 ms, after which the status is read again.
func statusUntil(t *testing.T, l *lab.Lab, node string, timeout time.Duration, what string, cond func(api.Status) bool) api.Status {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last api.Status
	for {
		st, err := c.Status(ctx)
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
			_, err = c.WaitMembers(ctx, st.Index, 300*time.Millisecond)
		}
		if err != nil && ctx.Err() == nil {
			retryPause(ctx) // the node is restarting, or busy
		}
		if ctx.Err() != nil {
			b, _ := json.Marshal(struct {
				Raft   *api.Raft
				Config *api.Config
			}{last.Raft, last.Config})
			t.Fatalf("%s: %s: not within %s (last error: %v): %s", node, what, timeout, err, b)
		}
	}
}

// retryPause waits a little before asking a node that could not answer
// again (a process that is restarting has no event to wait on).
func retryPause(ctx context.Context) {
	tm := time.NewTimer(200 * time.Millisecond)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

func hasQuorum(st api.Status) bool { return st.Raft != nil && st.Raft.Quorum && st.Raft.Leader != "" }

// leaderOf returns the raft leader as the node sees it, once there is one.
func leaderOf(t *testing.T, l *lab.Lab, node string) api.Raft {
	t.Helper()
	return *statusUntil(t, l, node, 30*time.Second, "a raft leader", hasQuorum).Raft
}

// waitChange follows a change on one node's replica with blocking queries
// until cond holds.
func waitChange(t *testing.T, l *lab.Lab, node, id string, timeout time.Duration, what string, cond func(api.Change) bool) api.Change {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var index uint64
	var last api.Change
	for {
		ch, idx, err := c.Change(ctx, id, index, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: change %s: %s: not within %s; last: %s", node, id, what, timeout, describeChange(last))
			}
			// The node may be restarting, or its replica not know the change yet.
			retryPause(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: change %s: %s: not within %s: %v; last: %s", node, id, what, timeout, err, describeChange(last))
			}
			continue
		}
		last = ch
		if cond(ch) {
			return ch
		}
		index = idx
	}
}

func isFinal(c api.Change) bool { return c.Final }

func describeChange(c api.Change) string {
	if c.ID == "" {
		return "(none)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s gen %d base %d %s", c.ID, c.Gen, c.Base, c.State)
	if c.Reason != "" {
		fmt.Fprintf(&b, " (%s)", c.Reason)
	}
	b.WriteString(";")
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, " %s=%s", n.Node, n.Phase)
		if n.Reason != "" {
			fmt.Fprintf(&b, "(%s)", n.Reason)
		}
	}
	return b.String()
}

// baseline is the site at rest: the confirmed generation, and radio0 of
// every node as it reads back.
type baseline struct {
	gen    uint64
	radios map[string]radio
}

// settle makes sure the site is at rest before a subtest: no change in
// progress (one left by a failed subtest is rolled back), every node's
// replica at the confirmed generation with its hardware driven to it and
// radio0 in sync. It returns that state.
func settle(t *testing.T, l *lab.Lab) baseline {
	t.Helper()
	st := statusUntil(t, l, "node1", 30*time.Second, "quorum", hasQuorum)
	if id := st.Config.PendingChange; id != "" {
		t.Logf("a change is still in progress (%s, %s): rolling it back", id, st.Config.State)
		_, stderr, code := edgectlRetry(t, l, "node1", "rollback")
		if code != 0 {
			t.Logf("rollback: %s", stderr)
		}
		waitChange(t, l, "node1", id, 90*time.Second, "final", isFinal)
	}
	st = statusUntil(t, l, "node1", 30*time.Second, "no change in progress", func(s api.Status) bool {
		return hasQuorum(s) && s.Config.PendingChange == ""
	})
	b := baseline{gen: st.Config.Generation, radios: map[string]radio{}}
	for _, n := range names(l) {
		statusUntil(t, l, n, 30*time.Second, fmt.Sprintf("at generation %d", b.gen), func(s api.Status) bool {
			return s.Config != nil && s.Config.Generation == b.gen && s.Config.Applied == b.gen && s.Config.PendingChange == ""
		})
		c := clientOf(t, l, n)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var index uint64
		for {
			d, err := c.WaitDevices(ctx, index, 5*time.Second)
			if err != nil {
				cancel()
				t.Fatalf("%s: radio0 not in sync: %v", n, err)
			}
			var r *api.Device
			for i := range d.Devices {
				if d.Devices[i].Name == "radio0" {
					r = &d.Devices[i]
				}
			}
			if r != nil && r.InSync && r.State == api.DeviceOK {
				b.radios[n] = radio(r.Actual)
				break
			}
			index = d.Index
		}
		cancel()
	}
	return b
}

// unchanged checks that every node still reads back the baseline and is at
// its generation.
func (b baseline) unchanged(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, n := range names(l) {
		r, dev := radioNow(t, l, n)
		if !r.has(b.radios[n]) || !dev.InSync {
			t.Errorf("%s: radio0 reads %v (in_sync=%v), want it unchanged: %v", n, r, dev.InSync, b.radios[n])
		}
		st := waitStatus(t, l, n)
		if st.Config == nil || st.Config.Generation != b.gen || st.Config.Applied != b.gen {
			t.Errorf("%s: config %+v, want generation and applied %d", n, st.Config, b.gen)
		}
	}
}

// back waits until every node reads back the baseline again.
func (b baseline) back(t *testing.T, l *lab.Lab, timeout time.Duration) {
	t.Helper()
	for _, n := range names(l) {
		waitRadio(t, l, n, timeout, b.radios[n])
	}
}

// cliTimeout bounds one edgectl run: a command that hangs is a failure
// with the lab torn down, not a test binary killed by its own time-out.
const cliTimeout = 60 * time.Second

// edgectlOn runs edgectl against a lab node's socket, for at most
// cliTimeout.
func edgectlOn(t *testing.T, l *lab.Lab, node string, args ...string) (string, string, int) {
	t.Helper()
	args = append([]string{"--socket", mustNode(t, l, node).Socket}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgectl"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: edgectl %s: no answer within %s (hung)", node, strings.Join(args[2:], " "), cliTimeout)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// edgectlWithin runs edgectl on a node with a bound of its own; hung
// reports that it had to be killed.
func edgectlWithin(t *testing.T, l *lab.Lab, node string, limit time.Duration, args ...string) (stderr string, code int, hung bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgectl"), append([]string{"--socket", mustNode(t, l, node).Socket}, args...)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return errb.String(), -1, true
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return errb.String(), ee.ExitCode(), false
	} else if err != nil {
		t.Fatal(err)
	}
	return errb.String(), 0, false
}

// edgectlRetry runs edgectl on a node and, while the answer is "no quorum"
// (a raft election in progress: not what these tests are about), waits for
// the node to see a leader and tries again, for at most 30 s. Each retry is
// logged; the last answer is returned.
func edgectlRetry(t *testing.T, l *lab.Lab, node string, args ...string) (string, string, int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, stderr, code := edgectlOn(t, l, node, args...)
		if code == 0 || !strings.Contains(stderr, "no quorum") || time.Now().After(deadline) {
			return out, stderr, code
		}
		t.Logf("%s: edgectl %s: %s(retrying once a leader is known)", node, strings.Join(args, " "), stderr)
		quorumBy(t, l, node, deadline)
	}
}

// quorumBy waits until the node sees a raft leader, or the deadline; it
// reports which.
func quorumBy(t *testing.T, l *lab.Lab, node string, deadline time.Time) bool {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		st, err := c.Status(ctx)
		if err == nil && hasQuorum(st) {
			return true
		}
		if err == nil {
			_, err = c.WaitMembers(ctx, st.Index, 300*time.Millisecond)
		}
		if err != nil && ctx.Err() == nil {
			retryPause(ctx)
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// oneLine checks that stderr is exactly one line holding every part.
func oneLine(t *testing.T, what, stderr string, parts ...string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 {
		t.Errorf("%s: want one line on stderr, got %q", what, stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("%s: stderr %q does not say %q", what, stderr, p)
		}
	}
}

// decode unmarshals edgectl's --json output.
func decode[T any](t *testing.T, what, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: not one JSON object: %v\n%s", what, err, out)
	}
	return v
}
