package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"kill"}, "kill: want 1 argument(s), got 0"},
		{[]string{"status", "extra"}, "status: want 0 argument(s), got 1"},
		{[]string{"up", "--bogus"}, "up: flag provided but not defined: -bogus"},
		{[]string{"up", "-n", "x"}, `up: invalid value "x" for flag -n`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &out); err != nil || !strings.Contains(out.String(), "usage: edgelab") {
		t.Errorf("help: %v %q", err, out.String())
	}
}

// TestCLI drives a whole lab through the CLI, with the lab's fake daemon.
func TestCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root and network namespaces; CI must run it as root")
		}
		t.Skip("needs root and network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nft not found: install Debian package nftables")
		}
		t.Skip("nft not found (Debian package nftables)")
	}
	tmp := t.TempDir()
	fake := filepath.Join(tmp, "edged")
	if out, err := exec.Command("go", "build", "-o", fake, "../../test/lab/testdata/fakeedged/main.go").CombinedOutput(); err != nil {
		t.Fatalf("build fake edged: %v: %s", err, out)
	}
	b := make([]byte, 3)
	rand.Read(b)
	prefix, dir := "ct"+hex.EncodeToString(b), filepath.Join(tmp, "lab")
	edgelab := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append(args, "--dir", dir), &out, &errb)
		return out.String(), err
	}
	t.Cleanup(func() { edgelab("down") })

	out, err := edgelab("up", "-n", "3", "--prefix", prefix, "--edged", fake)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	want := "node1 DIR/node1/edged.sock\nnode2 DIR/node2/edged.sock\nnode3 DIR/node3/edged.sock\n"
	if want = strings.ReplaceAll(want, "DIR", dir); out != want {
		t.Errorf("up printed:\n%s\nwant:\n%s", out, want)
	}
	steps := []struct {
		args    []string
		wantOut string // substring
		wantErr string
	}{
		{[]string{"kill", "node2"}, "", ""},
		{[]string{"kill", "node2"}, "", "not running"},
		{[]string{"status"}, "node2  " + prefix + "-node2  192.0.2.12", ""},
		{[]string{"start", "node2"}, "", ""},
		{[]string{"stop", "node3"}, "", ""},
		{[]string{"kill", "node9"}, "", `unknown node "node9"`},
		{[]string{"partition", "node1/node2,node3"}, "", ""},
		{[]string{"partition", "node1/nodeX"}, "", `unknown node "nodeX"`},
		{[]string{"loss", "10%"}, "", ""},
		{[]string{"loss", "x"}, "", "not a percentage"},
		{[]string{"heal"}, "", ""},
		{[]string{"loss", "0"}, "", ""},
	}
	for _, s := range steps {
		out, err := edgelab(s.args...)
		switch {
		case s.wantErr == "" && err != nil:
			t.Errorf("%v: %v", s.args, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Errorf("%v: error %v, want %q", s.args, err, s.wantErr)
		case !strings.Contains(out, s.wantOut):
			t.Errorf("%v printed:\n%s\nwant it to contain %q", s.args, out, s.wantOut)
		}
	}
	if _, err := edgelab("down"); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left after down: %v", err)
	}
	if _, err := edgelab("down"); err != nil {
		t.Errorf("second down: %v", err)
	}
	if _, err := edgelab("status"); err == nil || !strings.Contains(err.Error(), "no lab here") {
		t.Errorf("status after down: %v", err)
	}
}
