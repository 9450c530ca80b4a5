package systemd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
		{"User", "edged"},
		{"Group", "edged"},
		{"SupplementaryGroups", "dialout"},
		{"ConfigurationDirectory", "edged"},
		{"CapabilityBoundingSet", "CAP_NET_ADMIN"},
		{"AmbientCapabilities", "CAP_NET_ADMIN"},
		{"ProtectSystem", "strict"},
		{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
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
	analyze := needAnalyze(t)
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

// TestUnitSecurity holds the unit to DESIGN.md's bar: systemd-analyze
// security rates its exposure at most 2.0.
func TestUnitSecurity(t *testing.T) {
	analyze := needAnalyze(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// --threshold=20: exit non-zero above 2.0; the text names the score.
	out, err := exec.CommandContext(ctx, analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", unitFile).CombinedOutput()
	score, perr := exposure(string(out))
	if perr != nil {
		t.Fatalf("systemd-analyze security: %v (exit: %v)\n%s", perr, err, out)
	}
	if err != nil || score > 2.0 {
		t.Fatalf("systemd-analyze security: exposure %.1f, want <= 2.0 (exit: %v)\n%s", score, err, out)
	}
	t.Logf("exposure %.1f", score)
}

// exposure finds the overall exposure level in systemd-analyze security's
// report.
func exposure(report string) (float64, error) {
	const mark = "Overall exposure level for "
	for line := range strings.Lines(report) {
		_, rest, ok := strings.Cut(line, mark)
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, ": ")
		if !ok {
			break
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.ParseFloat(f[0], 64)
	}
	return 0, errors.New("no overall exposure level in the report")
}

func TestExposure(t *testing.T) {
	got, err := exposure("  ✗ UMask=  Files  0.1\n\n→ Overall exposure level for edged.service: 1.8 OK 🙂\n")
	if err != nil || got != 1.8 {
		t.Errorf("exposure = %v, %v; want 1.8", got, err)
	}
	if _, err := exposure("Failed to load unit\n"); err == nil {
		t.Error("a report without a score was read")
	}
}

// TestSysusers: the user and group the unit runs as are the ones the
// sysusers file makes.
func TestSysusers(t *testing.T) {
	b, err := os.ReadFile("edged.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "u" && f[1] == "edged" && f[2] == "-" {
			found = true
		}
	}
	if !found {
		t.Errorf("edged.sysusers: no line \"u edged - ...\" (user and group edged):\n%s", b)
	}
	if s := readUnit(t); s["User"] != "edged" || s["Group"] != "edged" {
		t.Errorf("unit runs as %s:%s, sysusers makes edged:edged", s["User"], s["Group"])
	}
}

// needAnalyze finds systemd-analyze: CI must have it (make deps).
func needAnalyze(t *testing.T) string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-analyze not found (install Debian package systemd; make deps): %v", err)
		}
		t.Skip("systemd-analyze not found; install Debian package systemd (make deps)")
	}
	return analyze
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
