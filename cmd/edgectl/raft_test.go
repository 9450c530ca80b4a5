package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"edge/daemon/api"
)

// startRaftAPI serves p as edged's GET /v1/raft/peers.
func startRaftAPI(t *testing.T, p api.RaftPeers) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathRaftPeers, func(w http.ResponseWriter, r *http.Request) { reply(w, p) })
	return serveFake(t, mux)
}

// lostQuorum: node1 survives, node2 and node3 (voters) are gone, node4 (a
// non-voter) is alive, node5 is suspect.
var lostQuorum = api.RaftPeers{
	Node: "node1",
	Servers: []api.RaftServer{
		{ID: "node1", Address: "192.0.2.11:7947", Suffrage: api.SuffrageVoter, Status: api.StatusAlive},
		{ID: "node2", Address: "192.0.2.12:7947", Suffrage: api.SuffrageVoter, Status: api.StatusFailed},
		{ID: "node3", Address: "192.0.2.13:7947", Suffrage: api.SuffrageVoter, Status: "unknown"},
		{ID: "node4", Address: "192.0.2.14:7947", Suffrage: api.SuffrageNonvoter, Status: api.StatusAlive},
		{ID: "node5", Address: "192.0.2.15:7947", Suffrage: api.SuffrageNonvoter, Status: api.StatusSuspect},
	},
	LastIndex: 42, LastTerm: 3, AppliedIndex: 41, Generation: 7,
}

func TestRaftPeers(t *testing.T) {
	sock := startRaftAPI(t, lostQuorum)

	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "raft", "peers")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		want := []string{
			"raft configuration as node1 knows it; leader none (no quorum)",
			"NAME   ADDRESS          SUFFRAGE  STATUS   LEADER",
			"node1  192.0.2.11:7947  voter     alive",
			"node2  192.0.2.12:7947  voter     failed",
			"node3  192.0.2.13:7947  voter     unknown",
			"node4  192.0.2.14:7947  nonvoter  alive",
			"node5  192.0.2.15:7947  nonvoter  suspect",
			"this node's log: last index 42 (term 3), applied 41, generation 7",
		}
		got := lines(stdout)
		for i := range got {
			got[i] = strings.TrimRight(got[i], " ")
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "raft", "peers", "--json")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		var p api.RaftPeers
		decodeOne(t, stdout, &p)
		if !reflect.DeepEqual(p, lostQuorum) {
			t.Errorf("got %+v\nwant %+v", p, lostQuorum)
		}
	})

	t.Run("peers-json", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "raft", "peers", "--peers-json")
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		want := `[
  {"id":"node1","address":"192.0.2.11:7947","non_voter":false},
  {"id":"node4","address":"192.0.2.14:7947","non_voter":true}
]
`
		if stdout != want {
			t.Errorf("got:\n%s\nwant:\n%s", stdout, want)
		}
		if stderr != "edgectl raft peers: left out (not alive): node2 (failed), node3 (unknown), node5 (suspect)\n" {
			t.Errorf("stderr %q", stderr)
		}
	})
}

// A non-voter that survived becomes the only voter of its recovery file;
// the voter alive next to it is listed as a non-voter.
func TestRaftPeersNonvoterSurvivor(t *testing.T) {
	p := lostQuorum
	p.Node = "node4"
	sock := startRaftAPI(t, p)
	code, stdout, stderr := edgectl(t, "--socket", sock, "raft", "peers", "--peers-json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var entries []api.PeersJSONEntry
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil {
		t.Fatalf("not a JSON list: %v\n%s", err, stdout)
	}
	want := []api.PeersJSONEntry{{ID: "node1", Address: "192.0.2.11:7947", NonVoter: true}, {ID: "node4", Address: "192.0.2.14:7947"}}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("got %+v, want %+v", entries, want)
	}
}

func TestRaftPeersRefused(t *testing.T) {
	withLeader := lostQuorum
	withLeader.Leader = "node2"
	notListed := lostQuorum
	notListed.Node = "node9"
	forming := api.RaftPeers{Node: "node1", Servers: []api.RaftServer{}}
	tests := []struct {
		name string
		p    api.RaftPeers
		args []string
		code int
		want string
	}{
		{"a leader is known", withLeader, []string{"--peers-json"}, 1, "edgectl raft: the site has a raft leader (node2): a recovery file is only for a lost quorum"},
		{"not in the configuration", notListed, []string{"--peers-json"}, 1, "edgectl raft: node9 is not in the raft configuration it knows"},
		{"no configuration", forming, []string{"--peers-json"}, 1, "edgectl raft: node1 knows no raft configuration"},
		{"json and peers-json", lostQuorum, []string{"--json", "--peers-json"}, 2, "edgectl raft: usage: --json and --peers-json exclude each other"},
		{"force alone", lostQuorum, []string{"--force"}, 2, "edgectl raft: usage: --force goes with --peers-json"},
		{"extra argument", lostQuorum, []string{"node1"}, 2, "edgectl raft: usage: unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := startRaftAPI(t, tt.p)
			code, stdout, stderr := edgectl(t, append([]string{"--socket", sock, "raft", "peers"}, tt.args...)...)
			if code != tt.code || stdout != "" || len(lines(stderr)) != 1 || !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q...)", code, tt.code, stdout, stderr, tt.want)
			}
		})
	}
	t.Run("force prints it with a leader", func(t *testing.T) {
		sock := startRaftAPI(t, withLeader)
		code, stdout, _ := edgectl(t, "--socket", sock, "raft", "peers", "--peers-json", "--force")
		if code != 0 || !strings.Contains(stdout, `"id":"node1"`) {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	for _, args := range [][]string{{"raft"}, {"raft", "vote"}} {
		code, _, stderr := edgectl(t, args...)
		if code != 2 || len(lines(stderr)) != 1 {
			t.Errorf("edgectl %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
	if code, _, stderr := edgectl(t, "raft", "--help"); code != 0 || !strings.Contains(stderr, "usage: edgectl raft peers") {
		t.Errorf("raft --help: exit %d, %q", code, stderr)
	}
}
