package store

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"edge/coord/transport"
	"edge/internal/pki"
)

type testNode struct {
	name string
	addr string
	mux  *transport.Mux
	s    *Store
}

// cluster starts n stores over real mutual-TLS transports on loopback.
func cluster(t *testing.T, n int) []*testNode {
	t.Helper()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if _, err := pki.CreateCA(caDir, "test", 0); err != nil {
		t.Fatal(err)
	}
	var nodes []*testNode
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		out := filepath.Join(dir, name)
		if _, err := pki.CreateNodeCert(caDir, out, name, []net.IP{net.IPv4(127, 0, 0, 1)}, 0); err != nil {
			t.Fatal(err)
		}
		creds, err := pki.Load(filepath.Join(out, "ca.crt"), filepath.Join(out, name+".crt"), filepath.Join(out, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		mux, err := transport.Listen("127.0.0.1:0", creds, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.NodeName = name
		cfg.Dir = filepath.Join(out, "raft")
		s, err := Open(cfg, mux.Raft())
		if err != nil {
			t.Fatal(err)
		}
		tn := &testNode{name: name, addr: mux.Addr().String(), mux: mux, s: s}
		nodes = append(nodes, tn)
		t.Cleanup(func() { tn.close() })
	}
	return nodes
}

func (n *testNode) close() {
	if n.s != nil {
		n.s.Close()
		n.s = nil
	}
	n.mux.Close()
}

func servers(nodes []*testNode) []raft.Server {
	var out []raft.Server
	for _, n := range nodes {
		out = append(out, raft.Server{ID: raft.ServerID(n.name), Address: raft.ServerAddress(n.addr), Suffrage: raft.Voter})
	}
	return out
}

// waitLeader waits for raft's leadership events until one of nodes leads.
func waitLeader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, n := range nodes {
			if n.s != nil && n.s.IsLeader() {
				return n
			}
		}
		obs := make(chan raft.Observation, 16)
		var observers []*raft.Observer
		for _, n := range nodes {
			if n.s != nil {
				o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
					_, ok := o.Data.(raft.LeaderObservation)
					return ok
				})
				n.s.Raft().RegisterObserver(o)
				observers = append(observers, o)
			}
		}
		select {
		case <-obs:
		case <-time.After(200 * time.Millisecond): // a leader elected before the observer was registered
		case <-deadline:
			t.Fatal("no leader")
		}
		for i, n := range nodes {
			_ = i
			if n.s != nil {
				for _, o := range observers {
					n.s.Raft().DeregisterObserver(o)
				}
			}
		}
	}
}

// waitState waits on FSM change events until cond holds on node.
func waitState(t *testing.T, n *testNode, what string, cond func(*State) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := n.s.Changed()
		if cond(n.s.State()) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: %s not reached", n.name, what)
		}
	}
}

func TestStoreReplicatesAndFailsOver(t *testing.T) {
	nodes := cluster(t, 3)
	for _, n := range nodes {
		if n.s.HasState() {
			t.Fatalf("%s has state before bootstrap", n.name)
		}
		if err := n.s.Bootstrap(servers(nodes)); err != nil {
			t.Fatal(err)
		}
	}
	leader := waitLeader(t, nodes)
	res, err := leader.s.Apply(proposeCmd("c1", 0, "n1", "n2", "n3"))
	if err != nil || res.Gen != 1 {
		t.Fatalf("apply: %v %+v", err, res)
	}
	for _, n := range nodes {
		waitState(t, n, "change replicated", func(s *State) bool { return s.Active == "c1" && s.Generation == 1 })
		if !n.s.HasState() {
			t.Errorf("%s: no state after bootstrap", n.name)
		}
	}
	// A refused command is an error on the proposer, and changes nothing.
	if _, err := leader.s.Apply(proposeCmd("c2", 0, "n1")); err == nil || !strings.Contains(err.Error(), "in progress") || leader.s.State().Generation != 1 {
		t.Errorf("conflicting propose: %v", err)
	}

	// Kill the leader: the other two elect a new one and keep the state.
	leader.close()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	next := waitLeader(t, rest)
	if _, err := next.s.Apply(Command{Op: OpNode, Time: t0, ChangeID: "c1", Node: "n2", Phase: PhaseValid}); err != nil {
		t.Fatalf("apply on the new leader: %v", err)
	}
	// One of three left: no quorum, a clear error.
	for _, n := range rest {
		if n != next {
			n.close()
		}
	}
	_, err = next.s.Apply(Command{Op: OpNode, Time: t0, ChangeID: "c1", Node: "n3", Phase: PhaseValid})
	if !errors.Is(err, ErrNoQuorum) {
		t.Errorf("alone: want ErrNoQuorum, got %v", err)
	}
}

func TestStoreRestartKeepsState(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	if err := n.s.Bootstrap(servers(nodes)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, nodes)
	if _, err := n.s.Apply(proposeCmd("c1", 0, "n1")); err != nil {
		t.Fatal(err)
	}
	dir := n.s.cfg.Dir
	n.s.Close()
	n.s = nil
	cfg := DefaultConfig()
	cfg.NodeName = "n1"
	cfg.Dir = dir
	s, err := Open(cfg, n.mux.Raft())
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	if !s.HasState() {
		t.Fatal("restarted store forgot its cluster")
	}
	waitLeader(t, nodes)
	waitState(t, n, "replayed", func(st *State) bool { return st.Active == "c1" })
}
