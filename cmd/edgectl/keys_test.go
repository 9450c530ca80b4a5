package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"edge/daemon/api"
)

// fakeKeys serves the keyring API: a site of three nodes with two keys, the
// second one missing on node3 and node3 not answering. Requests are
// recorded; a request naming the primary key "bad" fails.
type fakeKeys struct {
	mu   sync.Mutex
	reqs []string
}

var fakeKeyring = api.Keyring{
	Nodes: []string{"node1", "node2", "node3"},
	Keys: []api.KeyInfo{
		{ID: "1a2b3c4d", Nodes: []string{"node1", "node2", "node3"}, Primary: []string{"node1", "node2", "node3"}},
		{ID: "9f8e7d6c", Nodes: []string{"node1", "node2"}, Primary: []string{}},
	},
	Failed: []api.NodeError{{Node: "node3", Error: "did not answer"}},
}

func startFakeKeys(t *testing.T) (string, *fakeKeys) {
	t.Helper()
	f := &fakeKeys{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathKeys, func(w http.ResponseWriter, r *http.Request) { reply(w, fakeKeyring) })
	for _, p := range []string{api.PathKeyInstall, api.PathKeyUse, api.PathKeyRemove} {
		mux.HandleFunc("POST "+p, func(w http.ResponseWriter, r *http.Request) {
			var req api.KeyRequest
			json.NewDecoder(r.Body).Decode(&req)
			f.mu.Lock()
			f.reqs = append(f.reqs, r.URL.Path+" "+req.Key)
			f.mu.Unlock()
			if req.Key == "1a2b3c4d" && p == api.PathKeyRemove {
				w.WriteHeader(http.StatusConflict)
				reply(w, api.Error{Error: "key 1a2b3c4d: the primary key cannot be removed: make another key primary first (edgectl keys use KEY)"})
				return
			}
			reply(w, api.KeyResult{ID: "9f8e7d6c", Keyring: fakeKeyring})
		})
	}
	mux.HandleFunc("POST "+api.PathKeyRotate, func(w http.ResponseWriter, r *http.Request) {
		var req api.KeyRotateRequest
		json.NewDecoder(r.Body).Decode(&req)
		res := api.KeyResult{ID: "1a2b3c4d", Keyring: fakeKeyring}
		if req.RemoveOld {
			res.Removed = []string{"9f8e7d6c"}
			res.Keyring = api.Keyring{Nodes: fakeKeyring.Nodes, Keys: fakeKeyring.Keys[:1]}
		}
		reply(w, res)
	})
	return serveFake(t, mux), f
}

func TestKeys(t *testing.T) {
	sock, f := startFakeKeys(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
	}{
		{"list", []string{"keys", "list"}, 0,
			[]string{"KEY ID    PRIMARY  INSTALLED  MISSING ON", "1a2b3c4d  *        3/3        -", "9f8e7d6c           2/3        node3"},
			[]string{"edgectl keys: node3: did not answer"}},
		{"list --json", []string{"keys", "list", "--json"}, 0, []string{`"id": "9f8e7d6c"`, `"failed"`}, nil},
		{"install", []string{"keys", "install", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "--json"}, 0, []string{`"id": "9f8e7d6c"`}, nil},
		{"use by id", []string{"keys", "use", "9f8e7d6c"}, 0, []string{"key 9f8e7d6c is the primary key on 3 nodes"}, nil},
		{"remove the primary", []string{"keys", "remove", "1a2b3c4d"}, 1, nil,
			[]string{"edgectl keys: edged: key 1a2b3c4d: the primary key cannot be removed"}},
		{"rotate", []string{"keys", "rotate"}, 0,
			[]string{"new key 1a2b3c4d installed on 3 nodes and primary on all of them", "edgectl keys remove 9f8e7d6c"}, nil},
		{"rotate --remove-old", []string{"keys", "rotate", "--remove-old"}, 0, []string{"removed the old keys: 9f8e7d6c"}, nil},
		{"no subcommand", []string{"keys"}, 2, nil, []string{"missing subcommand"}},
		{"unknown subcommand", []string{"keys", "frob"}, 2, nil, []string{`unknown subcommand "frob"`}},
		{"use without a key", []string{"keys", "use"}, 2, nil, []string{"want one KEY or ID"}},
		{"install with two keys", []string{"keys", "install", "a", "b"}, 2, nil, []string{`unexpected argument "b"`}},
		{"rotate with an argument", []string{"keys", "rotate", "now"}, 2, nil, []string{`unexpected argument "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := edgectl(t, append([]string{"--socket", sock}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.code != 0 && len(lines(stderr)) != 1 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) < 3 || !strings.HasSuffix(f.reqs[0], "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=") || f.reqs[1] != api.PathKeyUse+" 9f8e7d6c" {
		t.Errorf("requests %q", f.reqs)
	}
}

func TestReadKey(t *testing.T) {
	got, err := readKey(strings.NewReader("\n  c2VjcmV0  \nmore\n"))
	if err != nil || got != "c2VjcmV0" {
		t.Errorf("readKey: %q, %v", got, err)
	}
	if _, err := readKey(strings.NewReader("\n\n")); err == nil {
		t.Error("readKey of nothing: no error")
	}
}
