package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func srv(id string, voter bool) raft.Server {
	s := raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":7947"), Suffrage: raft.Nonvoter}
	if voter {
		s.Suffrage = raft.Voter
	}
	return s
}

func alive(names ...string) []Peer {
	var out []Peer
	for _, n := range names {
		out = append(out, Peer{Name: n, Addr: n + ":7947", Alive: true, Up: time.Hour})
	}
	return out
}

func acts(a []Action) []string {
	var out []string
	for _, x := range a {
		s := x.Op + ":" + x.ID
		if x.Op == ActReaddress {
			s += "@" + x.Addr
			if x.Demote {
				s += "(demote)"
			}
		}
		out = append(out, s)
	}
	return out
}

func TestVoterTarget(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 3, 6: 3, 7: 5, 30: 5} {
		if got := VoterTarget(n); got != want {
			t.Errorf("VoterTarget(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestPlanMembership(t *testing.T) {
	three := raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true)}}
	tests := []struct {
		name  string
		cfg   raft.Configuration
		peers []Peer
		want  []string
	}{
		{"steady", three, alive("n1", "n2", "n3"), nil},
		{"new nodes get replicas", three, alive("n1", "n2", "n3", "n4", "n5"), []string{"add_nonvoter:n4", "add_nonvoter:n5"}},
		{
			"dead voter replaced after the grace",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", false)}},
			append(alive("n1", "n2", "n4"), Peer{Name: "n3", Addr: "n3:7947", Down: time.Minute}),
			[]string{"remove:n3", "promote:n4"},
		},
		{
			"dead voter kept within the grace",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", false)}},
			append(alive("n1", "n2", "n4"), Peer{Name: "n3", Addr: "n3:7947", Down: time.Second}),
			[]string{"promote:n4"},
		},
		{
			"left voter removed at once",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true)}},
			append(alive("n1", "n2"), Peer{Name: "n3", Left: true}),
			[]string{"remove:n3"},
		},
		{
			"a non-voter healthy for less than the window is not promoted",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", false), srv("n5", false)}},
			append(alive("n1", "n2", "n5"), Peer{Name: "n3", Addr: "n3:7947", Down: time.Minute}, Peer{Name: "n4", Addr: "n4:7947", Alive: true, Up: 9 * time.Second}),
			[]string{"remove:n3", "promote:n5"},
		},
		{
			"no stable non-voter: the dead voter still goes, nobody is promoted",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", false)}},
			append(alive("n1", "n2"), Peer{Name: "n3", Addr: "n3:7947", Down: time.Minute}, Peer{Name: "n4", Addr: "n4:7947", Alive: true}),
			[]string{"remove:n3"},
		},
		{
			"five voters at seven nodes",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", false), srv("n5", false), srv("n6", false), srv("n7", false)}},
			alive("n1", "n2", "n3", "n4", "n5", "n6", "n7"),
			[]string{"promote:n4", "promote:n5"},
		},
		{
			"the leader's own leave (a graceful stop) shrinks nothing",
			three,
			append(alive("n2", "n3"), Peer{Name: "n1", Left: true}),
			nil,
		},
		{
			"shrunk site demotes, never the leader",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true), srv("n4", true), srv("n5", true)}},
			alive("n1", "n2", "n3", "n4", "n5"),
			[]string{"demote:n5", "demote:n4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := acts(PlanMembership(tt.cfg, tt.peers, "n1", PromotePolicy{DeadAfter: 30 * time.Second, StableAfter: 10 * time.Second}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// The plan converges: applying it and planning again gives nothing, for
// any site size.
func TestPlanMembershipConverges(t *testing.T) {
	for n := 1; n <= 30; n++ {
		var names []string
		for i := 1; i <= n; i++ {
			names = append(names, fmt.Sprintf("n%02d", i))
		}
		cfg := raft.Configuration{Servers: []raft.Server{srv(names[0], true)}}
		for round := 0; round < 5; round++ {
			a := PlanMembership(cfg, alive(names...), names[0], PromotePolicy{DeadAfter: time.Minute, StableAfter: time.Second})
			if len(a) == 0 {
				break
			}
			cfg = applyActions(cfg, a)
		}
		if a := PlanMembership(cfg, alive(names...), names[0], PromotePolicy{DeadAfter: time.Minute, StableAfter: time.Second}); len(a) != 0 {
			t.Fatalf("n=%d: not converged: %v", n, acts(a))
		}
		voters := 0
		for _, s := range cfg.Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		if voters != VoterTarget(n) || len(cfg.Servers) != n {
			t.Errorf("n=%d: %d voters of %d servers", n, voters, len(cfg.Servers))
		}
	}
}

func applyActions(cfg raft.Configuration, acts []Action) raft.Configuration {
	out := raft.Configuration{Servers: slices.Clone(cfg.Servers)}
	for _, a := range acts {
		i := slices.IndexFunc(out.Servers, func(s raft.Server) bool { return string(s.ID) == a.ID })
		switch a.Op {
		case ActAddNonvoter:
			out.Servers = append(out.Servers, srv(a.ID, false))
		case ActPromote:
			out.Servers[i].Suffrage = raft.Voter
		case ActDemote:
			out.Servers[i].Suffrage = raft.Nonvoter
		case ActRemove:
			out.Servers = slices.Delete(out.Servers, i, i+1)
		case ActReaddress:
			out.Servers[i].Address = raft.ServerAddress(a.Addr)
			if a.Demote {
				out.Servers[i].Suffrage = raft.Nonvoter
			}
		}
	}
	return out
}

// moved is an alive peer at another address than its server's.
func moved(name, addr string) Peer {
	return Peer{Name: name, Addr: addr, Alive: true, Up: time.Hour}
}

// A node replaced under the same name (or renumbered) is moved to its new
// address; a voter loses its vote with the move and wins it back once
// stable, as any non-voter.
func TestPlanMembershipNewAddress(t *testing.T) {
	cfg := func(voters int, names ...string) raft.Configuration {
		var c raft.Configuration
		for i, n := range names {
			c.Servers = append(c.Servers, srv(n, i < voters))
		}
		return c
	}
	tests := []struct {
		name  string
		cfg   raft.Configuration
		peers []Peer
		want  []string
	}{
		{
			"a voter back at a new address is moved without its vote; a stable non-voter takes it",
			cfg(3, "n1", "n2", "n3", "n4"),
			append(alive("n1", "n3", "n4"), moved("n2", "192.0.2.15:7947")),
			[]string{"readdress:n2@192.0.2.15:7947(demote)", "promote:n4"},
		},
		{
			"a voter moved on a site of three: no one else to promote",
			cfg(3, "n1", "n2", "n3"),
			append(alive("n1", "n3"), moved("n2", "192.0.2.15:7947")),
			[]string{"readdress:n2@192.0.2.15:7947(demote)"},
		},
		{
			"a non-voter is moved, and not promoted in the same round",
			cfg(2, "n1", "n2", "n3"),
			append(alive("n1", "n2"), moved("n3", "192.0.2.15:7947")),
			[]string{"readdress:n3@192.0.2.15:7947"},
		},
		{
			"the leader's own entry is corrected, keeping its vote",
			cfg(3, "n1", "n2", "n3"),
			append(alive("n2", "n3"), moved("n1", "192.0.2.11:7947")),
			[]string{"readdress:n1@192.0.2.11:7947"},
		},
		{
			"a failed node keeps its address until it is removed",
			cfg(3, "n1", "n2", "n3"),
			append(alive("n1", "n3"), Peer{Name: "n2", Addr: "192.0.2.15:7947", Down: time.Second}),
			nil,
		},
		{
			"a failed node past the grace is removed, not moved",
			cfg(3, "n1", "n2", "n3"),
			append(alive("n1", "n3"), Peer{Name: "n2", Addr: "192.0.2.15:7947", Down: time.Hour}),
			[]string{"remove:n2"},
		},
		{
			"a node without a raft port yet is not moved",
			cfg(3, "n1", "n2", "n3"),
			append(alive("n1", "n3"), Peer{Name: "n2", Alive: true, Up: time.Hour}),
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := acts(PlanMembership(tt.cfg, tt.peers, "n1", PromotePolicy{DeadAfter: 30 * time.Second, StableAfter: 10 * time.Second}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Round by round on a site of three: moved and demoted, then promoted
	// back once stable; then nothing more to do.
	c := cfg(3, "n1", "n2", "n3")
	peers := append(alive("n1", "n3"), moved("n2", "192.0.2.15:7947"))
	pol := PromotePolicy{DeadAfter: 30 * time.Second, StableAfter: 10 * time.Second}
	var rounds [][]string
	for range 4 {
		a := PlanMembership(c, peers, "n1", pol)
		if len(a) == 0 {
			break
		}
		rounds = append(rounds, acts(a))
		c = applyActions(c, a)
	}
	want := [][]string{{"readdress:n2@192.0.2.15:7947(demote)"}, {"promote:n2"}}
	if !slices.EqualFunc(rounds, want, slices.Equal) {
		t.Errorf("rounds %v, want %v", rounds, want)
	}
	i := slices.IndexFunc(c.Servers, func(s raft.Server) bool { return s.ID == "n2" })
	if i < 0 || c.Servers[i].Address != "192.0.2.15:7947" || c.Servers[i].Suffrage != raft.Voter {
		t.Errorf("n2 at the end: %+v", c.Servers)
	}
}
