package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// tool finds a command of an independent peer; `make deps` installs them. A
// missing tool fails in CI and skips elsewhere.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: make deps installs it", name)
	}
	t.Skipf("%s not found (make deps installs it)", name)
	return ""
}

// TestStockSerfAgentSeesTheSite: an operator points a stock `serf agent`
// with the site key at one node; edged lists it (as a member without edged
// tags) and `serf members` lists the whole site.
func TestStockSerfAgentSeesTheSite(t *testing.T) {
	needRoot(t)
	serf := tool(t, "serf")
	l := newLab(t, 3, nil)
	site := names(l)
	waitAll(t, l, site, 15*time.Second, "3 alive", exactly(site...))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := l.AddNode(ctx, lab.NodeSpec{
		Name: "operator",
		Argv: []string{serf, "agent", "-node", "operator", "-bind", "{addr}:7946",
			"-rpc-addr", "127.0.0.1:7373", "-encrypt", "{key}", "-join", "192.0.2.12:7946"},
		NoWait: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	all := append(site, "operator")
	waitAll(t, l, site, 20*time.Second, "stock agent alive", exactly(all...))
	st := waitStatus(t, l, "node1")
	for _, m := range st.Members {
		if m.Name == "operator" && m.Tags[api.TagRole] != "" {
			t.Errorf("stock agent has edged tags: %v", m.Tags)
		}
	}
	table, _, code := edgectl(t, "--socket", mustNode(t, l, "node1").Socket, "members")
	if code != 0 || !strings.Contains(table, "operator") {
		t.Errorf("members table (exit %d):\n%s", code, table)
	}

	// The agent's own view: it got the whole site in the join's state
	// exchange. Its CLI has no blocking query: ask until it answers in full.
	var out []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err = l.Command(ctx, "operator", serf, "members", "-rpc-addr", "127.0.0.1:7373", "-status", "alive").CombinedOutput()
		if err == nil && countLines(out, site) == len(site) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serf members: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond) // a foreign CLI: nothing to wait on
	}
	for _, n := range site {
		if !strings.Contains(string(out), n) {
			t.Errorf("serf members lacks %s:\n%s", n, out)
		}
	}
	if !strings.Contains(string(out), "role=edged") {
		t.Errorf("serf members shows no edged tags:\n%s", out)
	}
}

func countLines(out []byte, names []string) int {
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		for _, name := range names {
			if strings.HasPrefix(line, name+" ") && strings.Contains(line, "alive") {
				n++
			}
		}
	}
	return n
}

// TestAvahiResolvesNodes: an independent mDNS stack (avahi) in its own
// namespace on the site LAN resolves every edged node: instance name, the
// node's address, the gossip port and the site in TXT.
func TestAvahiResolvesNodes(t *testing.T) {
	needRoot(t)
	tool(t, "avahi-daemon")
	tool(t, "avahi-browse")
	tool(t, "dbus-daemon")
	l := newLab(t, 3, nil)
	site := names(l)
	waitAll(t, l, site, 15*time.Second, "3 alive", exactly(site...))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "elavahi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "avahi-daemon.conf")
	if err := os.WriteFile(conf, []byte("[server]\nallow-interfaces=eth0\nuse-ipv6=no\nratelimit-burst=1000\n"+
		"[publish]\npublish-workstation=no\npublish-hinfo=no\npublish-addresses=no\n"+
		"[wide-area]\nenable-wide-area=no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// avahi in its own mount namespace: private /run/dbus and
	// /run/avahi-daemon, so nothing of the host's is touched.
	script := `set -e
mount -t tmpfs tmpfs /run/dbus 2>/dev/null || { mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus; }
mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon
dbus-daemon --system --fork --nopidfile
avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "$1" -D
for i in $(seq 1 100); do avahi-browse -rtp _edged._tcp >"$2" 2>&1 && grep -c '^=' "$2" | grep -q '^3$' && break; sleep 0.1; done
avahi-daemon -k || true
cat "$2"
`
	out := filepath.Join(dir, "browse.txt")
	_, err = l.AddNode(ctx, lab.NodeSpec{Name: "avahi", Argv: []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", conf, out}, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(ctx, "avahi"); err != nil {
		b, _ := os.ReadFile(mustNode(t, l, "avahi").Log)
		t.Fatalf("avahi: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// =;eth0;IPv4;node1;_edged._tcp;local;node1.local;192.0.2.11;7946;"site=lab" ...
		f := strings.Split(line, ";")
		if len(f) < 10 || f[0] != "=" {
			continue
		}
		got[f[3]] = f[7] + ":" + f[8] + " " + f[9]
	}
	for i, n := range site {
		want := "192.0.2.1" + string(rune('1'+i)) + ":7946"
		if !strings.HasPrefix(got[n], want+" ") || !strings.Contains(got[n], `"site=lab"`) {
			t.Errorf("avahi resolved %s as %q, want %s with site=lab\n%s", n, got[n], want, b)
		}
	}
}
