package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen opens a unixgram socket, points NOTIFY_SOCKET at it and clears the
// watchdog variables. name "" means a path in t.TempDir(); a name starting
// with "@" is an abstract socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	if name == "" {
		name = filepath.Join(t.TempDir(), "notify.sock")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	return conn
}

// recv returns the next datagram, failing the test after timeout.
func recv(t *testing.T, conn *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	msg, err := tryRecv(conn, timeout)
	if err != nil {
		t.Fatalf("receive notification: %v", err)
	}
	return msg
}

func tryRecv(conn *net.UnixConn, timeout time.Duration) (string, error) {
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func TestNotifierMessages(t *testing.T) {
	tests := []struct {
		name string
		call func(*Notifier) error
		want string // exact datagram
	}{
		{"ready", (*Notifier).Ready, "READY=1"},
		{"stopping", (*Notifier).Stopping, "STOPPING=1"},
		{"status", func(n *Notifier) error { return n.Status("joined site lab, 5 members") }, "STATUS=joined site lab, 5 members"},
		{"status empty", func(n *Notifier) error { return n.Status("") }, "STATUS="},
		{"status newlines", func(n *Notifier) error { return n.Status("a\nb\r\nc\rd") }, "STATUS=a b c d"},
	}
	for _, tt := range tests {
		for _, sock := range []struct{ kind, name string }{
			{"path", ""},
			{"abstract", fmt.Sprintf("@edge-systemd-test-%d-%s", os.Getpid(), tt.name)},
		} {
			t.Run(tt.name+"/"+sock.kind, func(t *testing.T) {
				conn := listen(t, sock.name)
				n := NewNotifier()
				if !n.Enabled() {
					t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
				}
				if err := tt.call(n); err != nil {
					t.Fatalf("call: %v", err)
				}
				if got := recv(t, conn, 5*time.Second); got != tt.want {
					t.Errorf("datagram = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestNotifierReloading(t *testing.T) {
	conn := listen(t, "")
	n := NewNotifier()
	before, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reloading(); err != nil {
		t.Fatalf("Reloading: %v", err)
	}
	after, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	got := recv(t, conn, 5*time.Second)
	m := regexp.MustCompile(`\ARELOADING=1\nMONOTONIC_USEC=([1-9][0-9]*)\z`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("datagram = %q, want RELOADING=1\\nMONOTONIC_USEC=<usec>", got)
	}
	usec, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC = %d, want within [%d, %d]", usec, before, after)
	}
}

// TestNotifierDisabled checks that without NOTIFY_SOCKET every method is a
// no-op, for a NewNotifier, a zero value and a nil pointer alike.
func TestNotifierDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000")
	t.Setenv("WATCHDOG_PID", "")
	tests := []struct {
		name string
		n    *Notifier
	}{
		{"NewNotifier", NewNotifier()},
		{"zero", &Notifier{}},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			if n.Enabled() {
				t.Error("Enabled() = true")
			}
			if d := n.WatchdogInterval(); d != 0 {
				t.Errorf("WatchdogInterval() = %v, want 0", d)
			}
			for name, err := range map[string]error{
				"Ready": n.Ready(), "Stopping": n.Stopping(), "Reloading": n.Reloading(), "Status": n.Status("x"),
			} {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- n.Run(t.Context()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return at once")
			}
		})
	}
}

func TestNotifierSendError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens.sock"))
	n := NewNotifier()
	err := n.Ready()
	if err == nil {
		t.Fatal("Ready to a missing socket: want error")
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not wrap the *net.OpError", err)
	}
}

func TestWatchdogEnv(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		usec    string
		pid     string
		want    time.Duration
		wantErr bool
	}{
		{"off", "", "", 0, false},
		{"on", "30000000", "", 30 * time.Second, false},
		{"on for this pid", "30000000", self, 30 * time.Second, false},
		{"for another pid", "30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"not a number", "30s", "", 0, true},
		{"zero", "0", "", 0, true},
		{"negative", "-5", "", 0, true},
		{"bad pid", "30000000", "me", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen(t, "")
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			n := NewNotifier()
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("WatchdogInterval() = %v, want %v", got, tt.want)
			}
			// Run returns at once in every case here: either the watchdog
			// is off, or the environment is malformed. A cancelled context
			// keeps an enabled watchdog from blocking the test.
			ctx, cancel := context.WithCancel(t.Context())
			if tt.want > 0 {
				cancel()
			}
			defer cancel()
			err := n.Run(ctx)
			if (err != nil) != tt.wantErr {
				t.Errorf("Run() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestRunPings(t *testing.T) {
	conn := listen(t, "")
	t.Setenv("WATCHDOG_USEC", "40000") // 40 ms: a ping every 20 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := NewNotifier()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	for i := range 3 {
		if got := recv(t, conn, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("ping %d = %q, want %q", i, got, "WATCHDOG=1")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunSkipsPingWhileUnhealthy(t *testing.T) {
	conn := listen(t, "")
	t.Setenv("WATCHDOG_USEC", "20000") // a ping every 10 ms
	var healthy atomic.Bool
	var checks atomic.Int64
	n := NewNotifier()
	n.Healthy = func() bool { checks.Add(1); return healthy.Load() }
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	// Unhealthy: Healthy is asked at every tick, and nothing is sent.
	if msg, err := tryRecv(conn, 200*time.Millisecond); err == nil {
		t.Fatalf("got %q while unhealthy, want no ping", msg)
	}
	if c := checks.Load(); c < 2 {
		t.Errorf("Healthy called %d times in 200ms, want at least 2", c)
	}

	healthy.Store(true)
	if got := recv(t, conn, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("ping = %q, want %q", got, "WATCHDOG=1")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
