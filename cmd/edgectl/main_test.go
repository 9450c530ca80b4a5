package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edge/daemon/api"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

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

// startFakeAPI serves st as edged's local API would, on a unix socket, and
// returns the socket path.
func startFakeAPI(t *testing.T, st api.Status) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, r *http.Request) { reply(w, st) })
	mux.HandleFunc("GET "+api.PathMembers, func(w http.ResponseWriter, r *http.Request) {
		reply(w, api.Members{Members: st.Members, Index: st.Index})
	})
	return serveFake(t, mux)
}

// serveFake serves mux on a new unix socket until the test ends and returns
// the socket path.
func serveFake(t *testing.T, mux *http.ServeMux) string {
	t.Helper()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fake API: %v", err)
		}
	})
	return path
}

// reply answers with v as JSON.
func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// site is the canned answer of the fake API: one member in every status,
// and a stock serf agent without tags.
var site = api.Status{
	Node: api.Node{Name: "edge-01", Site: "plant-7", Version: "1.2.3", Addr: "10.0.0.11:7946", KeyID: "3f2a9c"},
	Members: []api.Member{
		{Name: "edge-01", Addr: "10.0.0.11:7946", Status: api.StatusAlive,
			Tags: map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "plant-7", api.TagVersion: "1.2.3"}},
		{Name: "edge-02", Addr: "10.0.0.12:7946", Status: api.StatusSuspect,
			Tags: map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "plant-7", api.TagVersion: "1.2.3"}},
		{Name: "edge-03", Addr: "10.0.0.13:7946", Status: api.StatusFailed,
			Tags: map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "plant-7", api.TagVersion: "1.2.2"}},
		{Name: "edge-04", Addr: "10.0.0.14:7946", Status: api.StatusLeft,
			Tags: map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "plant-7", api.TagVersion: "1.2.3"}},
		{Name: "serf-agent", Addr: "10.0.0.99:7946", Status: api.StatusAlive}, // stock `serf agent`: no tags
	},
	Index: 17,
}

// edgectl runs the CLI in process and returns its exit code and output.
func edgectl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // exact, when not ""
		stderr     string // exact, when not ""
		stderrRows int    // -1: any
	}{
		{name: "--version", args: []string{"--version"}, code: 0, stdout: "edgectl " + api.Version + "\n", stderrRows: 0},
		{name: "version", args: []string{"version"}, code: 0, stdout: "edgectl " + api.Version + "\n", stderrRows: 0},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2,
			stderr: "edgectl: unknown command \"frobnicate\" (see edgectl --help)\n", stderrRows: 1},
		{name: "unknown flag", args: []string{"--bogus", "status"}, code: 2,
			stderr: "edgectl: flag provided but not defined: -bogus (see edgectl --help)\n", stderrRows: 1},
		{name: "unknown subcommand flag", args: []string{"status", "--bogus"}, code: 2,
			stderr: "edgectl status: usage: flag provided but not defined: -bogus\n", stderrRows: 1},
		{name: "extra argument", args: []string{"members", "edge-02"}, code: 2,
			stderr: "edgectl members: usage: unexpected argument \"edge-02\"\n", stderrRows: 1},
		{name: "keygen takes no argument", args: []string{"keygen", "x"}, code: 2, stderrRows: 1},
		{name: "--socket without a path", args: []string{"--socket"}, code: 2, stderrRows: 1},
		{name: "no command", args: nil, code: 2, stderrRows: -1},
		{name: "--help", args: []string{"--help"}, code: 0, stderrRows: 0},
		{name: "subcommand -h", args: []string{"status", "-h"}, code: 0, stderrRows: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := edgectl(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if tt.stdout != "" && stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if tt.stderr != "" && stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
			if n := len(lines(stderr)); tt.stderrRows >= 0 && n != tt.stderrRows {
				t.Errorf("%d lines on stderr, want %d:\n%s", n, tt.stderrRows, stderr)
			}
		})
	}
	t.Run("help lists every command", func(t *testing.T) {
		_, stdout, _ := edgectl(t, "--help")
		for _, c := range commands {
			if !strings.Contains(stdout, "  "+c.name+" ") {
				t.Errorf("--help does not list %s:\n%s", c.name, stdout)
			}
		}
		if !strings.Contains(stdout, "/run/edged/edged.sock") {
			t.Errorf("--help does not name the default socket:\n%s", stdout)
		}
	})
}

// TestUnreachable: without edged every command that needs it exits 1 with
// exactly one line on stderr that names the socket.
func TestUnreachable(t *testing.T) {
	missing := socketPath(t)
	for _, args := range [][]string{
		{"--socket", missing, "status"},
		{"--socket", missing, "status", "--json"},
		{"--socket", missing, "members"},
		{"--socket", missing, "members", "--json"},
	} {
		t.Run(strings.Join(args[2:], " "), func(t *testing.T) {
			code, stdout, stderr := edgectl(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if l := lines(stderr); len(l) != 1 || !strings.Contains(l[0], missing) || !strings.HasPrefix(l[0], "edgectl "+args[2]+": ") {
				t.Errorf("stderr %q: want one line \"edgectl %s: ...\" naming %s", stderr, args[2], missing)
			}
		})
	}
}

// The help fits an 80-column terminal.
func TestHelpFits80Columns(t *testing.T) {
	code, stdout, stderr := edgectl(t, "--help")
	text := stdout + stderr
	if code != 0 || !strings.Contains(text, "support-bundle") {
		t.Fatalf("edgectl --help: exit %d:\n%s", code, text)
	}
	for _, l := range lines(text) {
		if len(l) > 80 {
			t.Errorf("%d columns: %q", len(l), l)
		}
	}
}
