package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// cmdError is a failed command with its stderr on one line.
type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	if e.stderr == "" {
		return e.err.Error()
	}
	return e.err.Error() + ": " + e.stderr
}

func (e *cmdError) Unwrap() error { return e.err }

// run runs a command with stdin and returns its stdout; a failure carries the
// command's stderr.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{err: err, stderr: oneLine(stderr.String())}
	}
	return stdout.String(), nil
}

// ip runs the ip command.
func ip(ctx context.Context, args ...string) error {
	_, err := run(ctx, "", "ip", args...)
	return err
}

// ipBatch runs ip commands, one a line, in namespace ns ("" for the current one).
func ipBatch(ctx context.Context, ns string, lines ...string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	return err
}

// oneLine squeezes command output or a log tail into one line.
func oneLine(s string) string {
	fields := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, " | ")
}

// inNetns runs fn on an OS thread that is inside network namespace ns, and
// returns that thread to the original namespace afterwards. Sockets fn makes
// stay in ns for their whole life.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: netns %s: %w", ns, err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: netns %s: %w", ns, err)
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: netns %s: setns: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and dies with this goroutine
		errc <- err
	}()
	return <-errc
}

// sysctls writes /proc/sys entries (path relative to /proc/sys) in netns ns.
func sysctls(ns string, kv ...string) error {
	return inNetns(ns, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := os.WriteFile(filepath.Join("/proc/sys", kv[i]), []byte(kv[i+1]), 0o644); err != nil {
				return fmt.Errorf("lab: netns %s: sysctl: %w", ns, err)
			}
		}
		return nil
	})
}

// listNetns returns the named namespaces starting with prefix+"-".
func listNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: list namespaces: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// netnsPids returns the pids of the processes in the named namespaces, like
// "ip netns pids NS" for each of them in one pass over /proc.
func netnsPids(names []string) ([]int, error) {
	type key struct{ dev, ino uint64 }
	want := make(map[key]bool)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(netnsDir, n), &st); err != nil {
			continue // deleted meanwhile, or a stale file
		}
		want[key{st.Dev, st.Ino}] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("lab: list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+e.Name()+"/ns/net", &st); err != nil {
			continue // gone, or a zombie
		}
		if want[key{st.Dev, st.Ino}] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procStart returns field 22 (starttime) of /proc/PID/stat and whether the
// process is alive (not gone, not a zombie).
func procStart(pid int) (start uint64, alive bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return start, f[0] != "Z" && f[0] != "X"
}

// alive reports whether pid is running and is the process that started at
// start (0 skips that check).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, ok := procStart(pid)
	return ok && (start == 0 || s == start)
}

// waitGone waits until pid has exited (a zombie counts as exited) or ctx ends.
// It works for processes that are not our children, through a pidfd.
func waitGone(ctx context.Context, pid int, start uint64) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return pollGone(ctx, pid, start) // old kernel
	}
	defer unix.Close(fd)
	if !alive(pid, start) { // the pidfd may name a newer process with a reused pid
		return nil
	}
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("lab: wait for pid %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab: wait for pid %d: %w", pid, err)
		}
	}
}

func pollGone(ctx context.Context, pid int, start uint64) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for alive(pid, start) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: wait for pid %d: %w", pid, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// signalProc sends sig to pid if it is still the process that started at
// start. With group set it signals the process group first (the process is a
// session leader, so its group holds its children).
func signalProc(pid int, start uint64, sig syscall.Signal, group bool) error {
	if !alive(pid, start) {
		return nil
	}
	if group {
		if err := unix.Kill(-pid, sig); err == nil {
			return nil
		}
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("lab: signal pid %d: %w", pid, err)
	}
	return nil
}
