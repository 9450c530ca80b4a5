package daemon

import (
	"slices"
	"strings"
	"testing"
)

func TestRedactConfig(t *testing.T) {
	in := `node: rru-3
key_file: /etc/edged/gossip.key
tls_key: /etc/edged/tls/rru-3.key
devices:
  - name: switch0
    driver: line
    options:
      login_password: hunter2
      "snmp_community": public
      api_key: abc123
    settings: {user: admin, password: "s3 cret", vlan: 10}
  - password: top
`
	got, keys := redactConfig(in)
	for _, secret := range []string{"hunter2", "public", "abc123", "s3 cret", "top"} {
		if strings.Contains(got, secret) {
			t.Errorf("secret %q still in:\n%s", secret, got)
		}
	}
	for _, kept := range []string{"key_file: /etc/edged/gossip.key", "tls_key: /etc/edged/tls/rru-3.key", "user: admin", "vlan: 10", "name: switch0"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q lost:\n%s", kept, got)
		}
	}
	want := []string{"login_password", "snmp_community", "api_key", "password", "password"}
	if !slices.Equal(keys, want) {
		t.Errorf("redacted keys %v, want %v", keys, want)
	}
	if strings.Count(got, "\n") != strings.Count(in, "\n") {
		t.Errorf("line count changed:\n%s", got)
	}
}

func FuzzRedactConfig(f *testing.F) {
	f.Add("password: x\n")
	f.Add("settings: {token: 'a,b', x: 1}\n")
	f.Fuzz(func(t *testing.T, in string) {
		out, _ := redactConfig(in)
		if strings.Count(out, "\n") != strings.Count(in, "\n") {
			t.Fatalf("line count changed: %q -> %q", in, out)
		}
	})
}
