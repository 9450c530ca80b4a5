package daemon

import "testing"

func TestProbe(t *testing.T) {
	for _, in := range []string{
		"site: a\nkey_file: k\n---\n: : [",
		"site: a\nkey_file: k\n---\n",
		"site: a\nkey_file: k\n...\n",
		"site: a\nkey_file: k\n]",
		"# c\n",
		"---\n",
		"site: [a]\nfoo: 1\n",
		"site: a\nkey_file: k\nseeds: [~, [a], \"h\"]\n",
		"site: a\nkey_file: k\nfoo: 1\n",
		"site: a\nkey_file: k\ngossip_port: 1__0\n",
		"site: a\nkey_file: k\nsite: b\n",
		"site: a\n\tkey_file: k\n",
	} {
		_, err := ParseConfig("t.yaml", []byte(in))
		t.Logf("%q\n -> %v", in, err)
	}
}
