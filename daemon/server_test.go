package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
)

// guard bounds how long a test waits for something that should happen at
// once; it is a failure deadline, never a way to synchronise.
const guard = 10 * time.Second

// waitCall is one call of fakeAPIState.Wait that blocked.
type waitCall struct {
	index   uint64
	timeout time.Duration // until the context's deadline; 0 for none
}

// fakeAPIState is the state the API reads. Wait reports every call that
// blocks on waiting (so a test knows the request is in flight) and on
// woke once it returns; bump moves the index and wakes the waiters.
type fakeAPIState struct {
	mu      sync.Mutex
	node    api.Node
	members []api.Member
	index   uint64
	changed chan struct{} // closed and replaced by bump

	waiting chan waitCall
	woke    chan uint64
}

var _ state = (*fakeAPIState)(nil)

func newFakeAPIState(index uint64) *fakeAPIState {
	return &fakeAPIState{
		node:    api.Node{Name: "edge-01", Site: "plant-7", Version: "test", Addr: "10.0.0.11:7946"},
		members: []api.Member{{Name: "edge-01", Addr: "10.0.0.11:7946", Status: api.StatusAlive, Tags: map[string]string{api.TagRole: api.RoleEdged}}},
		index:   index,
		changed: make(chan struct{}),
		waiting: make(chan waitCall, 16),
		woke:    make(chan uint64, 16),
	}
}

func (f *fakeAPIState) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.Status{Node: f.node, Members: append([]api.Member(nil), f.members...), Index: f.index}
}

func (f *fakeAPIState) Devices() []api.Device {
	return []api.Device{{Name: "radio0", Driver: "sim", State: api.DeviceOK, InSync: true}}
}

func (f *fakeAPIState) DevicesIndex() uint64 { return 1 }

func (f *fakeAPIState) WaitDevices(ctx context.Context, index uint64) uint64 { return 1 }

func (f *fakeAPIState) Members() ([]api.Member, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Member(nil), f.members...), f.index
}

func (f *fakeAPIState) Wait(ctx context.Context, index uint64) uint64 {
	f.mu.Lock()
	cur, ch := f.index, f.changed
	f.mu.Unlock()
	if cur != index {
		return cur
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f.waiting <- waitCall{index: index, timeout: timeout}
	select {
	case <-ch:
	case <-ctx.Done():
	}
	f.mu.Lock()
	cur = f.index
	f.mu.Unlock()
	f.woke <- cur
	return cur
}

// bump adds a member, moves the index and wakes every waiter.
func (f *fakeAPIState) bump(m api.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = append(f.members, m)
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// shortSocketPath is a socket path in a fresh folder short enough for
// sun_path (108 bytes), which t.TempDir() with a long test name is not.
func shortSocketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "edg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "edged.sock")
}

// unixHTTPClient talks HTTP over the unix socket at path.
func unixHTTPClient(t *testing.T, path string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// startAPIServer serves st on path until the test ends, then closes the
// server and checks that serve returned nil and the socket is gone.
func startAPIServer(t *testing.T, st state, path string) *server {
	t.Helper()
	s := newServer(st, slog.New(slog.DiscardHandler))
	if err := s.listen(path); err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket %s left behind after close (stat: %v)", path, err)
		}
	})
	return s
}

// get fetches url from the API; it may run on any goroutine.
func get(ctx context.Context, t *testing.T, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edged"+url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", url, ct)
	}
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func TestServerListen(t *testing.T) {
	t.Run("socket mode 0660, folder created", func(t *testing.T) {
		path := filepath.Join(filepath.Dir(shortSocketPath(t)), "run", "edged.sock")
		startAPIServer(t, newFakeAPIState(1), path)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
			t.Errorf("socket mode %v, want srw-rw----", fi.Mode())
		}
	})

	t.Run("live socket in use", func(t *testing.T) {
		path := shortSocketPath(t)
		startAPIServer(t, newFakeAPIState(1), path)
		second := newServer(newFakeAPIState(1), slog.New(slog.DiscardHandler))
		err := second.listen(path)
		if err == nil || !strings.Contains(err.Error(), path+" is in use") {
			t.Fatalf("second listen on a live socket: %v, want %q in use", err, path)
		}
		// The first server still answers.
		code, _, err := get(context.Background(), t, unixHTTPClient(t, path), api.PathStatus)
		if err != nil || code != http.StatusOK {
			t.Errorf("first server after a refused second listen: %d, %v", code, err)
		}
	})

	t.Run("stale socket replaced", func(t *testing.T) {
		path := shortSocketPath(t)
		// What a crash leaves: the file of a socket nobody listens on.
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("stale socket not left in place: %v", err)
		}
		startAPIServer(t, newFakeAPIState(1), path)
		code, _, err := get(context.Background(), t, unixHTTPClient(t, path), api.PathStatus)
		if err != nil || code != http.StatusOK {
			t.Errorf("server on a replaced stale socket: %d, %v", code, err)
		}
	})

	t.Run("not a socket is kept", func(t *testing.T) {
		path := shortSocketPath(t)
		if err := os.WriteFile(path, []byte("site: plant-7\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := newServer(newFakeAPIState(1), slog.New(slog.DiscardHandler))
		err := s.listen(path)
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("listen on a regular file: %v, want \"is not a socket\"", err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "site: plant-7\n" {
			t.Errorf("regular file at the socket path was changed: %q, %v", b, err)
		}
	})
}

func TestServerRequests(t *testing.T) {
	st := newFakeAPIState(5)
	path := shortSocketPath(t)
	startAPIServer(t, st, path)
	c := unixHTTPClient(t, path)

	tests := []struct {
		name    string
		url     string
		code    int
		wantErr string // the JSON error; "" for 200
	}{
		{"status", api.PathStatus, 200, ""},
		{"members", api.PathMembers, 200, ""},
		{"wait without index does not block", api.PathMembers + "?wait=1h", 200, ""},
		{"index behind answers at once", api.PathMembers + "?index=3&wait=1h", 200, ""},
		{"unknown path", "/v1/nope", 404, "no such endpoint: GET /v1/nope"},
		{"root", "/", 404, "no such endpoint: GET /"},
		{"bad index", api.PathMembers + "?index=abc", 400, `index: want a non-negative integer, got "abc"`},
		{"negative index", api.PathStatus + "?index=-1", 400, `index: want a non-negative integer, got "-1"`},
		{"bad wait", api.PathMembers + "?index=5&wait=soon", 400, `wait: want a duration such as 10s, got "soon"`},
		{"negative wait", api.PathStatus + "?index=5&wait=-1s", 400, `wait: want a duration such as 10s, got "-1s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := get(context.Background(), t, c, tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Fatalf("GET %s: %d, want %d; body %s", tt.url, code, tt.code, body)
			}
			if tt.wantErr != "" {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Error != tt.wantErr {
					t.Errorf("GET %s: body %s, want {\"error\": %q}", tt.url, body, tt.wantErr)
				}
				return
			}
			var m api.Members // both answers carry members and index
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if m.Index != 5 || len(m.Members) != 1 || m.Members[0].Name != "edge-01" {
				t.Errorf("GET %s: %s", tt.url, body)
			}
		})
	}
	if len(st.waiting) != 0 {
		t.Errorf("%d requests blocked; none should have", len(st.waiting))
	}
}

func TestServerBlockingQuery(t *testing.T) {
	for _, p := range []string{api.PathMembers, api.PathStatus} {
		t.Run(p+" returns when the index moves", func(t *testing.T) {
			st := newFakeAPIState(5)
			path := shortSocketPath(t)
			startAPIServer(t, st, path)
			c := unixHTTPClient(t, path)

			type answer struct {
				code int
				body []byte
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				code, body, err := get(context.Background(), t, c, p+"?index=5&wait=1h")
				done <- answer{code, body, err}
			}()
			select {
			case w := <-st.waiting:
				if w.index != 5 {
					t.Errorf("Wait got index %d, want 5", w.index)
				}
				// wait=1h is capped at maxWait.
				if w.timeout > maxWait || w.timeout < maxWait-time.Minute {
					t.Errorf("Wait timeout %v, want about %v", w.timeout, maxWait)
				}
			case a := <-done:
				t.Fatalf("answered without blocking: %d %s %v", a.code, a.body, a.err)
			case <-time.After(guard):
				t.Fatal("request never reached Wait")
			}
			st.bump(api.Member{Name: "edge-02", Addr: "10.0.0.12:7946", Status: api.StatusAlive})
			var a answer
			select {
			case a = <-done:
			case <-time.After(guard):
				t.Fatal("blocking query did not return after the index moved")
			}
			if a.err != nil || a.code != 200 {
				t.Fatalf("answer %d %s %v", a.code, a.body, a.err)
			}
			var m api.Members
			if err := json.Unmarshal(a.body, &m); err != nil {
				t.Fatal(err)
			}
			if m.Index != 6 || len(m.Members) != 2 || m.Members[1].Name != "edge-02" {
				t.Errorf("answer after the change: %s", a.body)
			}
		})
	}

	t.Run("returns after wait when nothing changes", func(t *testing.T) {
		st := newFakeAPIState(5)
		path := shortSocketPath(t)
		startAPIServer(t, st, path)
		c := unixHTTPClient(t, path)
		const wait = 50 * time.Millisecond
		start := time.Now()
		code, body, err := get(context.Background(), t, c, api.PathMembers+"?index=5&wait="+wait.String())
		if err != nil || code != 200 {
			t.Fatalf("%d %s %v", code, body, err)
		}
		if d := time.Since(start); d < wait {
			t.Errorf("answered after %v, before wait=%v", d, wait)
		}
		if len(st.waiting) != 1 {
			t.Errorf("Wait blocked %d times, want 1", len(st.waiting))
		}
		var m api.Members
		if err := json.Unmarshal(body, &m); err != nil || m.Index != 5 {
			t.Errorf("answer %s (%v), want index 5", body, err)
		}
	})

	t.Run("index alone waits 30s; a client that leaves ends the wait", func(t *testing.T) {
		st := newFakeAPIState(5)
		path := shortSocketPath(t)
		startAPIServer(t, st, path)
		c := unixHTTPClient(t, path)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, _, err := get(ctx, t, c, api.PathMembers+"?index=5")
			done <- err
		}()
		select {
		case w := <-st.waiting:
			if w.timeout > 30*time.Second || w.timeout < 20*time.Second {
				t.Errorf("default wait %v, want 30s", w.timeout)
			}
		case <-time.After(guard):
			t.Fatal("request never reached Wait")
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("request after cancel: %v", err)
		}
		select {
		case idx := <-st.woke:
			if idx != 5 {
				t.Errorf("Wait returned index %d, want 5", idx)
			}
		case <-time.After(guard):
			t.Fatal("Wait still blocked after the client left")
		}
	})
}
