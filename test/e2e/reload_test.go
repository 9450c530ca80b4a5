package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReload: SIGHUP re-reads the node config. A broken file is refused
// with the file, line and key named, and the daemon keeps running on the
// config it had; a good one is taken, and keys that need a restart are
// named.
func TestReload(t *testing.T) {
	l := newLab(t, 2, nil)
	site := names(l)
	waitAll(t, l, site, 15*time.Second, "2 alive", exactly(site...))
	n := mustNode(t, l, "node1")
	orig, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(n.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	if err := os.WriteFile(n.Config, append(orig, []byte("gossip_prot: 7000\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	hup()
	waitLog(t, n.Log, 10*time.Second, `unknown key \"gossip_prot\"`)
	b, _ := os.ReadFile(n.Log)
	if !strings.Contains(string(b), "reload refused; running config kept") || !strings.Contains(string(b), n.Config+":") {
		t.Errorf("refusal does not name the file and line:\n%s", tail(string(b), 5))
	}
	// Still serving, still a member.
	waitView(t, l, "node2", 5*time.Second, "node1 still alive", exactly(site...))
	if _, _, code := edgectl(t, "--socket", n.Socket, "status"); code != 0 {
		t.Fatalf("status after a refused reload: exit %d", code)
	}

	fixed := strings.Replace(string(orig), "gossip_port: 7946", "gossip_port: 7947", 1)
	if fixed == string(orig) {
		t.Fatalf("no gossip_port line in the lab config:\n%s", orig)
	}
	if err := os.WriteFile(n.Config, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	hup()
	waitLog(t, n.Log, 10*time.Second, "these changes take effect after a restart")
	if b, _ := os.ReadFile(n.Log); !strings.Contains(string(b), "gossip_port") {
		t.Errorf("restart-only key not named:\n%s", tail(string(b), 5))
	}
}
