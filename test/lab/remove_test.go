package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node removed for good leaves nothing behind, and a node of the same
// name comes back at the address index it is given, with a fresh folder.
func TestRemoveNodeAndReplace(t *testing.T) {
	cfg := testConfig(t, 2)
	l := upLab(t, cfg)
	old, err := l.Node("node2")
	if err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(old.Dir, "data", "mark")
	if err := os.WriteFile(mark, []byte("old box"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveNode("node2"); err != nil {
		t.Fatalf("RemoveNode: %v", err)
	}
	if alive(old.Pid, 0) {
		t.Errorf("pid %d still running", old.Pid)
	}
	if names, err := listNetns(old.Namespace); err != nil || len(names) > 0 {
		t.Errorf("namespace left: %v (err %v)", names, err)
	}
	if _, err := os.Stat(old.Dir); !os.IsNotExist(err) {
		t.Errorf("folder %s still there: %v", old.Dir, err)
	}
	if _, err := l.Node("node2"); err == nil {
		t.Error("node2 still listed")
	}
	if err := l.RemoveNode("node2"); err == nil || !strings.Contains(err.Error(), "unknown node") {
		t.Errorf("removing it twice: %v", err)
	}

	ctx := context.Background()
	if _, err := l.AddNode(ctx, NodeSpec{Name: "node3", Index: 1}); err == nil || !strings.Contains(err.Error(), "index 1 is taken by node node1") {
		t.Errorf("a taken index: %v", err)
	}
	n, err := l.AddNode(ctx, NodeSpec{Name: "node2", Index: 5})
	if err != nil {
		t.Fatalf("AddNode again: %v", err)
	}
	if n.Addr != cfg.NodeAddr(5) || n.Addr == old.Addr || !n.Running {
		t.Errorf("replacement at %s (running %v), want %s", n.Addr, n.Running, cfg.NodeAddr(5))
	}
	if _, err := os.Stat(mark); !os.IsNotExist(err) {
		t.Errorf("the replacement has the old box's data: %v", err)
	}
	if next, err := l.AddNode(ctx, NodeSpec{Name: "node6"}); err != nil || next.Addr != cfg.NodeAddr(6) {
		t.Errorf("next default address: %v %v, want %s", next.Addr, err, cfg.NodeAddr(6))
	}
}
