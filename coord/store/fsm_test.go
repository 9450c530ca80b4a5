package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// applyCmd runs cmd through the FSM like raft would.
func applyCmd(t *testing.T, f *FSM, index uint64, cmd Command) Result {
	t.Helper()
	data, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Data: data}).(Result)
}

func proposeCmd(id string, base uint64, targets ...string) Command {
	return Command{Op: OpPropose, Time: t0, Propose: &Propose{
		ID: id, Kind: "apply", Base: base, Author: "op@node1", Targets: targets,
		Doc:    &Doc{File: "site.yaml", Raw: []byte("version: 1\n"), Hash: "h-" + id},
		Policy: Policy{Strategy: "parallel", ConfirmTimeout: time.Minute, Atomic: true},
	}}
}

func TestChangeLifecycle(t *testing.T) {
	f := NewFSM()
	if r := applyCmd(t, f, 1, proposeCmd("c1", 0, "n1", "n2")); r.Err != "" || r.Gen != 1 {
		t.Fatalf("propose: %+v", r)
	}
	st := f.State()
	if st.Active != "c1" || st.Generation != 1 || st.Confirmed != 0 {
		t.Fatalf("state %+v", st)
	}
	// While validating, hardware stays at the confirmed generation.
	if g, _ := st.DesiredGen("n1"); g != 0 {
		t.Errorf("desired gen while validating: %d", g)
	}
	for i, n := range []string{"n1", "n2"} {
		applyCmd(t, f, uint64(2+i), Command{Op: OpNode, Time: t0, ChangeID: "c1", Node: n, Phase: PhaseValid})
	}
	applyCmd(t, f, 4, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: Applying, Phase: PhaseApplying, Nodes: []string{"n1", "n2"}})
	if g, c := f.State().DesiredGen("n2"); g != 1 || c == nil {
		t.Errorf("desired gen while applying: %d", g)
	}
	applyCmd(t, f, 5, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: Applied, ConfirmBy: t0.Add(time.Minute)})
	if r := applyCmd(t, f, 6, Command{Op: OpConfirm, Time: t0, Node: "n1"}); r.Err != "" || r.Gen != 1 {
		t.Fatalf("confirm: %+v", r)
	}
	st = f.State()
	c := st.Change("c1")
	if st.Confirmed != 1 || st.Active != "" || c.State != Confirmed || len(c.History) != 4 {
		t.Fatalf("after confirm: %+v %+v", st, c)
	}
	if g, _ := st.DesiredGen("n1"); g != 1 {
		t.Errorf("desired after confirm: %d", g)
	}
	// Confirming twice is refused.
	if r := applyCmd(t, f, 7, Command{Op: OpConfirm, Time: t0}); !strings.Contains(r.Err, "no change waits") {
		t.Errorf("second confirm: %+v", r)
	}
}

func TestRollbackReturnsToBase(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, proposeCmd("c1", 0, "n1", "n2"))
	applyCmd(t, f, 2, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: Applying, Phase: PhaseApplying, Nodes: []string{"n1", "n2"}})
	applyCmd(t, f, 3, Command{Op: OpNode, Time: t0, ChangeID: "c1", Node: "n2", Phase: PhaseFailed, Reason: "radio0: ERROR"})
	applyCmd(t, f, 4, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: RollingBack, Reason: "n2 failed", Phase: PhaseReverting, Nodes: []string{"n1", "n2"}})
	for _, n := range []string{"n1", "n2"} {
		if g, _ := f.State().DesiredGen(n); g != 0 {
			t.Errorf("%s: desired %d while rolling back, want 0", n, g)
		}
	}
	applyCmd(t, f, 5, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: RolledBack, Reason: "n2 failed"})
	st := f.State()
	if st.Confirmed != 0 || st.Active != "" || st.Change("c1").State != RolledBack {
		t.Fatalf("state %+v", st)
	}
	// A new change on the old base is fine now.
	if r := applyCmd(t, f, 6, proposeCmd("c2", 0, "n1")); r.Err != "" || r.Gen != 2 {
		t.Fatalf("propose after rollback: %+v", r)
	}
}

func TestCompareAndSwap(t *testing.T) {
	f := NewFSM()
	if r := applyCmd(t, f, 1, proposeCmd("a", 0, "n1")); r.Err != "" {
		t.Fatal(r.Err)
	}
	// Same base, while a is in progress: conflict.
	r := applyCmd(t, f, 2, proposeCmd("b", 0, "n1"))
	if !strings.Contains(r.Err, ErrConflict.Error()) || !strings.Contains(r.Err, "change a is in progress") {
		t.Errorf("racing propose: %+v", r)
	}
	applyCmd(t, f, 3, Command{Op: OpAdvance, Time: t0, ChangeID: "a", State: Applied})
	applyCmd(t, f, 4, Command{Op: OpConfirm, Time: t0})
	// Stale base after a was confirmed: conflict naming both generations.
	r = applyCmd(t, f, 5, proposeCmd("b", 0, "n1"))
	if !strings.Contains(r.Err, "based on generation 0 but the site is at generation 1") {
		t.Errorf("stale base: %+v", r)
	}
}

func TestRollbackToGeneration(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, proposeCmd("a", 0, "n1"))
	applyCmd(t, f, 2, Command{Op: OpAdvance, Time: t0, ChangeID: "a", State: Applied})
	applyCmd(t, f, 3, Command{Op: OpConfirm, Time: t0})
	cmd := Command{Op: OpPropose, Time: t0, Propose: &Propose{ID: "r", Kind: "rollback", Base: 1, ToGen: 0, Targets: []string{"n1"}}}
	if r := applyCmd(t, f, 4, cmd); r.Err != "" || r.Gen != 2 {
		t.Fatalf("rollback propose: %+v", r)
	}
	cmd.Propose.ID, cmd.Propose.ToGen = "r2", 7
	applyCmd(t, f, 5, Command{Op: OpAdvance, Time: t0, ChangeID: "r", State: Aborted})
	if r := applyCmd(t, f, 6, cmd); !strings.Contains(r.Err, "generation 7 is not in the history") {
		t.Errorf("unknown gen: %+v", r)
	}
}

func TestLocks(t *testing.T) {
	f := NewFSM()
	var tokens []uint64
	for i, h := range []string{"h1", "h2"} {
		r := applyCmd(t, f, uint64(10+i), Command{Op: OpLock, Time: t0, Lock: "db", Holder: h, Node: "n1", Limit: 2})
		if r.Err != "" {
			t.Fatal(r.Err)
		}
		tokens = append(tokens, r.Token)
	}
	if tokens[1] <= tokens[0] {
		t.Errorf("fencing tokens do not grow: %v", tokens)
	}
	if r := applyCmd(t, f, 12, Command{Op: OpLock, Time: t0, Lock: "db", Holder: "h3", Node: "n2", Limit: 2}); !strings.Contains(r.Err, ErrLockFull.Error()) {
		t.Errorf("third holder: %+v", r)
	}
	if r := applyCmd(t, f, 13, Command{Op: OpLock, Time: t0, Lock: "db", Holder: "h3", Node: "n2", Limit: 3}); !strings.Contains(r.Err, "limit 2, not 3") {
		t.Errorf("limit mismatch: %+v", r)
	}
	applyCmd(t, f, 14, Command{Op: OpUnlock, Lock: "db", Holder: "h1"})
	r := applyCmd(t, f, 15, Command{Op: OpLock, Time: t0, Lock: "db", Holder: "h3", Node: "n2", Limit: 2})
	if r.Err != "" || r.Token != 15 {
		t.Errorf("after unlock: %+v", r)
	}
	// A failed node's holds are released.
	applyCmd(t, f, 16, Command{Op: OpUnlockNode, Node: "n1"})
	if l := f.State().Locks["db"]; len(l.Holders) != 1 || l.Holders["h3"] == nil {
		t.Errorf("after node release: %+v", l)
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, proposeCmd("a", 0, "n1", "n2"))
	applyCmd(t, f, 2, Command{Op: OpLock, Time: t0, Lock: "x", Holder: "h", Node: "n1", Limit: 1})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sink := &memSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	a, b := f.State(), g.State()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("restored state differs:\n%s\n%s", ja, jb)
	}
	if err := NewFSM().Restore(io.NopCloser(strings.NewReader("{garbage"))); err == nil {
		t.Error("garbage snapshot restored")
	}
}

func TestBadCommands(t *testing.T) {
	f := NewFSM()
	if r := f.Apply(&raft.Log{Index: 1, Data: []byte("not json")}).(Result); !strings.Contains(r.Err, ErrBadCommand.Error()) {
		t.Errorf("garbage: %+v", r)
	}
	for _, cmd := range []Command{
		{Op: "nope"},
		{Op: OpPropose},
		{Op: OpNode, ChangeID: "none", Node: "n1"},
		{Op: OpAdvance, ChangeID: "none"},
		{Op: OpLock, Lock: "x"},
	} {
		if r := applyCmd(t, f, 2, cmd); r.Err == "" {
			t.Errorf("%+v accepted", cmd)
		}
	}
	if st := f.State(); st.Generation != 0 || len(st.Changes) != 0 {
		t.Errorf("bad commands changed the state: %+v", st)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	f := NewFSM()
	for i := range MaxChanges + 20 {
		id := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		base := f.State().Confirmed
		if r := applyCmd(t, f, uint64(3*i+1), proposeCmd(id, base, "n1")); r.Err != "" {
			t.Fatal(r.Err)
		}
		applyCmd(t, f, uint64(3*i+2), Command{Op: OpAdvance, Time: t0, ChangeID: id, State: Applied})
		applyCmd(t, f, uint64(3*i+3), Command{Op: OpConfirm, Time: t0})
	}
	st := f.State()
	if len(st.Changes) > MaxChanges || len(st.Docs) > MaxDocs || st.Docs[st.Confirmed] == nil {
		t.Errorf("history: %d changes, %d docs, confirmed doc %v", len(st.Changes), len(st.Docs), st.Docs[st.Confirmed] != nil)
	}
}

type memSink struct{ *bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return errors.New("cancelled") }
func (s *memSink) Close() error  { return nil }

// A state handed out never changes afterwards: the FSM replaces what it
// modifies, so readers hold a consistent snapshot without a deep copy.
func TestStateSnapshotsStayPut(t *testing.T) {
	f := NewFSM()
	applyCmd(t, f, 1, proposeCmd("c1", 0, "n1", "n2"))
	before := f.State()
	applyCmd(t, f, 2, Command{Op: OpNode, Time: t0.Add(time.Second), ChangeID: "c1", Node: "n1", Phase: PhaseValid})
	applyCmd(t, f, 3, Command{Op: OpNode, Time: t0, ChangeID: "c1", Node: "n2", Phase: PhaseValid})
	applyCmd(t, f, 4, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: Applying, Phase: PhaseApplying, Nodes: []string{"n1", "n2"}})
	mid := f.State()
	applyCmd(t, f, 5, Command{Op: OpAdvance, Time: t0, ChangeID: "c1", State: Applied, ConfirmBy: t0.Add(time.Minute)})
	applyCmd(t, f, 6, Command{Op: OpConfirm, Time: t0, Node: "n1"})
	after := f.State()

	c := before.Change("c1")
	if c.State != Proposed || len(c.History) != 1 || c.Nodes["n1"].Phase != PhaseValidating || !c.Updated.Equal(t0) || before.Active != "c1" {
		t.Errorf("the state taken after the proposal changed: %s, %d transitions, n1 %s, updated %v, active %q",
			c.State, len(c.History), c.Nodes["n1"].Phase, c.Updated, before.Active)
	}
	if c := mid.Change("c1"); c.State != Applying || c.Nodes["n2"].Phase != PhaseApplying || mid.Confirmed != 0 {
		t.Errorf("the state taken while applying changed: %s, n2 %s, confirmed %d", c.State, c.Nodes["n2"].Phase, mid.Confirmed)
	}
	if c := after.Change("c1"); c.State != Confirmed || after.Confirmed != 1 || after.Active != "" {
		t.Errorf("after the confirm: %s, confirmed %d, active %q", c.State, after.Confirmed, after.Active)
	}
}
