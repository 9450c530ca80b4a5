package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testdata/proto1 holds what the release before protocol versions (commit
// 0c95286) wrote, captured by running its own code: commands.jsonl, the raft
// log entries of one confirmed change and a lock, one per line, and
// snapshot.json, its FSM's snapshot after applying them.

func oldCommands(t *testing.T) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/proto1/commands.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, slices.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		t.Fatalf("commands.jsonl: %d lines, %v", len(out), err)
	}
	return out
}

type sinkBuf struct{ bytes.Buffer }

func (s *sinkBuf) ID() string    { return "test" }
func (s *sinkBuf) Cancel() error { return nil }
func (s *sinkBuf) Close() error  { return nil }

func snapshotOf(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var s sinkBuf
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	return s.Bytes()
}

// withoutVersion decodes data into a value of t's type less its Version
// field: the type as a release before versions had it, decoded the way
// that release decodes (encoding/json, unknown keys ignored).
func withoutVersion(t *testing.T, typ reflect.Type, data []byte) any {
	t.Helper()
	var fields []reflect.StructField
	for i := range typ.NumField() {
		if f := typ.Field(i); f.Name != "Version" {
			fields = append(fields, f)
		}
	}
	v := reflect.New(reflect.StructOf(fields))
	if err := json.Unmarshal(data, v.Interface()); err != nil {
		t.Fatalf("decoded as the old release would: %v", err)
	}
	return v.Elem().Interface()
}

func TestOldFormatIsVersion1(t *testing.T) {
	f := NewFSM()
	for i, line := range oldCommands(t) {
		var cmd Command
		if err := json.Unmarshal(line, &cmd); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if cmd.Version != 0 {
			t.Errorf("line %d: version %d, want 0 (absent: 1)", i+1, cmd.Version)
		}
		// This release writes a version-1 command exactly as the old one
		// did: the log stays readable both ways.
		again, err := json.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, line) {
			t.Errorf("line %d written back differs:\n old %s\n new %s", i+1, line, again)
		}
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: line}).(Result); r.Err != "" {
			t.Fatalf("line %d: %s", i+1, r.Err)
		}
	}
	st := f.State()
	if st.Confirmed != 1 || st.Locks["maint"] == nil || st.Change("c1").State != Confirmed {
		t.Fatalf("state after the old log: %+v", st)
	}

	// The old snapshot restores as version 1, to the same state.
	old, err := os.ReadFile("testdata/proto1/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatalf("restore the old snapshot: %v", err)
	}
	if !reflect.DeepEqual(g.State(), st) {
		t.Errorf("old snapshot restores to\n%+v\nthe old log applies to\n%+v", g.State(), st)
	}

	// This release's snapshot of that state says version 1 and, read by
	// the old release (its State has no version), is the old snapshot.
	snap := snapshotOf(t, f)
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(snap, &head); err != nil || head.Version == nil || *head.Version != 1 {
		t.Fatalf("new snapshot's version: %v (%v)", head.Version, err)
	}
	var asOld State
	if err := json.Unmarshal(snap, &asOld); err != nil {
		t.Fatal(err)
	}
	var oldState State
	if err := json.Unmarshal(old, &oldState); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(asOld, oldState) {
		t.Errorf("new snapshot as the old release reads it:\n%+v\nwant\n%+v", asOld, oldState)
	}
}

func TestNewerVersionsAreRefused(t *testing.T) {
	f := NewFSM()
	cmd := Command{Version: 2, Op: OpLock, Time: t0, Lock: "l", Holder: "h", Node: "n1", Limit: 1}
	r := applyCmd(t, f, 1, cmd)
	if !strings.Contains(r.Err, "command version 2") || !errors.Is(ResultError(r.Err), ErrBadCommand) {
		t.Errorf("a version-2 command: %+v, want refused as a bad command", r)
	}
	if len(f.State().Locks) != 0 {
		t.Errorf("a refused command changed the state: %+v", f.State().Locks)
	}
	// Version 1 written out is the same command as version 0.
	cmd.Version = 1
	if r := applyCmd(t, f, 2, cmd); r.Err != "" || r.Token != 2 {
		t.Errorf("a version-1 command: %+v", r)
	}
	// The old release reads a version-2 command as if it were version 1:
	// why ServersSpeak must hold before one is written.
	data, _ := json.Marshal(Command{Version: 2, Op: OpUnlock, Lock: "l", Holder: "h"})
	old := withoutVersion(t, reflect.TypeFor[Command](), data)
	if reflect.ValueOf(old).FieldByName("Op").String() != OpUnlock {
		t.Errorf("old release reads %+v", old)
	}

	snap := []byte(`{"version":2,"generation":7,"confirmed":7}`)
	g := NewFSM()
	err := g.Restore(io.NopCloser(bytes.NewReader(snap)))
	if err == nil || !strings.Contains(err.Error(), "snapshot version 2") || !strings.Contains(err.Error(), "upgrade edged") {
		t.Errorf("restore of a version-2 snapshot: %v", err)
	}
	if g.State().Generation != 0 {
		t.Errorf("a refused snapshot changed the state: %+v", g.State())
	}
	if err := g.Restore(io.NopCloser(strings.NewReader(`{"version":1,"generation":7,"confirmed":7}`))); err != nil || g.State().Generation != 7 {
		t.Errorf("restore of a version-1 snapshot: %v, %+v", err, g.State())
	}
}

func TestServersSpeak(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", false)}}
	peer := func(name, proto string) Peer { return Peer{Name: name, Alive: true, Proto: proto} }
	tests := []struct {
		name  string
		peers []Peer
		v     int
		err   string // "" = allowed
	}{
		{"version 1 always", []Peer{peer("n1", "")}, 1, ""},
		{"all speak 2", []Peer{peer("n1", "1-2"), peer("n2", "2"), peer("n3", "2-3")}, 2, ""},
		{"an old release among them", []Peer{peer("n1", "1-2"), peer("n2", ""), peer("n3", "1-2")}, 2, "n2 (speaks 1)"},
		{"a non-voter counts too", []Peer{peer("n1", "1-2"), peer("n2", "1-2"), peer("n3", "1")}, 2, "n3 (speaks 1)"},
		{"unknown server", []Peer{peer("n1", "1-2"), peer("n2", "1-2")}, 2, "n3 (unknown)"},
		{"malformed tag", []Peer{peer("n1", "1-2"), peer("n2", "x"), peer("n3", "1-2")}, 2, `n2 (protocol "x"`},
		{"non-servers do not count", []Peer{peer("n1", "2"), peer("n2", "2"), peer("n3", "2"), peer("n4", "")}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ServersSpeak(cfg, tt.peers, tt.v)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrProtoGate) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want ErrProtoGate naming %q", err, tt.err)
			}
		})
	}
}

func TestPlanMembershipSkipsIncompatiblePeers(t *testing.T) {
	three := raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", true)}}
	with := func(peers []Peer, protos map[string]string) []Peer {
		for i := range peers {
			peers[i].Proto = protos[peers[i].Name]
		}
		return peers
	}
	pol := PromotePolicy{DeadAfter: 30 * time.Second, StableAfter: 10 * time.Second}
	tests := []struct {
		name   string
		cfg    raft.Configuration
		protos map[string]string
		want   []string
	}{
		{"old and new releases mix", three, map[string]string{"n1": "", "n2": "1", "n4": "1-2", "n5": ""}, []string{"add_nonvoter:n4", "add_nonvoter:n5"}},
		{"a release past the voters' range", three, map[string]string{"n4": "2-3", "n5": "1-3"}, []string{"add_nonvoter:n5"}},
		{"voters already on 2-3", three, map[string]string{"n1": "2-3", "n2": "2-3", "n3": "2-3", "n4": "", "n5": "3"}, []string{"add_nonvoter:n5"}},
		{"malformed tag", three, map[string]string{"n4": "two", "n5": "1"}, []string{"add_nonvoter:n5"}},
		{
			"an incompatible non-voter is not promoted",
			raft.Configuration{Servers: []raft.Server{srv("n1", true), srv("n2", true), srv("n3", false), srv("n4", false)}},
			map[string]string{"n3": "5", "n4": "1"},
			[]string{"promote:n4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := with(alive("n1", "n2", "n3", "n4", "n5"), tt.protos)
			if len(tt.cfg.Servers) == 4 {
				peers = with(alive("n1", "n2", "n3", "n4"), tt.protos)
			}
			got := acts(PlanMembership(tt.cfg, peers, "n1", pol))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
