package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edge/coord"
)

// A recovery file is checked while the daemon is made: a missing one is
// fine, a bad one or one that names this node elsewhere is refused with
// the file, the line and the key.
func TestCheckRecovery(t *testing.T) {
	dir := t.TempDir()
	rc := coord.DefaultRaftConfig()
	rc.NodeName, rc.AdvertiseAddr, rc.Port = "node1", netip.MustParseAddr("192.0.2.11"), 7947
	rc.Store.Dir = filepath.Join(dir, "raft") // not made yet: a new node
	if err := checkRecovery(rc); err != nil {
		t.Fatalf("no raft folder: %v", err)
	}
	if err := os.MkdirAll(rc.Store.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(rc.Store.Dir, "peers.json")
	tests := []struct{ file, want string }{
		{`[{"id": "node1", "address": "192.0.2.11:7947"}]`, ""},
		{"[\n {\"id\": \"node1\", \"address\": \"192.0.2.11:7947\", \"voter\": true}\n]", path + ":2: [0].voter: unknown key"},
		{`[{"id": "node1", "address": "192.0.2.21:7947"}]`, path + ":1: [0].address: node1 is listed at 192.0.2.21:7947, but its raft address is 192.0.2.11:7947"},
		{`[{"id": "node2", "address": "192.0.2.12:7947"}]`, path + ": this node, node1, is not listed"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkRecovery(rc)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.file, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "raft recovery: ")):
			t.Errorf("%s: error %v, want %q", tt.file, err, tt.want)
		}
	}
}
