package store

import (
	"maps"
	"slices"
	"time"
)

// Change states. A change goes PROPOSED -> VALIDATED -> APPLYING -> APPLIED
// -> CONFIRMED, or ends REJECTED (validation failed, nothing touched),
// ABORTED (stopped before any hardware was touched) or ROLLED_BACK (after
// ROLLING_BACK returned every node to the base generation).
const (
	Proposed    = "proposed"
	Validated   = "validated"
	Applying    = "applying"
	Applied     = "applied"
	Confirmed   = "confirmed"
	Rejected    = "rejected"
	Aborted     = "aborted"
	RollingBack = "rolling_back"
	RolledBack  = "rolled_back"
)

// Node phases within a change.
const (
	PhaseValidating = "validating"
	PhaseValid      = "valid"
	PhaseInvalid    = "invalid"
	PhasePending    = "pending" // waits for its rolling batch
	PhaseApplying   = "applying"
	PhaseApplied    = "applied"
	PhaseFailed     = "failed"
	PhaseReverting  = "reverting"
	PhaseReverted   = "reverted"
)

// Final reports whether a change state is final.
func Final(state string) bool {
	switch state {
	case Confirmed, Rejected, Aborted, RolledBack:
		return true
	}
	return false
}

// State is the replicated state: every node holds a copy.
type State struct {
	// Generation is the highest generation number allocated.
	Generation uint64 `json:"generation"`
	// Confirmed is the generation the site settles on (0: none yet, each
	// node's own config).
	Confirmed uint64 `json:"confirmed"`
	// Docs are the site documents by generation (bounded history).
	Docs map[uint64]*Doc `json:"docs"`
	// Changes in creation order (bounded history).
	Changes []*Change `json:"changes"`
	// Active is the id of the change in progress, "" when none.
	Active string           `json:"active"`
	Locks  map[string]*Lock `json:"locks"`
	// Index is the raft index of the last applied command.
	Index uint64 `json:"index"`
}

// Doc is one generation's site document, exactly as the operator applied it.
type Doc struct {
	Gen      uint64    `json:"gen"`
	File     string    `json:"file"`
	Raw      []byte    `json:"raw"`
	Hash     string    `json:"hash"`
	ChangeID string    `json:"change_id"`
	Author   string    `json:"author"`
	Created  time.Time `json:"created"`
}

// Policy is a change's rollout policy.
type Policy struct {
	Strategy       string        `json:"strategy"`
	BatchSize      int           `json:"batch_size"`
	ConfirmTimeout time.Duration `json:"confirm_timeout"`
	Atomic         bool          `json:"atomic"`
	AutoConfirm    bool          `json:"auto_confirm"`
}

// Change is one site-wide change and its progress on every target node.
type Change struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"` // apply | rollback
	Gen    uint64 `json:"gen"`
	Base   uint64 `json:"base"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Author string `json:"author"`
	Policy Policy `json:"policy"`
	// Missing are targets that were down and allowed to be (--allow-missing);
	// they converge when they return.
	Missing   []string                 `json:"missing,omitempty"`
	Nodes     map[string]*NodeProgress `json:"nodes"`
	Created   time.Time                `json:"created"`
	Updated   time.Time                `json:"updated"`
	ConfirmBy time.Time                `json:"confirm_by,omitzero"`
	History   []Transition             `json:"history"`
}

// NodeProgress is one target node's part in a change.
type NodeProgress struct {
	Phase   string    `json:"phase"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// Transition is one step of a change.
type Transition struct {
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// Lock is a site-wide lock or semaphore.
type Lock struct {
	Limit   int                `json:"limit"`
	Holders map[string]*Holder `json:"holders"`
}

// Holder holds a lock slot; Token is the raft index of the acquisition, a
// fencing token that only grows.
type Holder struct {
	Node     string    `json:"node"`
	Token    uint64    `json:"token"`
	Acquired time.Time `json:"acquired"`
}

// Change returns the change with id, or nil.
func (s *State) Change(id string) *Change {
	for _, c := range s.Changes {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// ActiveChange returns the change in progress, or nil.
func (s *State) ActiveChange() *Change {
	if s.Active == "" {
		return nil
	}
	return s.Change(s.Active)
}

// DesiredGen is the generation node's hardware should hold now, and the
// change that makes it so (nil when it is the confirmed generation).
func (s *State) DesiredGen(node string) (uint64, *Change) {
	if c := s.ActiveChange(); c != nil {
		if p, ok := c.Nodes[node]; ok {
			switch c.State {
			case Applying, Applied:
				switch p.Phase {
				case PhaseApplying, PhaseApplied, PhaseFailed:
					return c.Gen, c
				}
			case RollingBack:
				// Every target returns to the base, applied or not.
				return c.Base, c
			}
		}
	}
	return s.Confirmed, nil
}

// Clone deep-copies the state.
//
// Changes and documents are shared, not copied: the FSM never modifies a
// Change or a Doc it has handed out, it replaces it with a modified copy
// (State.own). So a clone costs a slice and a map of pointers, whatever
// the length of the history, and callers must not modify what they get.
func (s *State) Clone() *State {
	out := &State{Generation: s.Generation, Confirmed: s.Confirmed, Active: s.Active, Index: s.Index,
		Docs: maps.Clone(s.Docs), Changes: slices.Clone(s.Changes), Locks: make(map[string]*Lock, len(s.Locks))}
	if out.Docs == nil {
		out.Docs = map[uint64]*Doc{}
	}
	for k, l := range s.Locks {
		ll := &Lock{Limit: l.Limit, Holders: make(map[string]*Holder, len(l.Holders))}
		for h, v := range l.Holders {
			vv := *v
			ll.Holders[h] = &vv
		}
		out.Locks[k] = ll
	}
	return out
}

// own returns the change with id ready to be modified: a copy that
// replaces it in s, so that states handed out before keep the old one.
func (s *State) own(id string) *Change {
	for i, c := range s.Changes {
		if c.ID == id {
			s.Changes[i] = c.clone()
			return s.Changes[i]
		}
	}
	return nil
}

func (c *Change) clone() *Change {
	cc := *c
	cc.Missing = slices.Clone(c.Missing)
	cc.History = slices.Clone(c.History)
	cc.Nodes = make(map[string]*NodeProgress, len(c.Nodes))
	for k, v := range c.Nodes {
		vv := *v
		cc.Nodes[k] = &vv
	}
	return &cc
}

// Targets lists the change's target nodes, sorted.
func (c *Change) Targets() []string {
	out := make([]string, 0, len(c.Nodes))
	for n := range c.Nodes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
