package systemd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitFile = "edged.service"

// TestUnitSettings pins the settings other parts rely on: the daemon's
// notify protocol, the config path, the socket and state directories.
func TestUnitSettings(t *testing.T) {
	settings := readUnit(t)
	tests := []struct{ key, want string }{
		{"Type", "notify"},
		{"ExecStart", "/usr/bin/edged --config /etc/edged/edged.yaml"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"WatchdogSec", "30s"},
		{"Restart", "on-failure"},
		{"StateDirectory", "edged"},
		{"RuntimeDirectory", "edged"},
		{"RuntimeDirectoryPreserve", "yes"},
		{"TimeoutStopSec", "10s"},
		{"WantedBy", "multi-user.target"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := settings[tt.key]
			if !ok {
				t.Fatalf("%s: no %s=", unitFile, tt.key)
			}
			if got != tt.want {
				t.Errorf("%s: %s=%q, want %q", unitFile, tt.key, got, tt.want)
			}
		})
	}
}

// TestUnitVerify runs systemd-analyze verify on a copy of the unit whose
// ExecStart names a binary that exists here (verify checks that): the
// built edged from $EDGE_BIN when there is one, else /bin/true. Any message
// about the unit, even a warning such as an unknown key, fails the test.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-analyze not found (install Debian package systemd; make deps): %v", err)
		}
		t.Skip("systemd-analyze not found; install Debian package systemd (make deps)")
	}
	bin := "/bin/true"
	if dir := os.Getenv("EDGE_BIN"); dir != "" {
		if p, err := filepath.Abs(filepath.Join(dir, "edged")); err == nil {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const orig = "ExecStart=/usr/bin/edged "
	if !bytes.Contains(unit, []byte("\n"+orig)) {
		t.Fatalf("%s: no line starting with %q", unitFile, orig)
	}
	unit = bytes.Replace(unit, []byte("\n"+orig), []byte("\nExecStart="+bin+" "), 1)
	path := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s (ExecStart=%s): %v\n%s", unitFile, bin, err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, unitFile) {
			t.Errorf("systemd-analyze verify: %s", strings.TrimSpace(line))
		} else {
			t.Logf("systemd-analyze verify (other unit): %s", strings.TrimSpace(line))
		}
	}
}

// readUnit parses key=value lines of the unit file, ignoring comments and
// section headers. A repeated key keeps its last value.
func readUnit(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: malformed line %q", unitFile, line)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
