package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a crashing "edgelab up": see
// helperMain.
const helperEnv = "EDGELAB_TEST_HELPER"

// helperMain runs Up for the lab described by the environment with nodes
// that never get ready, so that the parent can kill it mid-way.
func helperMain() int {
	cfg := DefaultConfig()
	cfg.Nodes = 3
	cfg.Dir = os.Getenv("EDGELAB_TEST_DIR")
	cfg.Prefix = os.Getenv("EDGELAB_TEST_PREFIX")
	cfg.Edged = os.Getenv("EDGELAB_TEST_EDGED")
	cfg.Extra = []string{"fake_no_ready: true"}
	cfg.ReadyTimeout = time.Hour
	_, err := Up(context.Background(), cfg)
	fmt.Fprintln(os.Stderr, "helper: Up returned:", err)
	return 1
}

func TestDownAfterCrashedUp(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 3)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=up",
		"EDGELAB_TEST_DIR="+cfg.Dir, "EDGELAB_TEST_PREFIX="+cfg.Prefix, "EDGELAB_TEST_EDGED="+cfg.Edged)
	helper.Stderr = t.Output()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Clean(cfg.Dir, cfg.Prefix, nil) })

	// Wait until every node process is recorded and running, then crash "up".
	var pids []int
	waitFor(t, 20*time.Second, func() bool {
		st, err := loadState(cfg.Dir)
		if err != nil || len(st.Nodes) != 3 {
			return false
		}
		pids = pids[:0]
		for _, n := range st.Nodes {
			if !alive(n.Pid, n.StartTime) {
				return false
			}
			pids = append(pids, n.Pid)
		}
		return true
	})
	helper.Process.Kill()
	helper.Wait()
	if names, _ := listNetns(cfg.Prefix); len(names) != 4 {
		t.Fatalf("after the crash: namespaces %v, want 4", names)
	}
	for _, pid := range pids {
		if !alive(pid, 0) {
			t.Fatalf("node pid %d died with up; want it orphaned", pid)
		}
	}

	l, err := Open(cfg.Dir, cfg.Logger)
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("Down after crash: %v", err)
	}
	assertGone(t, cfg.Dir, cfg.Prefix, pids)
}

func TestCleanStragglers(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	ctx := context.Background()
	// What a crash before the first state write, or a lost state file, leaves:
	// namespaces with our prefix, a process in one, a node directory.
	var pids []int
	for _, ns := range []string{cfg.Prefix + "-br", cfg.Prefix + "-ghost"} {
		if err := ip(ctx, "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait()
		pids = append(pids, cmd.Process.Pid)
	}
	t.Cleanup(func() { Clean(cfg.Dir, cfg.Prefix, nil) })
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "ghost", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool {
		got, _ := netnsPids([]string{cfg.Prefix + "-ghost"})
		return len(got) == 1
	})

	// Up refuses to build over leftovers.
	if _, err := Up(ctx, cfg); err == nil || !strings.Contains(err.Error(), "already exist") {
		t.Errorf("Up over leftovers: %v, want 'already exist'", err)
	}
	if err := Clean(cfg.Dir, cfg.Prefix, cfg.Logger); err != nil {
		t.Fatalf("Clean: %v", err)
	}
	assertGone(t, cfg.Dir, cfg.Prefix, pids)
	if err := Clean(cfg.Dir, cfg.Prefix, nil); err != nil {
		t.Errorf("Clean again: %v", err)
	}

	// A directory that holds foreign files is left, with the lab's files gone.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "mine.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(other, stateFile), []byte("{garbage"), 0o644)
	if err := Clean(other, cfg.Prefix, nil); err != nil {
		t.Errorf("Clean of a dir with a corrupt state file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "mine.txt")); err != nil {
		t.Errorf("Clean removed a foreign file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, stateFile)); !os.IsNotExist(err) {
		t.Errorf("Clean left the state file: %v", err)
	}
	if err := Clean(other, "bad-prefix", nil); err == nil {
		t.Errorf("Clean with a bad prefix succeeded")
	}
}

func TestCleanSparesOtherLabs(t *testing.T) {
	t.Parallel()
	a := upLab(t, testConfig(t, 1))
	bcfg := testConfig(t, 1)
	b := upLab(t, bcfg)
	aPid := a.Nodes()[0].Pid
	// Both labs use the same subnet on their own bridges.
	if got := probe(t, b, "node1", netip.MustParseAddrPort("224.0.0.251:5353"), "node1"); !slices.Equal(got, []string{"node1"}) {
		t.Errorf("lab b's multicast answered by %v, want only its own node1", got)
	}
	// The state file's prefix wins over the one given.
	if err := Clean(a.Dir(), bcfg.Prefix, nil); err != nil {
		t.Fatal(err)
	}
	assertGone(t, a.Dir(), a.Prefix(), []int{aPid})
	if n := b.Nodes(); len(n) != 1 || !n[0].Running {
		t.Errorf("lab b after cleaning lab a: %+v", n)
	}
	if got := probe(t, b, "node1", netip.AddrPortFrom(b.Nodes()[0].Addr, 7946), "node1"); len(got) != 1 {
		t.Errorf("lab b's node1 does not answer after cleaning lab a")
	}
}
