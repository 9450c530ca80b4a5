package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"edge/daemon/api"
)

// maxWait bounds a blocking query.
const maxWait = 5 * time.Minute

// state is what the API reads of the running daemon.
type state interface {
	Status() api.Status
	Members() ([]api.Member, uint64)
	Devices() []api.Device
	DevicesIndex() uint64
	WaitDevices(ctx context.Context, index uint64) uint64
	Wait(ctx context.Context, index uint64) uint64
}

// server is the local API over a unix socket.
type server struct {
	st   state
	log  *slog.Logger
	http *http.Server
	ln   net.Listener
}

func newServer(st state, log *slog.Logger) *server {
	s := &server{st: st, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, s.status)
	mux.HandleFunc("GET "+api.PathMembers, s.members)
	mux.HandleFunc("GET "+api.PathDevices, s.devices)
	// Profiles for support, on the local socket only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	if sh, ok := st.(interface{ siteHandlers(*http.ServeMux) }); ok {
		sh.siteHandlers(mux)
	}
	if kh, ok := st.(interface{ keyHandlers(*http.ServeMux) }); ok {
		kh.keyHandlers(mux)
	}
	if rh, ok := st.(interface{ raftHandlers(*http.ServeMux) }); ok {
		rh.raftHandlers(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	s.http = &http.Server{
		Handler:           http.MaxBytesHandler(mux, 1<<20),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// listen creates the socket: mode 0660, group edged when that group exists.
// A stale socket left by a crash is replaced; a live one is an error (another
// edged runs).
func (s *server) listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("api: socket folder: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			// Never delete what is not a socket (a config typo such as
			// socket: /etc/edged/edged.yaml).
			return fmt.Errorf("api: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("api: %s is in use: is another edged running?", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("api: remove stale socket: %w", err)
		}
	}
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("api: chmod %s: %w", path, err)
	}
	if g, err := user.LookupGroup("edged"); err == nil {
		// Under the systemd unit (Group=edged) the socket has the group
		// already, and the unit's system call filter refuses chown.
		if gid, err := strconv.Atoi(g.Gid); err == nil && !hasGroup(path, gid) {
			if err := os.Chown(path, -1, gid); err != nil {
				s.log.Warn("cannot give the API socket to group edged", "socket", path, "err", err)
			}
		}
	}
	s.ln = ln
	return nil
}

// hasGroup reports whether path belongs to group gid.
func hasGroup(path string, gid int) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Gid) == gid
}

// serve answers requests until close.
func (s *server) serve() error {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// close stops accepting, lets running requests end for a short while, and
// removes the socket.
func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	if err != nil {
		return fmt.Errorf("api: close: %w", err)
	}
	return nil
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	if idx, wait, ok := waitParams(w, r); ok && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		s.st.Wait(ctx, idx)
		cancel()
	} else if !ok {
		return
	}
	writeJSON(w, s.st.Status())
}

func (s *server) members(w http.ResponseWriter, r *http.Request) {
	if idx, wait, ok := waitParams(w, r); ok && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		s.st.Wait(ctx, idx)
		cancel()
	} else if !ok {
		return
	}
	mems, idx := s.st.Members()
	writeJSON(w, api.Members{Members: mems, Index: idx})
}

func (s *server) devices(w http.ResponseWriter, r *http.Request) {
	if idx, wait, ok := waitParams(w, r); ok && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		s.st.WaitDevices(ctx, idx)
		cancel()
	} else if !ok {
		return
	}
	idx := s.st.DevicesIndex()
	writeJSON(w, api.Devices{Devices: s.st.Devices(), Index: idx})
}

// waitParams reads ?index=N&wait=DUR of a blocking query.
func waitParams(w http.ResponseWriter, r *http.Request) (uint64, time.Duration, bool) {
	q := r.URL.Query()
	var idx uint64
	var wait time.Duration
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("index: want a non-negative integer, got %q", v))
			return 0, 0, false
		}
		idx = n
		wait = 30 * time.Second
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("wait: want a duration such as 10s, got %q", v))
			return 0, 0, false
		}
		wait = min(d, maxWait)
	}
	if q.Get("index") == "" {
		wait = 0
	}
	return idx, wait, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
}
