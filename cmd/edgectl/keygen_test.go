package main

import (
	"encoding/base64"
	"testing"
)

func TestKeygen(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		code, stdout, stderr := edgectl(t, "keygen")
		if code != 0 || stderr != "" {
			t.Fatalf("keygen: exit %d, stderr %q", code, stderr)
		}
		l := lines(stdout)
		if len(l) != 1 || stdout != l[0]+"\n" {
			t.Fatalf("keygen printed %q, want one line", stdout)
		}
		key, err := base64.StdEncoding.DecodeString(l[0])
		if err != nil || len(key) != 32 {
			t.Fatalf("keygen printed %q: %d bytes, %v; want base64 of 32 bytes", l[0], len(key), err)
		}
		if seen[l[0]] {
			t.Fatalf("keygen printed %q twice", l[0])
		}
		seen[l[0]] = true
	}
}
