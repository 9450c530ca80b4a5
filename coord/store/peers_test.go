package store

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"edge/internal/strictyaml"
)

func TestParsePeers(t *testing.T) {
	good := `[
  {"id": "node1", "address": "192.0.2.11:7947", "non_voter": false},
  {"id": "node4", "address": "192.0.2.14:7947", "non_voter": true},
  {"address": "[2001:db8::5]:7947", "id": "node5"}
]
`
	got, err := ParsePeers("peers.json", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []RecoveryServer{
		{ID: "node1", Address: "192.0.2.11:7947", Line: 2},
		{ID: "node4", Address: "192.0.2.14:7947", NonVoter: true, Line: 3},
		{ID: "node5", Address: "[2001:db8::5]:7947", Line: 4},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	cfg := RecoveryConfiguration(got)
	if len(cfg.Servers) != 3 || cfg.Servers[0].Suffrage != raft.Voter || cfg.Servers[1].Suffrage != raft.Nonvoter || cfg.Servers[2].Address != "[2001:db8::5]:7947" {
		t.Errorf("configuration: %+v", cfg)
	}
	// raft's own reader takes the same file: the format is raft's.
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	rcfg, err := raft.ReadConfigJSON(path)
	if err != nil || !slices.Equal(rcfg.Servers, cfg.Servers) {
		t.Errorf("raft.ReadConfigJSON: %+v %v, want %+v", rcfg, err, cfg)
	}

	bad := []struct {
		name, in, want string
	}{
		{"empty file", "", "peers.json: empty file: want a JSON list"},
		{"blank file", " \n\n", "peers.json: empty file"},
		{"bad JSON", "[\n  {\"id\": \"node1\",\n   \"address\" \"192.0.2.11:7947\"}\n]", "peers.json:3: not valid JSON"},
		{"truncated", "[\n  {\"id\": \"node1\"", "peers.json:2: not valid JSON: unexpected end of file"},
		{"not a list", `{"id": "node1", "address": "192.0.2.11:7947"}`, "peers.json:1: want a JSON list of servers"},
		{"legacy format (addresses only)", `["192.0.2.11:7947"]`, `peers.json:1: [0]: want an object with "id", "address" and "non_voter"; got the string "192.0.2.11:7947"`},
		{"empty list", "\n[ ]\n", "peers.json:2: empty list"},
		{"unknown key", "[\n {\"id\": \"node1\", \"address\": \"192.0.2.11:7947\",\n  \"suffrage\": \"voter\"}\n]", `peers.json:3: [0].suffrage: unknown key: want "id", "address" and "non_voter"`},
		{"duplicate key", "[{\"id\": \"node1\", \"address\": \"192.0.2.11:7947\",\n \"id\": \"node2\"}]", "peers.json:2: [0].id: duplicate key (first at line 1)"},
		{"duplicate id", "[\n {\"id\": \"node1\", \"address\": \"192.0.2.11:7947\"},\n {\"id\": \"node1\", \"address\": \"192.0.2.12:7947\"}\n]", "peers.json:3: [1].id: node1 is already listed at line 2"},
		{"duplicate address", "[\n {\"id\": \"node1\", \"address\": \"192.0.2.11:7947\"},\n {\"id\": \"node2\", \"address\": \"192.0.2.11:7947\"}\n]", "peers.json:3: [1].address: 192.0.2.11:7947 is already listed at line 2"},
		{"address without port", `[{"id": "node1", "address": "192.0.2.11"}]`, `peers.json:1: [0].address: "192.0.2.11": want the raft address as IP:port`},
		{"host name address", `[{"id": "node1", "address": "node1.site:7947"}]`, `[0].address: "node1.site:7947": want the raft address as IP:port`},
		{"port zero", `[{"id": "node1", "address": "192.0.2.11:0"}]`, `[0].address: "192.0.2.11:0"`},
		{"unspecified address", `[{"id": "node1", "address": "0.0.0.0:7947"}]`, `[0].address: "0.0.0.0:7947"`},
		{"address not a string", `[{"id": "node1", "address": 7947}]`, "[0].address: want the raft address as a string, IP:port such as \"192.0.2.11:7947\"; got the number 7947"},
		{"missing address", "[\n {\"id\": \"node1\"}\n]", `peers.json:2: [0].address: missing: every server needs "id" and "address"`},
		{"missing id", "[\n {\"address\": \"192.0.2.11:7947\"}\n]", "peers.json:2: [0].id: missing"},
		{"empty id", `[{"id": "", "address": "192.0.2.11:7947"}]`, "[0].id: empty: want the node name"},
		{"id with a space", `[{"id": "node 1", "address": "192.0.2.11:7947"}]`, `[0].id: "node 1": want the node name`},
		{"id not a string", `[{"id": 1, "address": "192.0.2.11:7947"}]`, "[0].id: want the node name as a string; got the number 1"},
		{"non_voter not a bool", `[{"id": "node1", "address": "192.0.2.11:7947", "non_voter": "no"}]`, `[0].non_voter: want true or false; got the string "no"`},
		{"no voter", "[\n {\"id\": \"node1\", \"address\": \"192.0.2.11:7947\", \"non_voter\": true}\n]", "peers.json:1: no voter"},
		{"two lists", `[{"id": "node1", "address": "192.0.2.11:7947"}]` + "\n[]", "peers.json:2: more after the list of servers"},
		{"trailing garbage", `[{"id": "node1", "address": "192.0.2.11:7947"}] x`, "peers.json:1: more after the list"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePeers("peers.json", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			var se *strictyaml.Error
			if !errors.As(err, &se) || se.File != "peers.json" {
				t.Errorf("error %T does not name the file: %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestReadPeersLimits(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPeers(filepath.Join(dir, PeersFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte("["+strings.Repeat(" ", maxPeersFile)+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPeers(big); err == nil || !strings.Contains(err.Error(), big+": larger than 64 KiB") {
		t.Errorf("big file: %v", err)
	}
}

// peersFile renders servers as a peers.json file.
func peersFile(t *testing.T, dir string, servers ...raft.Server) string {
	t.Helper()
	type entry struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		NonVoter bool   `json:"non_voter"`
	}
	var list []entry
	for _, s := range servers {
		list = append(list, entry{string(s.ID), string(s.Address), s.Suffrage == raft.Nonvoter})
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, PeersFile)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// listDir names the files of dir and its snapshots with their sizes.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir)+":"+fi.ModTime().String())
		} else if d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir)+"/")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A site of three loses two voters for good: the survivor has no quorum
// until it restarts with a peers.json naming only itself; then it leads
// alone with every command it held, and the file is not applied twice.
// Bad files refuse the start and change nothing.
func TestRecoverFromPeersJSON(t *testing.T) {
	nodes := cluster(t, 3)
	for _, n := range nodes {
		if err := n.s.Bootstrap(servers(nodes)); err != nil {
			t.Fatal(err)
		}
	}
	sv := waitLeader(t, nodes)
	if _, err := sv.s.Apply(proposeCmd("c1", 0, "n1", "n2", "n3")); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.s.Apply(Command{Op: OpLock, Time: t0, Lock: "door", Holder: "h1", Node: "n1", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	var dead []*testNode
	for _, n := range nodes {
		if n != sv {
			dead = append(dead, n)
			n.close()
		}
	}
	before := sv.s.State()
	// The leader writes a command to its own log before it learns that no
	// quorum is left: the command fails, but stays in the log.
	_, err := sv.s.Apply(Command{Op: OpUnlock, Time: t0, Lock: "door", Holder: "h1"})
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("survivor alone: want ErrNoQuorum, got %v", err)
	}
	inLog := strings.Contains(err.Error(), raft.ErrLeadershipLost.Error())
	dir := sv.s.cfg.Dir
	sv.s.Close()
	sv.s = nil
	open := func() (*Store, error) {
		cfg := DefaultConfig()
		cfg.NodeName = sv.name
		cfg.Dir = dir
		return Open(cfg, sv.mux.Raft())
	}

	self := raft.Server{ID: raft.ServerID(sv.name), Address: raft.ServerAddress(sv.addr), Suffrage: raft.Voter}
	refused := []struct {
		name    string
		write   func() string
		wantErr string
	}{
		{"bad JSON", func() string {
			p := filepath.Join(dir, PeersFile)
			if err := os.WriteFile(p, []byte("[\n  {\"id\": \"n1\" \"address\": \"x\"}\n]\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, ":2: not valid JSON"},
		{"this node not listed", func() string {
			return peersFile(t, dir, raft.Server{ID: raft.ServerID(dead[0].name), Address: raft.ServerAddress(dead[0].addr), Suffrage: raft.Voter})
		}, "this node, " + sv.name + ", is not listed"},
		{"this node at another address", func() string {
			return peersFile(t, dir, raft.Server{ID: self.ID, Address: "192.0.2.99:7947", Suffrage: raft.Voter})
		}, "[0].address: " + sv.name + " is listed at 192.0.2.99:7947, but its raft address is " + sv.addr},
	}
	for _, tt := range refused {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			was := listDir(t, dir)
			p := tt.write()
			s, err := open()
			if err == nil {
				s.Close()
				t.Fatal("started with a bad peers.json")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to name %s and say %q", err, p, tt.wantErr)
			}
			now := listDir(t, dir)
			if !slices.Equal(slices.DeleteFunc(now, func(s string) bool { return strings.HasPrefix(s, "/"+PeersFile+":") }), was) {
				t.Errorf("the raft folder changed:\n%v\nwas\n%v", now, was)
			}
			if err := os.Remove(p); err != nil {
				t.Errorf("the file is gone: %v", err)
			}
		})
	}

	peersFile(t, dir, self)
	s, err := open()
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	sv.s = s
	if got := waitLeader(t, []*testNode{sv}); got != sv {
		t.Fatal("the survivor does not lead")
	}
	if _, err := os.Stat(filepath.Join(dir, PeersFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after the recovery: %v", PeersFile, err)
	}
	if _, err := os.Stat(filepath.Join(dir, PeersAppliedFile)); err != nil {
		t.Errorf("no %s: %v", PeersAppliedFile, err)
	}
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil || !slices.Equal(f.Configuration().Servers, []raft.Server{self}) {
		t.Errorf("configuration after recovery: %+v %v, want only %s", f.Configuration(), err, sv.name)
	}
	// Everything committed is there; the command that failed for want of
	// a quorum is applied too when it had reached the log (raft's
	// RecoverCluster replays the whole log, as in Consul).
	st := s.State()
	wantLocks := 1
	if inLog {
		wantLocks = 0
	}
	if st.Active != "c1" || st.Generation != before.Generation || len(st.Locks) != wantLocks || (st.Index > before.Index) != inLog || st.Index < before.Index {
		t.Errorf("state after recovery: active %q gen %d locks %d index %d; want c1 %d %d, index %d or more (the failed unlock in the log: %v)",
			st.Active, st.Generation, len(st.Locks), st.Index, before.Generation, wantLocks, before.Index, inLog)
	}
	t.Logf("the command refused with no quorum was in the log: %v", inLog)
	if _, err := s.Apply(Command{Op: OpLock, Time: t0, Lock: "gate", Holder: "h2", Node: "n1", Limit: 1}); err != nil {
		t.Fatalf("a command after the recovery: %v", err)
	}
	after := s.State()
	if after.Index <= st.Index || after.Locks["gate"] == nil {
		t.Errorf("after a new command: index %d (was %d), locks %v", after.Index, st.Index, after.Locks)
	}

	// A restart keeps the recovered configuration and applies nothing again.
	s.Close()
	sv.s = nil
	if s, err = open(); err != nil {
		t.Fatal(err)
	}
	sv.s = s
	waitLeader(t, []*testNode{sv})
	waitState(t, sv, "the log replayed after a restart", func(st *State) bool { return st.Index == after.Index && st.Locks["gate"] != nil })
	if _, err := os.Stat(filepath.Join(dir, PeersFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s came back: %v", PeersFile, err)
	}
}

// A node without raft state refuses a peers.json: recovery is for a node
// that holds the site's data, not a way to start a site.
func TestRecoverRefusedWithoutState(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	dir := n.s.cfg.Dir
	n.s.Close()
	n.s = nil
	p := peersFile(t, dir, raft.Server{ID: "n1", Address: raft.ServerAddress(n.addr), Suffrage: raft.Voter})
	cfg := DefaultConfig()
	cfg.NodeName = "n1"
	cfg.Dir = dir
	s, err := Open(cfg, n.mux.Raft())
	if err == nil {
		s.Close()
		t.Fatal("recovered a node without state")
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no initial state") {
		t.Errorf("error %q", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the file was moved: %v", err)
	}
}

// FuzzParsePeers: the parser never panics; it refuses input with a
// *strictyaml.Error naming the file, or returns servers that raft accepts
// (ids and addresses unique, a voter) and that read back the same when
// written out again.
func FuzzParsePeers(f *testing.F) {
	f.Add([]byte(`[{"id": "node1", "address": "192.0.2.11:7947", "non_voter": false}]`))
	f.Add([]byte("[\n {\"id\": \"a\", \"address\": \"[2001:db8::1]:1\"},\n {\"id\": \"b\", \"address\": \"192.0.2.1:2\", \"non_voter\": true}\n]"))
	f.Add([]byte(`[{"id": "a", "id": "b"}]`))
	f.Add([]byte(`["192.0.2.1:7947"]`))
	f.Add([]byte(`[{"id": "\u00e9\t", "address": "1.2.3.4:5", "x": null}] []`))
	f.Fuzz(func(t *testing.T, data []byte) {
		servers, err := ParsePeers("fuzz.json", data)
		if err != nil {
			var se *strictyaml.Error
			if !errors.As(err, &se) || se.File != "fuzz.json" {
				t.Fatalf("error %T %q does not name the file", err, err)
			}
			if servers != nil {
				t.Fatalf("servers returned with an error: %+v", servers)
			}
			return
		}
		if len(servers) == 0 {
			t.Fatal("no servers and no error")
		}
		ids, addrs, voters := map[string]bool{}, map[string]bool{}, 0
		type entry struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			NonVoter bool   `json:"non_voter"`
		}
		var again []entry
		for _, s := range servers {
			if s.ID == "" || s.Address == "" || ids[s.ID] || addrs[s.Address] || s.Line < 1 {
				t.Fatalf("bad server accepted: %+v in %+v", s, servers)
			}
			ids[s.ID], addrs[s.Address] = true, true
			if !s.NonVoter {
				voters++
			}
			again = append(again, entry{s.ID, s.Address, s.NonVoter})
		}
		if voters == 0 {
			t.Fatal("no voter accepted")
		}
		b, err := json.MarshalIndent(again, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePeers("again.json", b)
		if err != nil {
			t.Fatalf("written out again, refused: %v\n%s", err, b)
		}
		if len(back) != len(servers) {
			t.Fatalf("read back %d servers, want %d", len(back), len(servers))
		}
		for i := range back {
			if back[i].ID != servers[i].ID || back[i].Address != servers[i].Address || back[i].NonVoter != servers[i].NonVoter {
				t.Fatalf("read back %+v, want %+v", back[i], servers[i])
			}
		}
	})
}
