package lab

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copyExe copies the fake daemon to dir/name: a second "release".
func copyExe(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(fakeEdged)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// exeOf is the binary the node's process runs.
func exeOf(t *testing.T, l *Lab, name string) string {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Running {
		t.Fatalf("%s is not running", name)
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(n.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestSetEdged(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	bins := t.TempDir()
	cfg.Edged = copyExe(t, bins, "edged-old")
	next := copyExe(t, bins, "edged-new")
	l := upLab(t, cfg)
	ctx := context.Background()

	if got := exeOf(t, l, "node1"); got != cfg.Edged {
		t.Fatalf("node1 runs %s, want %s", got, cfg.Edged)
	}
	conf1, _ := os.ReadFile(mustNodeT(t, l, "node1").Config)
	if err := l.SetEdged("node1", next); err != nil {
		t.Fatalf("SetEdged: %v", err)
	}
	// A running node keeps its process until it stops.
	if got := exeOf(t, l, "node1"); got != cfg.Edged {
		t.Errorf("node1 swapped while running: %s", got)
	}
	if n := mustNodeT(t, l, "node1"); n.Edged() != next {
		t.Errorf("node1 will run %q, want %s", n.Edged(), next)
	}
	if err := l.Stop(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, "node1"); err != nil {
		t.Fatalf("Start with the new binary: %v", err)
	}
	if got := exeOf(t, l, "node1"); got != next {
		t.Errorf("node1 runs %s after the swap, want %s", got, next)
	}
	if got := exeOf(t, l, "node2"); got != cfg.Edged {
		t.Errorf("node2 runs %s, want it untouched: %s", got, cfg.Edged)
	}
	if conf2, _ := os.ReadFile(mustNodeT(t, l, "node1").Config); string(conf2) != string(conf1) {
		t.Errorf("the swap rewrote node1's config:\n%s\nwas:\n%s", conf2, conf1)
	}
	// Through another Lab value (the CLI): the state file holds the swap.
	o, err := Open(cfg.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := o.Node("node1"); n.Edged() != next {
		t.Errorf("reopened lab: node1 runs %q", n.Edged())
	}
	// And back (a downgrade).
	if err := l.SetEdged("node1", cfg.Edged); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if got := exeOf(t, l, "node1"); got != cfg.Edged {
		t.Errorf("node1 runs %s after swapping back", got)
	}

	// A node added with its own binary, and the refusals.
	x, err := l.AddNode(ctx, NodeSpec{Name: "node3", Edged: next})
	if err != nil {
		t.Fatalf("AddNode with Edged: %v", err)
	}
	if got := exeOf(t, l, "node3"); got != next || x.Edged() != next {
		t.Errorf("node3 runs %s (Edged %q), want %s", got, x.Edged(), next)
	}
	if _, err := l.AddNode(ctx, NodeSpec{Name: "node4", Edged: next, Argv: []string{"sleep", "1"}}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("AddNode with Edged and Argv: %v", err)
	}
	if _, err := l.AddNode(ctx, NodeSpec{Name: "node4", Argv: []string{"sleep", "60"}, NoWait: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetEdged("node4", next); err == nil || !strings.Contains(err.Error(), "no binary to swap") {
		t.Errorf("SetEdged of a node with its own command: %v", err)
	}
	if err := l.SetEdged("node1", filepath.Join(bins, "missing")); err == nil {
		t.Errorf("SetEdged to a missing file: no error")
	}
	if err := l.SetEdged("nodeX", next); err == nil || !strings.Contains(err.Error(), `unknown node "nodeX"`) {
		t.Errorf("SetEdged of an unknown node: %v", err)
	}
}

func mustNodeT(t *testing.T, l *Lab, name string) Node {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
