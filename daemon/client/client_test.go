package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/daemon/client"
)

// socketPath is a socket path short enough for sun_path (108 bytes).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "edg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "edged.sock")
}

// fakeEdged is an HTTP server on a unix socket that answers every path with
// a canned status and body, and records the requests.
type fakeEdged struct {
	path string

	mu      sync.Mutex
	answers map[string]answer
	queries []string // "path?query" of every request
}

type answer struct {
	code int
	body string
}

func startFakeEdged(t *testing.T, answers map[string]answer) *fakeEdged {
	t.Helper()
	f := &fakeEdged{path: socketPath(t), answers: answers}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.Path+"?"+r.URL.RawQuery)
		a, ok := f.answers[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			a = answer{404, `{"error": "no such endpoint: ` + r.Method + " " + r.URL.Path + `"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.code)
		w.Write([]byte(a.body))
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return f
}

func (f *fakeEdged) lastQuery() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return ""
	}
	return f.queries[len(f.queries)-1]
}

const statusJSON = `{
  "node": {"name": "edge-01", "site": "plant-7", "version": "1.2.3", "addr": "10.0.0.11:7946", "key_id": "ab12", "started": "2026-01-02T03:04:05Z"},
  "members": [
    {"name": "edge-01", "addr": "10.0.0.11:7946", "status": "alive", "tags": {"role": "edged", "site": "plant-7"}, "since": "2026-01-02T03:04:06Z"},
    {"name": "serf-x", "addr": "10.0.0.99:7946", "status": "failed", "tags": null, "since": "0001-01-01T00:00:00Z"}
  ],
  "index": 42
}`

const membersJSON = `{
  "members": [
    {"name": "edge-01", "addr": "10.0.0.11:7946", "status": "alive", "tags": {"role": "edged"}},
    {"name": "edge-02", "addr": "10.0.0.12:7946", "status": "suspect", "tags": {"role": "edged"}}
  ],
  "index": 7
}`

func TestClientStatus(t *testing.T) {
	f := startFakeEdged(t, map[string]answer{api.PathStatus: {200, statusJSON}})
	c := &client.Client{Socket: f.path}
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := api.Status{
		Node: api.Node{Name: "edge-01", Site: "plant-7", Version: "1.2.3", Addr: "10.0.0.11:7946", KeyID: "ab12",
			Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Members: []api.Member{
			{Name: "edge-01", Addr: "10.0.0.11:7946", Status: api.StatusAlive,
				Tags: map[string]string{"role": "edged", "site": "plant-7"}, Since: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)},
			{Name: "serf-x", Addr: "10.0.0.99:7946", Status: api.StatusFailed},
		},
		Index: 42,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status:\n got %+v\nwant %+v", got, want)
	}
	if q := f.lastQuery(); q != api.PathStatus+"?" {
		t.Errorf("request %q, want %s with no query", q, api.PathStatus)
	}
}

func TestClientMembers(t *testing.T) {
	f := startFakeEdged(t, map[string]answer{api.PathMembers: {200, membersJSON}})
	c := &client.Client{Socket: f.path}
	want := api.Members{
		Members: []api.Member{
			{Name: "edge-01", Addr: "10.0.0.11:7946", Status: api.StatusAlive, Tags: map[string]string{"role": "edged"}},
			{Name: "edge-02", Addr: "10.0.0.12:7946", Status: api.StatusSuspect, Tags: map[string]string{"role": "edged"}},
		},
		Index: 7,
	}
	tests := []struct {
		name      string
		call      func() (api.Members, error)
		wantQuery url.Values
	}{
		{"Members", func() (api.Members, error) { return c.Members(context.Background()) }, url.Values{}},
		{"WaitMembers", func() (api.Members, error) { return c.WaitMembers(context.Background(), 7, 30*time.Second) },
			url.Values{"index": {"7"}, "wait": {"30s"}}},
		{"WaitMembers short", func() (api.Members, error) { return c.WaitMembers(context.Background(), 0, 1500*time.Millisecond) },
			url.Values{"index": {"0"}, "wait": {"1.5s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			path, rawQuery, _ := strings.Cut(f.lastQuery(), "?")
			q, err := url.ParseQuery(rawQuery)
			if err != nil {
				t.Fatal(err)
			}
			if path != api.PathMembers || !reflect.DeepEqual(q, tt.wantQuery) {
				t.Errorf("request %s ? %v, want %s ? %v", path, q, api.PathMembers, tt.wantQuery)
			}
			// The wait the client sends is one the daemon parses.
			if w := q.Get("wait"); w != "" {
				if _, err := time.ParseDuration(w); err != nil {
					t.Errorf("wait=%q: %v", w, err)
				}
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name string
		ans  answer
		want string
	}{
		{"daemon's message", answer{503, `{"error": "no quorum: 1 of 3 voters reachable"}`}, "edged: no quorum: 1 of 3 voters reachable"},
		{"bad request", answer{400, `{"error": "index: want a non-negative integer, got \"x\""}`}, `edged: index: want a non-negative integer, got "x"`},
		{"not JSON", answer{502, `<html>bad gateway</html>`}, "edged: 502 Bad Gateway"},
		{"empty error", answer{500, `{"error": ""}`}, "edged: 500 Internal Server Error"},
		{"garbage with 200", answer{200, `{"node": [`}, "decode answer of /v1/status: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeEdged(t, map[string]answer{api.PathStatus: tt.ans})
			c := &client.Client{Socket: f.path}
			_, err := c.Status(context.Background())
			if err == nil || err.Error() != tt.want {
				t.Errorf("Status error = %v, want %q", err, tt.want)
			}
			if errors.Is(err, client.ErrUnreachable) {
				t.Errorf("an answer of the daemon is not ErrUnreachable: %v", err)
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	missing := socketPath(t)
	stale := socketPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	tests := []struct {
		name   string
		socket string
		cause  string
	}{
		{"no socket", missing, "no such file or directory"},
		{"nobody listens", stale, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &client.Client{Socket: tt.socket}
			_, err := c.Members(context.Background())
			if !errors.Is(err, client.ErrUnreachable) {
				t.Fatalf("Members error = %v, want ErrUnreachable", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.socket) || !strings.Contains(msg, tt.cause) || strings.Contains(msg, "\n") {
				t.Errorf("error %q should be one line naming %s and %q", msg, tt.socket, tt.cause)
			}
		})
	}

	t.Run("zero value uses the default socket", func(t *testing.T) {
		if _, err := os.Lstat(client.DefaultSocket); err == nil {
			t.Skipf("%s exists on this machine", client.DefaultSocket)
		}
		if client.DefaultSocket != "/run/edged/edged.sock" {
			t.Errorf("DefaultSocket = %q", client.DefaultSocket)
		}
		var c client.Client
		_, err := c.Status(context.Background())
		if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "/run/edged/edged.sock") {
			t.Errorf("zero Client: %v, want ErrUnreachable naming /run/edged/edged.sock", err)
		}
	})

	t.Run("canceled context is not unreachable", func(t *testing.T) {
		f := startFakeEdged(t, map[string]answer{api.PathStatus: {200, statusJSON}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c := &client.Client{Socket: f.path}
		_, err := c.Status(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
			t.Errorf("Status with a canceled context: %v, want context.Canceled", err)
		}
	})
}
