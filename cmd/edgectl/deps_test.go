package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps the CLI small and safe: it talks to edged only through
// edge/daemon/client and the wire types of edge/daemon/api, and never links
// the engine (membership, discovery, hardware, serf, mDNS).
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("go tool not found: %v", err)
		}
		t.Skipf("needs the go tool: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "edge/cmd/edgectl").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, want := range []string{"edge/cmd/edgectl", "edge/daemon/api", "edge/daemon/client"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps edge/cmd/edgectl lacks %s; got:\n%s", want, out)
		}
	}
	forbidden := []struct {
		path string
		tree bool // the package and everything under it
	}{
		{"edge/daemon", false}, // the engine; its api and client are fine
		{"edge/coord", true},
		{"edge/discovery", true},
		{"edge/hardware", true},
		{"github.com/hashicorp/serf", true},
		{"github.com/hashicorp/memberlist", true},
		{"github.com/grandcat/zeroconf", true},
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f.path || f.tree && strings.HasPrefix(d, f.path+"/") {
				t.Errorf("edgectl imports %s", d)
			}
		}
	}
}
