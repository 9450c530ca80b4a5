package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// notifier is a node's NOTIFY_SOCKET: a unixgram socket that receives
// sd_notify datagrams ("READY=1\nSTATUS=...").
type notifier struct {
	conn  *net.UnixConn
	ready chan struct{} // closed on the first READY=1
	done  chan struct{} // closed when the read loop ends

	mu       sync.Mutex
	status   string
	stopping bool
}

// listenNotify binds path (replacing a stale socket) and reads datagrams
// until close.
func listenNotify(path string, log *slog.Logger) (*notifier, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab: notify socket: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("lab: notify socket: %w", err)
	}
	n := &notifier{conn: conn, ready: make(chan struct{}), done: make(chan struct{})}
	go n.loop(log)
	return n, nil
}

func (n *notifier) loop(log *slog.Logger) {
	defer close(n.done)
	buf := make([]byte, 4096)
	var readyOnce sync.Once
	for {
		k, _, err := n.conn.ReadFromUnix(buf)
		if err != nil {
			return // closed
		}
		for _, line := range strings.Split(string(buf[:k]), "\n") {
			key, val, _ := strings.Cut(line, "=")
			switch key {
			case "READY":
				if val == "1" {
					readyOnce.Do(func() { close(n.ready) })
				}
			case "STOPPING":
				n.mu.Lock()
				n.stopping = val == "1"
				n.mu.Unlock()
			case "STATUS":
				n.mu.Lock()
				n.status = val
				n.mu.Unlock()
			}
		}
		log.Debug("sd_notify", "message", oneLine(string(buf[:k])))
	}
}

func (n *notifier) close() {
	n.conn.Close()
	<-n.done
}

// child is a node process started by this Lab value: it is our child, so
// we reap it and know how it ended.
type child struct {
	pid    int
	start  uint64
	notify *notifier
	done   chan struct{} // closed once reaped
	err    error         // how it ended; set before done is closed
}

// logTail returns the last lines of a log file on one line, for errors.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 1024
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	if len(b) == max {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return oneLine(strings.Join(lines, "\n"))
}

// Children lists pid's child processes (/proc/PID/task/*/children): a
// node's command as the lab started it may have forked (unshare, a
// wrapper) before the process a test wants.
func Children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
