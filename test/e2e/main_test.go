package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/daemon/client"
	"edge/test/lab"
)

// bin is the folder holding edged and edgectl: $EDGE_BIN (make test sets it
// to bin/) or a fresh build made by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	bin = os.Getenv("EDGE_BIN")
	if bin == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "edge-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "build", "-o", dir+"/", "edge/cmd/edged", "edge/cmd/edgectl").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
			return 1
		}
		bin = dir
	}
	return m.Run()
}

// needRoot skips outside CI when not root, and fails in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("end-to-end tests need root and Linux network namespaces; CI must run them")
		}
		t.Skip("needs root and network namespaces")
	}
}

var labSeq atomic.Int32

// newLab brings up n edged nodes on one bridge, with no seeds.
func newLab(t *testing.T, n int, mod func(*lab.Config)) *lab.Lab {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("", "el")
	if err != nil {
		t.Fatal(err)
	}
	cfg := lab.DefaultConfig()
	cfg.Nodes = n
	cfg.Dir = dir
	cfg.Prefix = fmt.Sprintf("e2e%d_%d", os.Getpid()%100000, labSeq.Add(1))
	cfg.Edged = filepath.Join(bin, "edged")
	cfg.LogLevel = "debug"
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range l.Nodes() {
				if b, err := os.ReadFile(n.Log); err == nil {
					t.Logf("--- log of %s (last 40 lines):\n%s", n.Name, tail(string(b), 40))
				}
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		os.RemoveAll(dir)
	})
	return l
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func clientOf(t *testing.T, l *lab.Lab, node string) *client.Client {
	t.Helper()
	n, err := l.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	return &client.Client{Socket: n.Socket}
}

// view is one node's members, by name.
type view map[string]api.Member

func (v view) statuses() string {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%s ", n, v[n].Status)
	}
	return b.String()
}

// waitView waits, with blocking queries on the node's API (an event, not a
// poll), until cond holds for that node's view of the site.
func waitView(t *testing.T, l *lab.Lab, node string, timeout time.Duration, what string, cond func(view) bool) {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var index uint64
	var last view
	for {
		// Suspect changes raise no event: cap each wait so they are seen.
		m, err := c.WaitMembers(ctx, index, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: %s: not reached within %s; last view: %s", node, what, timeout, last.statuses())
			}
			t.Fatalf("%s: %v", node, err)
		}
		last = view{}
		for _, mem := range m.Members {
			last[mem.Name] = mem
		}
		if cond(last) {
			return
		}
		index = m.Index
	}
}

// waitAll runs waitView on every listed node.
func waitAll(t *testing.T, l *lab.Lab, nodes []string, timeout time.Duration, what string, cond func(view) bool) {
	t.Helper()
	for _, n := range nodes {
		waitView(t, l, n, timeout, what, cond)
	}
}

func allAlive(names ...string) func(view) bool {
	return func(v view) bool {
		for _, n := range names {
			if v[n].Status != api.StatusAlive {
				return false
			}
		}
		return true
	}
}

func exactly(names ...string) func(view) bool {
	return func(v view) bool { return len(v) == len(names) && allAlive(names...)(v) }
}

func status(name, want string) func(view) bool {
	return func(v view) bool { return v[name].Status == want }
}

func names(l *lab.Lab) []string {
	var out []string
	for _, n := range l.Nodes() {
		out = append(out, n.Name)
	}
	return out
}

// edgectl runs the CLI and returns stdout, stderr and the exit code.
func edgectl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "edgectl"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func waitLog(t *testing.T, path string, timeout time.Duration, substr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), substr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %s; log:\n%s", path, substr, timeout, tail(string(b), 30))
		}
		time.Sleep(50 * time.Millisecond) // a log file has no change event to wait on
	}
}
