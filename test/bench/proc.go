package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"edge/test/lab"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture edged ships for (x86, arm, arm64).
const clockTicks = 100

// procRoot is where /proc is mounted.
const procRoot = "/proc"

// procSample is one reading of a process's resources.
type procSample struct {
	RSSKiB int64     // VmRSS
	Ticks  uint64    // utime + stime, in clock ticks
	At     time.Time // when it was read
}

// parseVmRSS returns VmRSS in KiB from the text of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS: unexpected %q", line)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return v, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}

// parseCPUTicks returns utime + stime (fields 14 and 15) from the text of
// /proc/PID/stat. The command name (field 2) is in parentheses and may hold
// spaces and parentheses, so fields are counted after the last ')'.
func parseCPUTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime: %w", err)
	}
	return u + s, nil
}

// readProc reads one sample of pid.
func readProc(pid int) (procSample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return procSample{}, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procSample{}, err
	}
	at := time.Now()
	rss, err := parseVmRSS(status)
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	ticks, err := parseCPUTicks(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return procSample{RSSKiB: rss, Ticks: ticks, At: at}, nil
}

// cpuPercent is the CPU used between two samples, in percent of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 || b.Ticks < a.Ticks {
		return 0
	}
	return float64(b.Ticks-a.Ticks) / clockTicks / wall * 100
}

// findProc returns the process running the executable named exe: pid itself
// when it already exec'd it (lab pids are "ip netns exec" wrappers that exec
// the command), else the first such descendant.
func findProc(pid int, exe string) (int, error) {
	queue := []int{pid}
	for seen := 0; len(queue) > 0 && seen < 64; seen++ {
		p := queue[0]
		queue = queue[1:]
		if target, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(p), "exe")); err == nil && filepath.Base(target) == exe {
			return p, nil
		}
		queue = append(queue, lab.Children(p)...)
	}
	got, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	if err != nil {
		got = err.Error()
	}
	return 0, fmt.Errorf("pid %d: no process running %s in its tree (pid %d: %s)", pid, exe, pid, got)
}
