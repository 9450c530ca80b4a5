package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Bounds of the replicated history, to keep snapshots small on flash.
const (
	MaxChanges = 100
	MaxDocs    = 50
)

// Errors the FSM returns for refused commands.
var (
	// ErrConflict: the change's base is not the current generation, or
	// another change is in progress.
	ErrConflict = errors.New("conflict")
	// ErrLockFull: every slot of the lock is held.
	ErrLockFull = errors.New("lock held")
	// ErrBadCommand: a malformed or out-of-place command.
	ErrBadCommand = errors.New("bad command")
)

// Command is one entry of the raft log.
type Command struct {
	// Version is the command's format version; 0 (absent) is 1. Set above
	// 1 only once ServersSpeak allows it (see proto.go).
	Version int       `json:"version,omitempty"`
	Op      string    `json:"op"`
	Time    time.Time `json:"time"` // set by the proposer: the FSM never reads a clock

	Propose *Propose `json:"propose,omitempty"`
	// For node and advance and confirm.
	ChangeID string `json:"change_id,omitempty"`
	Node     string `json:"node,omitempty"`
	Phase    string `json:"phase,omitempty"`
	State    string `json:"state,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Advance: nodes whose phase is set to Phase with the transition; From,
	// when set, is the state the change must still be in (a stale leader's
	// decision is refused).
	Nodes     []string  `json:"nodes,omitempty"`
	From      string    `json:"from,omitempty"`
	ConfirmBy time.Time `json:"confirm_by,omitzero"`
	// Locks.
	Lock   string `json:"lock,omitempty"`
	Holder string `json:"holder,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// Command ops.
const (
	OpPropose    = "propose"
	OpNode       = "node"
	OpAdvance    = "advance"
	OpConfirm    = "confirm"
	OpLock       = "lock"
	OpUnlock     = "unlock"
	OpUnlockNode = "unlock_node"
)

// Propose starts a change.
type Propose struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Base    uint64   `json:"base"`
	Doc     *Doc     `json:"doc"` // nil for a rollback to an existing generation
	ToGen   uint64   `json:"to_gen,omitempty"`
	Author  string   `json:"author"`
	Policy  Policy   `json:"policy"`
	Targets []string `json:"targets"`
	Missing []string `json:"missing,omitempty"`
}

// ResultError turns a refused command's message back into an error that
// wraps its sentinel (ErrConflict, ErrLockFull, ErrBadCommand), also after
// the message crossed the RPC to a follower.
func ResultError(msg string) error {
	for _, s := range []error{ErrConflict, ErrLockFull, ErrBadCommand} {
		if rest, ok := strings.CutPrefix(msg, s.Error()); ok {
			return fmt.Errorf("%w%s", s, rest)
		}
	}
	return errors.New(msg)
}

// Result is what applying a command returns to its proposer.
type Result struct {
	Err   string `json:"err,omitempty"`
	Gen   uint64 `json:"gen,omitempty"`
	Token uint64 `json:"token,omitempty"`
}

// FSM is the raft state machine.
type FSM struct {
	mu      sync.Mutex
	st      *State
	changed chan struct{}
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{st: emptyState(), changed: make(chan struct{})}
}

func emptyState() *State {
	return &State{Docs: map[uint64]*Doc{}, Locks: map[string]*Lock{}}
}

// State returns a copy of the current state.
func (f *FSM) State() *State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Clone()
}

// Active returns the id of the change in progress.
func (f *FSM) Active() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Active
}

// Index returns the raft index of the last command applied.
func (f *FSM) Index() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Index
}

// Changed returns a channel closed at the next applied command.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	var cmd Command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		return Result{Err: fmt.Sprintf("%v: %v", ErrBadCommand, err)}
	}
	if err := checkVersion("command", cmd.Version); err != nil {
		return Result{Err: fmt.Sprintf("%v: %v", ErrBadCommand, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := apply(f.st, &cmd, l.Index)
	f.st.Index = l.Index
	close(f.changed)
	f.changed = make(chan struct{})
	return res
}

// apply changes st by cmd; it is deterministic.
func apply(st *State, cmd *Command, index uint64) Result {
	switch cmd.Op {
	case OpPropose:
		return applyPropose(st, cmd, index)
	case OpNode:
		c := st.own(cmd.ChangeID)
		if c == nil || Final(c.State) {
			return Result{Err: fmt.Sprintf("%v: change %s is not in progress", ErrBadCommand, cmd.ChangeID)}
		}
		p, ok := c.Nodes[cmd.Node]
		if !ok {
			return Result{Err: fmt.Sprintf("%v: node %s is not a target of change %s", ErrBadCommand, cmd.Node, c.ID)}
		}
		// A report counts only in the phase it answers: a late "applied"
		// never overwrites "reverting".
		if !reportFits(c.State, p.Phase, cmd.Phase) {
			return Result{Err: fmt.Sprintf("%v: change %s is %s and node %s %s: report %q comes too late", ErrBadCommand, c.ID, c.State, cmd.Node, p.Phase, cmd.Phase)}
		}
		p.Phase, p.Reason, p.Updated = cmd.Phase, cmd.Reason, cmd.Time
		c.Updated = cmd.Time
		return Result{}
	case OpAdvance:
		c := st.own(cmd.ChangeID)
		if c == nil || Final(c.State) {
			return Result{Err: fmt.Sprintf("%v: change %s is not in progress", ErrBadCommand, cmd.ChangeID)}
		}
		if cmd.From != "" && cmd.From != c.State {
			return Result{Err: fmt.Sprintf("%v: change %s is %s, not %s", ErrConflict, c.ID, c.State, cmd.From)}
		}
		for _, n := range cmd.Nodes {
			if p, ok := c.Nodes[n]; ok {
				p.Phase, p.Reason, p.Updated = cmd.Phase, "", cmd.Time
			}
		}
		if cmd.State != "" && cmd.State != c.State {
			transition(c, cmd.State, cmd.Reason, cmd.Time)
			if !cmd.ConfirmBy.IsZero() {
				c.ConfirmBy = cmd.ConfirmBy
			}
			finish(st, c)
		}
		return Result{}
	case OpConfirm:
		id := st.Active
		if cmd.ChangeID != "" {
			id = cmd.ChangeID
		}
		c := st.own(id)
		if c == nil {
			return Result{Err: fmt.Sprintf("%v: no change waits for a confirmation", ErrConflict)}
		}
		if c.State != Applied {
			return Result{Err: fmt.Sprintf("%v: change %s is %s, not applied: nothing to confirm", ErrConflict, c.ID, c.State)}
		}
		reason := cmd.Reason
		if reason == "" {
			reason = "confirmed by " + cmd.Node
		}
		transition(c, Confirmed, reason, cmd.Time)
		finish(st, c)
		return Result{Gen: c.Gen}
	case OpLock:
		return lock(st, cmd, index)
	case OpUnlock:
		if l, ok := st.Locks[cmd.Lock]; ok {
			if cmd.Holder == "" {
				clear(l.Holders) // forced: every holder
			}
			delete(l.Holders, cmd.Holder)
			if len(l.Holders) == 0 {
				delete(st.Locks, cmd.Lock)
			}
		}
		return Result{}
	case OpUnlockNode:
		for name, l := range st.Locks {
			for h, v := range l.Holders {
				if v.Node == cmd.Node {
					delete(l.Holders, h)
				}
			}
			if len(l.Holders) == 0 {
				delete(st.Locks, name)
			}
		}
		return Result{}
	}
	return Result{Err: fmt.Sprintf("%v: unknown op %q", ErrBadCommand, cmd.Op)}
}

// reportFits tells whether a node may move from phase cur to next while
// the change is in state.
func reportFits(state, cur, next string) bool {
	switch next {
	case PhaseValid, PhaseInvalid:
		return state == Proposed && cur == PhaseValidating
	case PhaseApplied, PhaseFailed:
		return state == Applying && cur == PhaseApplying
	case PhaseReverted:
		return state == RollingBack && cur == PhaseReverting
	}
	return false
}

func applyPropose(st *State, cmd *Command, index uint64) Result {
	p := cmd.Propose
	if p == nil || p.ID == "" || len(p.Targets) == 0 {
		return Result{Err: fmt.Sprintf("%v: empty proposal", ErrBadCommand)}
	}
	if a := st.ActiveChange(); a != nil {
		return Result{Err: fmt.Sprintf("%v: change %s is in progress (%s); wait for it or roll it back", ErrConflict, a.ID, a.State)}
	}
	if p.Base != st.Confirmed {
		return Result{Err: fmt.Sprintf("%v: your change is based on generation %d but the site is at generation %d; look at `edgectl diff` again", ErrConflict, p.Base, st.Confirmed)}
	}
	if st.Change(p.ID) != nil {
		return Result{Err: fmt.Sprintf("%v: change %s exists", ErrConflict, p.ID)}
	}
	doc := p.Doc
	if p.Kind == "rollback" {
		old, ok := st.Docs[p.ToGen]
		if !ok && p.ToGen != 0 {
			return Result{Err: fmt.Sprintf("%v: generation %d is not in the history", ErrBadCommand, p.ToGen)}
		}
		if ok {
			d := *old
			doc = &d
		} else {
			doc = &Doc{}
		}
	}
	if doc == nil {
		return Result{Err: fmt.Sprintf("%v: no document", ErrBadCommand)}
	}
	st.Generation++
	gen := st.Generation
	d := *doc
	d.Gen, d.ChangeID, d.Author, d.Created = gen, p.ID, p.Author, cmd.Time
	st.Docs[gen] = &d
	c := &Change{
		ID: p.ID, Kind: p.Kind, Gen: gen, Base: st.Confirmed, Author: p.Author, Policy: p.Policy,
		Missing: slices.Clone(p.Missing), Nodes: map[string]*NodeProgress{}, Created: cmd.Time, Updated: cmd.Time,
	}
	for _, n := range p.Targets {
		c.Nodes[n] = &NodeProgress{Phase: PhaseValidating, Updated: cmd.Time}
	}
	transition(c, Proposed, "", cmd.Time)
	st.Changes = append(st.Changes, c)
	st.Active = c.ID
	prune(st)
	return Result{Gen: gen}
}

func transition(c *Change, state, reason string, t time.Time) {
	c.State, c.Reason, c.Updated = state, reason, t
	c.History = append(c.History, Transition{State: state, Reason: reason, Time: t})
}

// finish settles the state when a change ends.
func finish(st *State, c *Change) {
	if !Final(c.State) {
		return
	}
	if c.State == Confirmed {
		st.Confirmed = c.Gen
	}
	if st.Active == c.ID {
		st.Active = ""
	}
}

// prune bounds the history: old finished changes and documents no longer
// needed go (the confirmed and active generations always stay).
func prune(st *State) {
	for len(st.Changes) > MaxChanges {
		if st.Changes[0].ID == st.Active {
			break
		}
		st.Changes = st.Changes[1:]
	}
	for len(st.Docs) > MaxDocs {
		var oldest uint64
		for g := range st.Docs {
			if g != st.Confirmed && (oldest == 0 || g < oldest) {
				oldest = g
			}
		}
		if a := st.ActiveChange(); a != nil && (oldest == a.Gen || oldest == a.Base) {
			break
		}
		delete(st.Docs, oldest)
	}
}

func lock(st *State, cmd *Command, index uint64) Result {
	if cmd.Lock == "" || cmd.Holder == "" || cmd.Limit < 1 {
		return Result{Err: fmt.Sprintf("%v: lock needs a name, a holder and a limit >= 1", ErrBadCommand)}
	}
	l, ok := st.Locks[cmd.Lock]
	if !ok {
		l = &Lock{Limit: cmd.Limit, Holders: map[string]*Holder{}}
		st.Locks[cmd.Lock] = l
	}
	if l.Limit != cmd.Limit {
		return Result{Err: fmt.Sprintf("%v: lock %s is held with limit %d, not %d", ErrConflict, cmd.Lock, l.Limit, cmd.Limit)}
	}
	if h, ok := l.Holders[cmd.Holder]; ok {
		return Result{Token: h.Token}
	}
	if len(l.Holders) >= l.Limit {
		return Result{Err: fmt.Sprintf("%v: %s has %d of %d holders", ErrLockFull, cmd.Lock, len(l.Holders), l.Limit)}
	}
	l.Holders[cmd.Holder] = &Holder{Node: cmd.Node, Token: index, Acquired: cmd.Time}
	return Result{Token: index}
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := json.Marshal(snapshotJSON{Version: SnapshotVersion, State: f.st})
	if err != nil {
		return nil, err
	}
	return snapshot(data), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := emptyState()
	snap := snapshotJSON{State: st}
	if err := json.NewDecoder(io.LimitReader(rc, 256<<20)).Decode(&snap); err != nil {
		return fmt.Errorf("store: restore snapshot: %w", err)
	}
	if err := checkVersion("snapshot", snap.Version); err != nil {
		return fmt.Errorf("store: restore snapshot: %w", err)
	}
	if st.Docs == nil {
		st.Docs = map[uint64]*Doc{}
	}
	if st.Locks == nil {
		st.Locks = map[string]*Lock{}
	}
	f.mu.Lock()
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// SnapshotVersion is the format version of the snapshots this release
// writes.
const SnapshotVersion = 1

// snapshotJSON is a snapshot: the state with its format version beside
// its fields ("version" is new; releases before it read the state alone).
type snapshotJSON struct {
	Version int `json:"version,omitempty"`
	*State
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
