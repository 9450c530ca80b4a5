package store

import (
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Peer is a site node as membership sees it, for raft membership decisions.
type Peer struct {
	Name string
	// Addr is the raft address, host:port.
	Addr string
	// Alive: serf lists it alive. Left: it left gracefully.
	Alive bool
	Left  bool
	// Down is how long it has been failed (zero when alive).
	Down time.Duration
	// Up is how long it has been healthy without a break: alive in serf,
	// answering over mutual TLS and keeping up with the leader's
	// heartbeats. Zero when not healthy now.
	Up time.Duration
	// Proto is the protocol range it advertises (api.TagProto); "" for a
	// release before protocol versions (protocol 1).
	Proto string
}

// PromotePolicy holds the timings of PlanMembership.
type PromotePolicy struct {
	// DeadAfter is how long a failed server may stay before it is removed
	// (and, if a voter, replaced).
	DeadAfter time.Duration
	// StableAfter is how long a non-voter must have been healthy (Peer.Up)
	// before it is promoted, so that a node that flaps, or that has just
	// come back, never takes a vote (autopilot's stabilization time).
	StableAfter time.Duration
}

// Action is one raft membership change the leader makes.
type Action struct {
	Op   string // add_nonvoter, promote, demote, remove, readdress
	ID   string
	Addr string
	// Demote, for readdress: the server is a voter that loses its vote
	// with the move (see PlanMembership).
	Demote bool
}

// Membership actions.
const (
	ActAddNonvoter = "add_nonvoter"
	ActPromote     = "promote"
	ActDemote      = "demote"
	ActRemove      = "remove"
	// ActReaddress moves a server to Addr, the address its node now has.
	ActReaddress = "readdress"
)

// VoterTarget is how many voters a site of n nodes keeps: 3, or 5 once it
// has 7 or more nodes (never more than it has).
func VoterTarget(n int) int {
	t := 3
	if n >= 7 {
		t = 5
	}
	return min(t, n)
}

// PlanMembership decides how the raft configuration should change so that
// every site node holds a replica (non-voters), the voter count stays at
// VoterTarget, and dead voters are replaced by non-voters that have been
// healthy for pol.StableAfter. A server whose node now answers at another
// address is moved there (ActReaddress). leader is this node's id: it is
// never removed or demoted. This is the promoter the stock autopilot lacks:
// it promotes only up to the target.
func PlanMembership(cfg raft.Configuration, peers []Peer, leader string, pol PromotePolicy) []Action {
	byName := map[string]Peer{}
	for _, p := range peers {
		byName[p.Name] = p
	}
	inCfg := map[string]raft.Server{}
	for _, s := range cfg.Servers {
		inCfg[string(s.ID)] = s
	}
	var acts []Action
	// A peer that shares no protocol version with the voters gets neither
	// a replica nor a vote (see ProtoFit).
	fits := ProtoFit(cfg, peers)

	// Servers that left, or stayed dead too long, go. The leader stays.
	removed := map[string]bool{}
	for _, s := range cfg.Servers {
		id := string(s.ID)
		if id == leader {
			continue
		}
		p, known := byName[id]
		if (known && p.Left) || (known && !p.Alive && p.Down >= pol.DeadAfter) {
			acts = append(acts, Action{Op: ActRemove, ID: id})
			removed[id] = true
		}
	}
	// A server whose node is alive at another address (a box replaced
	// under the same name, or renumbered) is moved there. A voter loses its
	// vote with the move, as Consul's leader does it: the box may have an
	// empty disk, and a voter with an empty log can elect a leader that
	// lacks committed commands. It gets its vote back as any non-voter
	// does, once stable. The leader keeps its vote: its log is the one
	// raft serves.
	moved := map[string]bool{}
	for _, s := range cfg.Servers {
		id := string(s.ID)
		p, known := byName[id]
		if removed[id] || !known || !p.Alive || p.Addr == "" || p.Addr == string(s.Address) {
			continue
		}
		acts = append(acts, Action{Op: ActReaddress, ID: id, Addr: p.Addr, Demote: s.Suffrage == raft.Voter && id != leader})
		moved[id] = id != leader
	}
	// Every alive peer gets a replica.
	names := make([]string, 0, len(peers))
	for _, p := range peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	for _, n := range names {
		p := byName[n]
		if _, ok := inCfg[n]; !ok && p.Alive && p.Addr != "" && fits(p) {
			acts = append(acts, Action{Op: ActAddNonvoter, ID: n, Addr: p.Addr})
		}
	}
	// Count healthy voters and the site size (alive peers; the leader always
	// counts: it runs this plan, even while its own leave is gossiped).
	size := 0
	for _, n := range names {
		if byName[n].Alive || n == leader {
			size++
		}
	}
	if _, listed := byName[leader]; !listed && leader != "" {
		size++
	}
	target := VoterTarget(max(size, 1))
	var voters, nonvoters []string
	for _, s := range cfg.Servers {
		id := string(s.ID)
		if removed[id] || moved[id] {
			continue // a moved server is counted again at the next round
		}
		alive := id == leader || byName[id].Alive
		switch {
		case s.Suffrage == raft.Voter && alive:
			voters = append(voters, id)
		case s.Suffrage == raft.Nonvoter && alive && byName[id].Up >= pol.StableAfter && fits(byName[id]):
			nonvoters = append(nonvoters, id)
		}
	}
	slices.Sort(nonvoters)
	for _, id := range nonvoters {
		if len(voters) >= target {
			break
		}
		acts = append(acts, Action{Op: ActPromote, ID: id, Addr: string(inCfg[id].Address)})
		voters = append(voters, id)
	}
	// Too many voters (the site shrank): demote the last ones by name, never
	// the leader.
	slices.Sort(voters)
	for i := len(voters) - 1; i >= 0 && len(voters) > target; i-- {
		if voters[i] == leader {
			continue
		}
		acts = append(acts, Action{Op: ActDemote, ID: voters[i]})
		voters = slices.Delete(voters, i, i+1)
	}
	return acts
}
