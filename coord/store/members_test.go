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
		out = append(out, x.Op+":"+x.ID)
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
		}
	}
	return out
}
