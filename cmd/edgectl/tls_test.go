package main

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"edge/internal/pki"
)

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	out := filepath.Join(dir, "rru-3")

	code, stdout, stderr := edgectl(t, "tls", "ca", "--dir", caDir, "--site", "mast-17")
	if code != 0 || stderr != "" {
		t.Fatalf("tls ca: exit %d, stderr %q", code, stderr)
	}
	l := lines(stdout)
	if len(l) != 3 || !strings.HasPrefix(l[0], "created the CA of site mast-17, valid until ") ||
		!strings.Contains(l[1], filepath.Join(caDir, "ca.crt")) || !strings.Contains(l[2], filepath.Join(caDir, "ca.key")) {
		t.Errorf("tls ca printed:\n%s", stdout)
	}

	code, stdout, stderr = edgectl(t, "tls", "cert", "--ca", caDir, "--node", "rru-3",
		"--ip", "192.0.2.13", "--ip", "198.51.100.13,2001:db8::13", "--out", out, "--days", "30")
	if code != 0 || stderr != "" {
		t.Fatalf("tls cert: exit %d, stderr %q", code, stderr)
	}
	l = lines(stdout)
	if len(l) != 4 || !strings.HasPrefix(l[0], "created the credentials of node rru-3 (192.0.2.13, 198.51.100.13, 2001:db8::13), valid until ") {
		t.Errorf("tls cert printed:\n%s", stdout)
	}
	for i, f := range []string{"rru-3.crt", "rru-3.key", "ca.crt"} {
		if !strings.Contains(l[min(i+1, len(l)-1)], filepath.Join(out, f)) {
			t.Errorf("tls cert output does not name %s:\n%s", f, stdout)
		}
	}
	creds, err := pki.Load(filepath.Join(out, "ca.crt"), filepath.Join(out, "rru-3.crt"), filepath.Join(out, "rru-3.key"))
	if err != nil {
		t.Fatalf("the files of tls cert do not load: %v", err)
	}
	if creds.Node() != "rru-3" || creds.Site() != "mast-17" {
		t.Errorf("node %q site %q", creds.Node(), creds.Site())
	}
	b, _ := os.ReadFile(filepath.Join(out, "rru-3.crt"))
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	want := []net.IP{net.ParseIP("192.0.2.13"), net.ParseIP("198.51.100.13"), net.ParseIP("2001:db8::13")}
	if !slices.EqualFunc(cert.IPAddresses, want, net.IP.Equal) {
		t.Errorf("IPs %v, want %v", cert.IPAddresses, want)
	}
	if days := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; days < 30 || days > 31 {
		t.Errorf("valid for %.1f days, want 30", days)
	}
	if fi, err := os.Stat(filepath.Join(out, "rru-3.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("rru-3.key: %v, mode %v; want 0600", err, fi.Mode())
	}

	// The defaults: --out is the current folder.
	t.Chdir(t.TempDir())
	if code, _, stderr := edgectl(t, "tls", "cert", "--ca", caDir, "--node", "gnss-1"); code != 0 {
		t.Fatalf("tls cert with defaults: exit %d, stderr %q", code, stderr)
	}
	for _, f := range []string{"gnss-1.crt", "gnss-1.key", "ca.crt"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("tls cert without --out: %v", err)
		}
	}

	tests := []struct {
		name string
		args []string
		code int
		want string // the one line on stderr, when it starts with "="; else a part of it
	}{
		{"no subcommand", []string{"tls"}, 2, "=edgectl tls: usage: missing subcommand: ca or cert (see edgectl tls --help)"},
		{"unknown subcommand", []string{"tls", "key"}, 2, "=edgectl tls: usage: unknown subcommand \"key\": want ca or cert"},
		{"ca without --dir", []string{"tls", "ca", "--site", "s"}, 2, "=edgectl tls: usage: --dir is required"},
		{"ca without --site", []string{"tls", "ca", "--dir", filepath.Join(dir, "x")}, 2, "=edgectl tls: usage: --site is required"},
		{"ca with a bad site", []string{"tls", "ca", "--dir", filepath.Join(dir, "x"), "--site", "a b"}, 1, "not a valid site name"},
		{"ca with --days 0", []string{"tls", "ca", "--dir", filepath.Join(dir, "x"), "--site", "s", "--days", "0"}, 2, "--days 0: must be 1-36500"},
		{"ca again", []string{"tls", "ca", "--dir", caDir, "--site", "mast-17"}, 1,
			"=edgectl tls: " + filepath.Join(caDir, "ca.crt") + ": file already exists; remove it first to make a new one"},
		{"ca with an argument", []string{"tls", "ca", "--dir", caDir, "--site", "s", "extra"}, 2, "unexpected argument \"extra\""},
		{"cert without --ca", []string{"tls", "cert", "--node", "n1"}, 2, "=edgectl tls: usage: --ca is required"},
		{"cert without --node", []string{"tls", "cert", "--ca", caDir}, 2, "=edgectl tls: usage: --node is required"},
		{"cert with a bad --ip", []string{"tls", "cert", "--ca", caDir, "--node", "n1", "--ip", "192.0.2"}, 2,
			"=edgectl tls: usage: invalid value \"192.0.2\" for flag -ip: not an IP address"},
		{"cert with --days -1", []string{"tls", "cert", "--ca", caDir, "--node", "n1", "--days", "-1"}, 2, "--days -1: must be 1-36500"},
		{"cert outliving the CA", []string{"tls", "cert", "--ca", caDir, "--node", "n1", "--out", t.TempDir(), "--days", "36500"}, 1,
			"node certificate would outlive the CA: the CA expires on "},
		{"cert again", []string{"tls", "cert", "--ca", caDir, "--node", "rru-3", "--out", out}, 1, "rru-3.crt: file already exists"},
		{"cert from no CA", []string{"tls", "cert", "--ca", filepath.Join(dir, "none"), "--node", "n1"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := edgectl(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			l := lines(stderr)
			switch {
			case len(l) != 1:
				t.Errorf("stderr has %d lines, want 1:\n%s", len(l), stderr)
			case strings.HasPrefix(tt.want, "="):
				if l[0] != tt.want[1:] {
					t.Errorf("stderr %q\n      want %q", l[0], tt.want[1:])
				}
			case !strings.Contains(l[0], tt.want):
				t.Errorf("stderr %q, want it to contain %q", l[0], tt.want)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"tls", "--help"}, {"tls", "ca", "-h"}, {"tls", "cert", "-h"}} {
			code, stdout, stderr := edgectl(t, args...)
			if code != 0 || stdout != "" || !strings.Contains(stderr, "-") {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want usage on stderr", args, code, stdout, stderr)
			}
		}
	})
}
