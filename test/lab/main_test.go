package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fakeEdged is the path of the stand-in daemon built by TestMain (empty when
// not root: every test that needs it skips or fails first).
var fakeEdged string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab test setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "fakeedged")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		fakeEdged = filepath.Join(dir, "fakeedged")
		cmd := exec.Command("go", "build", "-o", fakeEdged, "./testdata/fakeedged/main.go")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build fakeedged: %w: %s", err, out)
		}
	}
	return m.Run(), nil
}

// requireRoot skips the test when not root, except in CI (env CI set), where
// a namespace test that cannot run is a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root and network namespaces; CI must run it as root")
		}
		t.Skip("needs root and network namespaces")
	}
}

// requireTool skips (outside CI) or fails (in CI) when a command is missing.
func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: install Debian package %s", name, pkg)
		}
		t.Skipf("%s not found (Debian package %s)", name, pkg)
	}
}

// uniquePrefix returns a short prefix no other test or lab uses.
func uniquePrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "lt" + hex.EncodeToString(b)
}

// testConfig returns a config for an n-node lab with the fake daemon, in a
// temporary directory, with a unique prefix.
func testConfig(t *testing.T, n int) Config {
	t.Helper()
	requireRoot(t)
	requireTool(t, "ip", "iproute2")
	cfg := DefaultConfig()
	cfg.Nodes = n
	cfg.Dir = filepath.Join(t.TempDir(), "lab") // Up makes it, Down removes it
	cfg.Prefix = uniquePrefix(t)
	cfg.Edged = fakeEdged
	cfg.LogLevel = "debug"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// upLab brings a lab up and tears it down when the test ends.
func upLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	l, err := Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

// assertGone checks that nothing of a lab is left: namespaces, processes,
// directory.
func assertGone(t *testing.T, dir, prefix string, pids []int) {
	t.Helper()
	if names, err := listNetns(prefix); err != nil || len(names) > 0 {
		t.Errorf("namespaces left: %v (err %v)", names, err)
	}
	for _, pid := range pids {
		if alive(pid, 0) {
			t.Errorf("pid %d still running", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(dir)
		t.Errorf("dir %s still there (stat: %v), holding %d entries", dir, err, len(ents))
	}
}
