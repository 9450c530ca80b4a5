package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// TestSiteFormsAndHeals covers the life of a 5-node site with no seeds:
// discovery alone forms it, a kill -9 is seen as failed and the restarted
// node is alive again everywhere, a 2/3 partition re-merges after the heal
// without restarting anything, and a graceful stop is seen as left.
func TestSiteFormsAndHeals(t *testing.T) {
	l := newLab(t, 5, nil)
	all := names(l)

	t.Run("formation", func(t *testing.T) {
		waitAll(t, l, all, 15*time.Second, "all 5 alive", exactly(all...))
		out, stderr, code := edgectl(t, "--socket", mustNode(t, l, "node1").Socket, "status", "--json")
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, stderr)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json is not one JSON object: %v\n%s", err, out)
		}
		if st.Node.Name != "node1" || st.Node.Site != "lab" || st.Node.Addr != "192.0.2.11:7946" || len(st.Members) != 5 {
			t.Errorf("status: %+v", st)
		}
		for _, m := range st.Members {
			if m.Tags[api.TagRole] != api.RoleEdged || m.Tags[api.TagSite] != "lab" {
				t.Errorf("member %s tags %v", m.Name, m.Tags)
			}
		}
		table, _, code := edgectl(t, "--socket", mustNode(t, l, "node3").Socket, "members")
		if code != 0 || strings.Count(table, "alive") != 5 {
			t.Errorf("members table (exit %d):\n%s", code, table)
		}
	})

	t.Run("kill -9 and restart", func(t *testing.T) {
		if err := l.Kill("node4"); err != nil {
			t.Fatal(err)
		}
		rest := []string{"node1", "node2", "node3", "node5"}
		waitAll(t, l, rest, 15*time.Second, "node4 failed", status("node4", api.StatusFailed))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.Start(ctx, "node4"); err != nil {
			t.Fatal(err)
		}
		waitAll(t, l, all, 15*time.Second, "node4 alive again", exactly(all...))
	})

	t.Run("partition 2/3 and heal", func(t *testing.T) {
		a, b := []string{"node1", "node2"}, []string{"node3", "node4", "node5"}
		if err := l.Partition(a, b); err != nil {
			t.Fatal(err)
		}
		waitAll(t, l, a, 20*time.Second, "other side failed", func(v view) bool {
			return allAlive(a...)(v) && v["node3"].Status == api.StatusFailed && v["node4"].Status == api.StatusFailed && v["node5"].Status == api.StatusFailed
		})
		waitAll(t, l, b, 20*time.Second, "other side failed", func(v view) bool {
			return allAlive(b...)(v) && v["node1"].Status == api.StatusFailed && v["node2"].Status == api.StatusFailed
		})
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		waitAll(t, l, all, 20*time.Second, "one cluster of 5 again", exactly(all...))
	})

	t.Run("graceful stop is seen as left", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.Stop(ctx, "node5"); err != nil {
			t.Fatal(err)
		}
		waitAll(t, l, []string{"node1", "node2", "node3", "node4"}, 10*time.Second, "node5 left", status("node5", api.StatusLeft))
		if err := l.Start(ctx, "node5"); err != nil {
			t.Fatal(err)
		}
		waitAll(t, l, all, 15*time.Second, "node5 back", exactly(all...))
	})
}

func mustNode(t *testing.T, l *lab.Lab, name string) lab.Node {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutsidersStayOut: on the same LAN, a node with another gossip key and a
// node of another site never appear in the site's members, and the node with
// the wrong key says why in its log.
func TestOutsidersStayOut(t *testing.T) {
	l := newLab(t, 3, nil)
	site := names(l)
	waitAll(t, l, site, 15*time.Second, "3 alive", exactly(site...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	key, err := lab.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	badkey, err := l.AddNode(ctx, lab.NodeSpec{Name: "badkey", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.AddNode(ctx, lab.NodeSpec{Name: "othersite", Site: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	// The wrong-key node tries to join (it sees the site over mDNS) and says
	// why it cannot.
	waitLog(t, badkey.Log, 15*time.Second, "different gossip key")
	waitLog(t, mustNode(t, l, "node1").Log, 15*time.Second, "gossip rejected: the peer does not use this site's gossip key")
	// The other site's node sees this site over mDNS and leaves it alone.
	waitLog(t, other.Log, 15*time.Second, `reason="other site \"lab\""`)
	// Give the outsiders the time a join takes many times over, then check
	// every view: membership events would have been seen by now.
	waitView(t, l, "badkey", 3*time.Second, "alone", exactly("badkey"))
	for _, n := range site {
		st := waitStatus(t, l, n)
		for _, m := range st.Members {
			if m.Name == badkey.Name || m.Name == other.Name {
				t.Errorf("%s lists outsider %s (%s)", n, m.Name, m.Status)
			}
		}
	}
	st := waitStatus(t, l, "othersite")
	if len(st.Members) != 1 {
		t.Errorf("the other site's node joined someone: %+v", st.Members)
	}
}

func waitStatus(t *testing.T, l *lab.Lab, node string) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := clientOf(t, l, node).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDuplicateNameRefused: a newcomer that takes an existing node's name
// stops with a clear error; the site keeps the incumbent.
func TestDuplicateNameRefused(t *testing.T) {
	l := newLab(t, 3, nil)
	site := names(l)
	waitAll(t, l, site, 15*time.Second, "3 alive", exactly(site...))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "eldup")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(cfg, []byte("node: node2\nsite: lab\ninterface: eth0\nkey_file: "+l.KeyFile()+
		"\ndata_dir: "+dir+"/data\nsocket: "+dir+"/edged.sock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dup, err := l.AddNode(ctx, lab.NodeSpec{Name: "dup", Argv: []string{filepath.Join(bin, "edged"), "--config", cfg}, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Wait(ctx, "dup")
	b, _ := os.ReadFile(dup.Log)
	if err == nil || !strings.Contains(string(b), `"node2" is already used by the node at 192.0.2.12:7946`) {
		t.Fatalf("newcomer: exit %v; log:\n%s", err, tail(string(b), 20))
	}
	if !strings.Contains(err.Error(), "78") {
		t.Errorf("exit %v, want status 78 (config error, no restart loop)", err)
	}
	for _, n := range site {
		st := waitStatus(t, l, n)
		for _, m := range st.Members {
			if m.Name == "node2" && (m.Addr != "192.0.2.12:7946" || m.Status != api.StatusAlive) {
				t.Errorf("%s: incumbent node2 disturbed: %+v", n, m)
			}
		}
	}
}

// TestUnreachableDaemon: edgectl against a missing socket exits 1 with one
// line on stderr.
func TestUnreachableDaemon(t *testing.T) {
	if bin == "" {
		needRoot(t)
	}
	for _, cmd := range []string{"status", "members"} {
		out, stderr, code := edgectl(t, "--socket", "/nonexistent/edged.sock", cmd)
		if code != 1 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "/nonexistent/edged.sock") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, stderr)
		}
	}
}
