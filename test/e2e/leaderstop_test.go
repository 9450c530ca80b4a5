package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// A graceful stop of the raft leader of a three-node site hands the
// leadership over before the node leaves: the two others keep a leader and
// the voters they need, and a change applies on them without waiting for
// the stopped node.
func TestGracefulLeaderStopThreeNodes(t *testing.T) {
	l := newLab(t, 3, func(c *lab.Config) { c.Extra = lab.SimDevices })
	keepLogs(t, l)
	all := names(l)
	waitAll(t, l, all, 20*time.Second, "all 3 alive", exactly(all...))
	var leader string
	for _, n := range all {
		leader = leaderOf(t, l, n).Leader
	}
	st := statusUntil(t, l, leader, 30*time.Second, "3 voters", func(st api.Status) bool {
		return st.Raft != nil && len(st.Raft.Voters) == 3
	})
	t.Logf("leader %s, voters %v", leader, st.Raft.Voters)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Stop(ctx, leader); err != nil {
		t.Fatal(err)
	}
	node, _ := l.Node(leader)
	logb, _ := os.ReadFile(node.Log)
	if !strings.Contains(string(logb), "leadership handed over before stopping") {
		t.Errorf("%s's log does not show the leadership handed over:\n%s", leader, tail(string(logb), 20))
	}
	others := except(all, leader)
	for _, n := range others {
		st := statusUntil(t, l, n, 10*time.Second, "a new leader among the others", func(st api.Status) bool {
			return hasQuorum(st) && st.Raft.Leader != leader
		})
		t.Logf("%s: leader %s, voters %v", n, st.Raft.Leader, st.Raft.Voters)
	}
	doc := siteDoc("", `"*": {radio0: {power_dbm: 21}}`)
	out, stderr, code := edgectlRetry(t, l, others[0], "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--allow-missing", "--json")
	if code != 0 {
		t.Fatalf("apply without the stopped leader: exit %d: %s%s", code, stderr, out)
	}
	if ch := decode[api.Change](t, "apply --json", out); ch.State != "confirmed" {
		t.Fatalf("apply: %s", describeChange(ch))
	}
	// Two voters of three stay on the others (a leader that saw itself leave
	// no longer demotes them).
	for _, n := range others {
		st := statusUntil(t, l, n, 10*time.Second, "the raft view", hasQuorum)
		if v := len(st.Raft.Voters); v < 2 {
			t.Errorf("%s: %d voters %v after the leader's stop, want at least 2", n, v, st.Raft.Voters)
		}
	}
}

func except(all []string, drop string) []string {
	var out []string
	for _, n := range all {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}
