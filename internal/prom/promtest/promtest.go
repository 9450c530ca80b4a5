// Package promtest checks a Prometheus text exposition in tests: with the
// real promtool, and by reading its samples back.
package promtest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Check runs `promtool check metrics` (Debian's prometheus package) on a
// scrape; it must find nothing wrong, lint included. Outside CI a missing
// promtool skips the test; in CI it fails it.
func Check(tb testing.TB, text string) {
	tb.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("promtool not found: .ci/deps.sh installs Debian's prometheus package; CI must check the exposition")
		}
		tb.Skip("promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		tb.Errorf("promtool check metrics: %v\n%s\n--- scrape:\n%s", err, out, text)
	}
}

// Samples reads a scrape's samples by series, as written
// (`name{labels}` -> value); comments and blank lines are skipped.
func Samples(text string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, nil
}
