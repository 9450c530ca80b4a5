package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// raftPeersOf runs `edgectl raft peers --json` on a node.
func raftPeersOf(t *testing.T, l *lab.Lab, node string) api.RaftPeers {
	t.Helper()
	out, stderr, code := edgectlOn(t, l, node, "raft", "peers", "--json")
	if code != 0 {
		t.Fatalf("%s: raft peers --json: exit %d: %s", node, code, stderr)
	}
	return decode[api.RaftPeers](t, "raft peers --json", out)
}

// raftServers renders a raft configuration as "id=suffrage@address" entries.
func raftServers(p api.RaftPeers) []string {
	var out []string
	for _, s := range p.Servers {
		out = append(out, s.ID+"="+s.Suffrage+"@"+s.Address)
	}
	return out
}

// applyConfirmed applies doc on node with --auto-confirm and checks that it
// was confirmed on every target.
func applyConfirmed(t *testing.T, l *lab.Lab, node, doc string, targets int) api.Change {
	t.Helper()
	out, stderr, code := edgectlRetry(t, l, node, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--json")
	if code != 0 {
		t.Fatalf("%s: apply: exit %d: %s%s", node, code, stderr, out)
	}
	ch := decode[api.Change](t, "apply --json", out)
	if ch.State != "confirmed" || len(ch.Nodes) != targets {
		t.Fatalf("%s: apply: %s, want confirmed on %d nodes", node, describeChange(ch), targets)
	}
	return ch
}

// atGeneration waits until the node's replica holds generation gen,
// confirmed, and its hardware is driven to it.
func atGeneration(t *testing.T, l *lab.Lab, node string, gen uint64, timeout time.Duration) api.Status {
	t.Helper()
	return statusUntil(t, l, node, timeout, fmt.Sprintf("generation %d confirmed and applied", gen), func(s api.Status) bool {
		return s.Config != nil && s.Config.Generation == gen && s.Config.Applied == gen && s.Config.State == "confirmed"
	})
}

// TestRecoverLostQuorum: a site of three loses two voters: node2 is
// destroyed, node3 powered off with its disk. The survivor keeps its data
// but answers "no quorum" until the operator stops it, writes the
// peers.json that `edgectl raft peers --peers-json` printed into
// <data_dir>/raft/ and starts it again: then it leads alone with the whole
// history, a new change applies, and two fresh nodes join, get replicas and
// votes (3 voters again). A bad peers.json refuses the start and is left in
// place. Last, node3 comes back alone with its old raft state: the leader
// takes it as a non-voter of the new configuration and it catches up.
func TestRecoverLostQuorum(t *testing.T) {
	l := newLab(t, 3, func(c *lab.Config) { c.Extra = lab.SimDevices })
	keepLogs(t, l)
	site := names(l)
	waitAll(t, l, site, 20*time.Second, "3 alive", exactly(site...))
	leaderOf(t, l, "node1")
	first := applyConfirmed(t, l, "node1", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 23}}`), 3)
	for _, n := range site {
		atGeneration(t, l, n, first.Gen, 20*time.Second)
	}
	out, stderr, code := edgectlOn(t, l, "node1", "history", "--json")
	if code != 0 {
		t.Fatalf("history: %s", stderr)
	}
	history := decode[api.History](t, "history --json", out)
	before := raftPeersOf(t, l, "node1")
	if got := raftServers(before); len(got) != 3 || strings.Count(strings.Join(got, " "), "=voter@") != 3 {
		t.Fatalf("raft configuration before: %v, want three voters", got)
	}

	// Two voters lost: node2 destroyed (kill -9, namespace and disk
	// gone), node3 killed with its disk kept.
	if err := l.RemoveNode("node2"); err != nil {
		t.Fatal(err)
	}
	if err := l.Kill("node3"); err != nil {
		t.Fatal(err)
	}
	waitView(t, l, "node1", 20*time.Second, "node2 and node3 failed", func(v view) bool {
		return v["node2"].Status == api.StatusFailed && v["node3"].Status == api.StatusFailed
	})
	statusUntil(t, l, "node1", 20*time.Second, "no quorum", func(s api.Status) bool { return s.Raft != nil && !s.Raft.Quorum })
	doc := writeDoc(t, "site.yaml", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 24}}`))
	_, stderr, code = edgectlOn(t, l, "node1", "apply", "-f", doc, "--auto-confirm")
	if code != 1 {
		t.Fatalf("apply without quorum: exit %d, want 1: %s", code, stderr)
	}
	oneLine(t, "apply without quorum", stderr, "no quorum")

	// What the operator reads: the last configuration, without quorum.
	p := raftPeersOf(t, l, "node1")
	if p.Leader != "" || !reflect.DeepEqual(raftServers(p), raftServers(before)) {
		t.Errorf("raft peers without quorum: leader %q, %v; want none and %v", p.Leader, raftServers(p), raftServers(before))
	}
	for _, s := range p.Servers {
		want := api.StatusFailed
		if s.ID == "node1" {
			want = api.StatusAlive
		}
		if s.Status != want {
			t.Errorf("raft peers: %s is %s, want %s", s.ID, s.Status, want)
		}
	}
	table, _, code := edgectlOn(t, l, "node1", "raft", "peers")
	if code != 0 || !strings.Contains(table, "leader none (no quorum)") || !strings.Contains(table, fmt.Sprintf("generation %d", first.Gen)) {
		t.Errorf("raft peers table (exit %d):\n%s", code, table)
	}
	file, stderr, code := edgectlOn(t, l, "node1", "raft", "peers", "--peers-json")
	if code != 0 {
		t.Fatalf("raft peers --peers-json: exit %d: %s", code, stderr)
	}
	oneLine(t, "raft peers --peers-json", stderr, "left out", "node2 (failed)", "node3 (failed)")
	var entries []api.PeersJSONEntry
	if err := json.Unmarshal([]byte(file), &entries); err != nil {
		t.Fatalf("--peers-json: %v\n%s", err, file)
	}
	n1 := mustNode(t, l, "node1")
	if len(entries) != 1 || entries[0].ID != "node1" || entries[0].NonVoter || !strings.HasPrefix(entries[0].Address, n1.Addr.String()+":") {
		t.Fatalf("--peers-json: %s", file)
	}

	// The procedure: stop, write the file, start.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.Stop(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	raftDir := filepath.Join(n1.Dir, "data", "raft")
	peersPath := filepath.Join(raftDir, "peers.json")
	bad := strings.Replace(file, `"non_voter"`, `"nonvoter"`, 1)
	if err := os.WriteFile(peersPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	// Refused as a config error (exit 78: systemd does not restart it),
	// before the node joins the site.
	if err := l.Start(ctx, "node1"); err == nil || !strings.Contains(err.Error(), "exit status 78") {
		t.Fatalf("edged with a bad peers.json: %v, want exit status 78", err)
	}
	waitLog(t, n1.Log, 5*time.Second, peersPath+":2: [0].nonvoter: unknown key")
	if _, err := os.Stat(peersPath); err != nil {
		t.Fatalf("the bad file was moved: %v", err)
	}
	if err := os.WriteFile(peersPath, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n1.Log, 5*time.Second, "MANUAL RAFT RECOVERY done")
	if _, err := os.Stat(peersPath); !os.IsNotExist(err) {
		t.Errorf("peers.json still there after the recovery: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(raftDir, "peers.json.applied")); err != nil || string(b) != file {
		t.Errorf("peers.json.applied: %v %q, want the file applied", err, b)
	}
	st := statusUntil(t, l, "node1", 30*time.Second, "node1 leads alone", func(s api.Status) bool {
		return hasQuorum(s) && s.Raft.Leader == "node1" && s.Config != nil && s.Config.Generation == first.Gen
	})
	if !slices.Equal(st.Raft.Voters, []string{"node1"}) || st.Raft.Role != "leader" {
		t.Errorf("after the recovery: %+v", *st.Raft)
	}
	// Nothing lost: the same history.
	out, stderr, code = edgectlOn(t, l, "node1", "history", "--json")
	if code != 0 {
		t.Fatalf("history: %s", stderr)
	}
	if after := decode[api.History](t, "history --json", out); !reflect.DeepEqual(after, history) {
		t.Errorf("history after the recovery:\n%+v\nwant\n%+v", after, history)
	}
	second := applyConfirmed(t, l, "node1", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 24}}`), 1)
	if second.Base != first.Gen {
		t.Errorf("the change after the recovery: %s, want base %d", describeChange(second), first.Gen)
	}
	waitRadio(t, l, "node1", 10*time.Second, radio{"power_dbm": 24.0})

	// Two fresh nodes join, get replicas, and the promoter gives them
	// votes: three voters again.
	for i, n := range []string{"node4", "node5"} {
		if _, err := l.AddNode(ctx, lab.NodeSpec{Name: n, Index: 4 + i, Extra: lab.SimDevices}); err != nil {
			t.Fatal(err)
		}
	}
	grown := []string{"node1", "node4", "node5"}
	statusUntil(t, l, "node1", 60*time.Second, "three voters again", func(s api.Status) bool {
		return s.Raft != nil && slices.Equal(s.Raft.Voters, grown)
	})
	for _, n := range grown {
		atGeneration(t, l, n, second.Gen, 30*time.Second)
	}
	third := applyConfirmed(t, l, "node4", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 25}}`), 3)
	for _, n := range grown {
		waitRadio(t, l, n, 10*time.Second, radio{"power_dbm": 25.0})
		atGeneration(t, l, n, third.Gen, 20*time.Second)
	}
	if got := raftServers(raftPeersOf(t, l, "node5")); len(got) != 3 || strings.Count(strings.Join(got, " "), "=voter@") != 3 {
		t.Errorf("raft configuration after the new nodes: %v, want node1, node4, node5 voters", got)
	}

	// node3 comes back alone with the raft state of the old configuration
	// (node1, node2, node3 voters). Alone it cannot win an election there;
	// the leader adds it as a non-voter, and its log is brought in line.
	if err := l.Start(ctx, "node3"); err != nil {
		t.Fatal(err)
	}
	st = statusUntil(t, l, "node3", 60*time.Second, "node3 follows the new configuration", func(s api.Status) bool {
		return hasQuorum(s) && slices.Contains(grown, s.Raft.Leader) && slices.Equal(s.Raft.Voters, grown) &&
			s.Config != nil && s.Config.Generation == third.Gen && s.Config.Applied == third.Gen
	})
	if st.Raft.Role != "nonvoter" {
		t.Errorf("node3 back: role %s, want nonvoter (the site has its three voters)", st.Raft.Role)
	}
	waitRadio(t, l, "node3", 20*time.Second, radio{"power_dbm": 25.0})
	p = raftPeersOf(t, l, "node1")
	if got, want := raftServers(p), []string{"node1=voter@", "node3=nonvoter@", "node4=voter@", "node5=voter@"}; len(got) != len(want) {
		t.Errorf("raft configuration at the end: %v, want %v", got, want)
	} else {
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("raft configuration at the end: %v, want %v", got, want)
				break
			}
		}
	}
}

// TestReplaceNodeSameName: a voter of a four-node site dies for good and a
// new box takes its name, at a new address with an empty data_dir. Serf
// accepts the name at the new address once the old member has been dead
// for memberlist's reclaim time (10 s); the leader moves the raft server
// to the new address (taking its vote: its log is empty) and promotes the
// stable non-voter instead; the new box gets a replica and a change
// reaches its device.
func TestReplaceNodeSameName(t *testing.T) {
	l := newLab(t, 4, func(c *lab.Config) { c.Extra = lab.SimDevices })
	keepLogs(t, l)
	site := names(l)
	waitAll(t, l, site, 20*time.Second, "4 alive", exactly(site...))
	leader := leaderOf(t, l, "node1")
	statusUntil(t, l, "node4", 30*time.Second, "node4 a non-voter", func(s api.Status) bool {
		return s.Raft != nil && s.Raft.Role == "nonvoter" && len(s.Raft.Voters) == 3
	})
	first := applyConfirmed(t, l, "node4", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 22}}`), 4)
	leader = leaderOf(t, l, "node1")
	// The victim: a voter, not the leader.
	var victim string
	for _, v := range leader.Voters {
		if v != leader.Leader {
			victim = v
			break
		}
	}
	var others []string
	for _, n := range site {
		if n != victim {
			others = append(others, n)
		}
	}
	old := mustNode(t, l, victim)
	oldRaft := ""
	for _, s := range raftPeersOf(t, l, leader.Leader).Servers {
		if s.ID == victim {
			oldRaft = s.Address
		}
	}
	if err := l.RemoveNode(victim); err != nil {
		t.Fatal(err)
	}
	var failedAt time.Time
	for _, n := range others {
		waitView(t, l, n, 20*time.Second, victim+" failed", func(v view) bool {
			if v[victim].Status == api.StatusFailed {
				if v[victim].Since.After(failedAt) {
					failedAt = v[victim].Since
				}
				return true
			}
			return false
		})
	}
	// Memberlist takes a name at a new address only once the old member
	// has been dead for DeadNodeReclaimTime (10 s, coord/membership.go),
	// counted by each node from when it saw the failure: a timer, with no
	// event to wait on.
	time.Sleep(time.Until(failedAt.Add(11 * time.Second)))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repl, err := l.AddNode(ctx, lab.NodeSpec{Name: victim, Index: 5, Extra: lab.SimDevices})
	if err != nil {
		t.Fatal(err)
	}
	if repl.Addr == old.Addr {
		t.Fatalf("the replacement has the old address %s", old.Addr)
	}
	// Every node takes the name at its new address.
	waitAll(t, l, others, 30*time.Second, victim+" alive at its new address", func(v view) bool {
		return v[victim].Status == api.StatusAlive && strings.HasPrefix(v[victim].Addr, repl.Addr.String()+":")
	})
	waitAnyLog(t, l, others, 30*time.Second, "op=readdress server="+victim)

	// It gets a replica: its role, its generation.
	st := statusUntil(t, l, victim, 60*time.Second, "a replica at the generation of the site", func(s api.Status) bool {
		return hasQuorum(s) && (s.Raft.Role == "nonvoter" || s.Raft.Role == "follower") &&
			s.Config != nil && s.Config.Generation == first.Gen && s.Config.Applied == first.Gen
	})
	t.Logf("the replacement: role %s, voters %v", st.Raft.Role, st.Raft.Voters)
	// Three voters, four servers, the victim at its new address.
	statusUntil(t, l, leader.Leader, 30*time.Second, "three voters", func(s api.Status) bool {
		return s.Raft != nil && len(s.Raft.Voters) == 3 && !slices.Contains(s.Raft.Voters, "")
	})
	p := raftPeersOf(t, l, leader.Leader)
	voters := 0
	for _, s := range p.Servers {
		if s.Suffrage == api.SuffrageVoter {
			voters++
		}
		if s.ID == victim {
			ap, err := netip.ParseAddrPort(s.Address)
			if err != nil || ap.Addr() != repl.Addr || s.Address == oldRaft || s.Status != api.StatusAlive {
				t.Errorf("%s in the raft configuration: %+v, want alive at %s (was %s)", victim, s, repl.Addr, oldRaft)
			}
		}
	}
	if len(p.Servers) != 4 || voters != 3 {
		t.Errorf("raft configuration: %v, want four servers, three voters", raftServers(p))
	}

	// A change reaches the new box's device.
	ch := applyConfirmed(t, l, victim, siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 26}}`), 4)
	waitRadio(t, l, victim, 20*time.Second, radio{"power_dbm": 26.0})
	atGeneration(t, l, victim, ch.Gen, 20*time.Second)
}
