package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// cleanWait bounds how long a teardown waits for killed processes.
const cleanWait = 10 * time.Second

// Clean tears down the lab in dir, whether or not it is whole (for example
// after "edgelab up" crashed halfway). It kills the recorded processes and
// every process inside a namespace named "PREFIX-...", deletes those
// namespaces, and removes the files a lab makes in dir, then dir itself if
// that leaves it empty. PREFIX is the one in dir's state file; prefix is used
// only when that file is missing or unreadable, so cleaning one lab never
// sweeps another lab that uses the default prefix. Nothing to clean is not an
// error. log may be nil.
func Clean(dir, prefix string, log *slog.Logger) error {
	if err := checkRoot(); err != nil {
		return err
	}
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("lab: clean: prefix %q: want 1-15 letters, digits or '_'", prefix)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("lab: dir: %w", err)
	}
	return clean(dir, prefix, log)
}

func clean(dir, prefix string, log *slog.Logger) error {
	var errs []error
	if _, err := os.Stat(dir); err == nil {
		if unlock, err := lockDir(dir); err == nil {
			defer unlock() // the lock file is removed below, while held
		}
	}
	st, err := loadState(dir)
	hasState := err == nil
	if err != nil && !errors.Is(err, ErrNoLab) {
		log.Warn("unreadable state, sweeping by prefix only", "err", err)
	}
	prefixes := []string{prefix}
	if hasState && prefixRE.MatchString(st.Prefix) {
		prefixes = []string{st.Prefix}
	}

	// Processes: the recorded ones (with their groups), then anything inside
	// our namespaces, until none is left (a process may fork meanwhile).
	type proc struct {
		pid   int
		start uint64
	}
	var killed []proc
	for _, n := range st.Nodes {
		if alive(n.Pid, n.StartTime) {
			_ = signalProc(n.Pid, n.StartTime, syscall.SIGKILL, true)
			killed = append(killed, proc{n.Pid, n.StartTime})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanWait)
	defer cancel()
	for _, p := range killed {
		if err := waitGone(ctx, p.pid, p.start); err != nil {
			errs = append(errs, err)
		}
	}
	var names []string
	for _, p := range prefixes {
		ns, err := listNetns(p)
		if err != nil {
			errs = append(errs, err)
		}
		names = append(names, ns...)
	}
	for round := 0; round < 10; round++ {
		pids, err := netnsPids(names)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			start, ok := procStart(pid)
			if !ok {
				continue
			}
			_ = signalProc(pid, start, syscall.SIGKILL, false)
			killed = append(killed, proc{pid, start})
		}
		log.Debug("killed stragglers", "pids", pids)
		// Wait before the next sweep, so a dying process isn't seen again.
		for _, p := range killed {
			if err := waitGone(ctx, p.pid, p.start); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Namespaces: nodes first, the bridge last (deleting a node namespace
	// deletes its veth pair).
	slices.SortFunc(names, func(a, b string) int {
		return bool2int(strings.HasSuffix(a, "-br")) - bool2int(strings.HasSuffix(b, "-br"))
	})
	if err := deleteNetns(ctx, names); err != nil {
		errs = append(errs, err)
	}
	for _, p := range prefixes {
		if left, _ := listNetns(p); len(left) > 0 {
			errs = append(errs, fmt.Errorf("lab: namespaces left behind: %s", strings.Join(left, " ")))
		}
	}

	// Files: only what a lab makes, then dir if it is empty.
	if _, err := os.Stat(dir); err == nil {
		nodeDirs := map[string]bool{}
		for _, n := range st.Nodes {
			nodeDirs[n.Name] = true
		}
		for _, name := range names { // nodes whose state entry was lost
			for _, p := range prefixes {
				if node, ok := strings.CutPrefix(name, p+"-"); ok && node != "br" {
					nodeDirs[node] = true
				}
			}
		}
		for node := range nodeDirs {
			if validNodeName(node) == nil {
				errs = append(errs, os.RemoveAll(filepath.Join(dir, node)))
			}
		}
		// The site CA the lab made (a lab without a state file made it
		// under the same name).
		errs = append(errs, os.RemoveAll(filepath.Join(dir, tlsDirName)))
		tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*"))
		for _, f := range append(tmps, filepath.Join(dir, keyFile), filepath.Join(dir, stateFile), filepath.Join(dir, lockFile)) {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if err := os.Remove(dir); err != nil {
			ents, _ := os.ReadDir(dir)
			var left []string
			for _, e := range ents {
				left = append(left, e.Name())
			}
			log.Warn("left the lab directory: it holds files the lab did not make", "dir", dir, "files", left)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab: down: %w", err)
	}
	log.Debug("cleaned", "dir", dir, "prefixes", prefixes, "namespaces", len(names), "killed", len(killed))
	return nil
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}
