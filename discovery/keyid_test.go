package discovery

import (
	"slices"
	"testing"
)

// TestSetKeyID: the advertised key id follows the node's primary key.
func TestSetKeyID(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Instance, cfg.Site, cfg.GossipPort, cfg.KeyID = "n1", "mast-17", 7946, "aaaa0000"
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.TXT(), "key_id=aaaa0000") {
		t.Fatalf("TXT %v", d.TXT())
	}
	if err := d.SetKeyID("bbbb1111"); err != nil {
		t.Fatal(err)
	}
	if txt := d.TXT(); !slices.Contains(txt, "key_id=bbbb1111") || slices.Contains(txt, "key_id=aaaa0000") {
		t.Errorf("after SetKeyID: TXT %v", txt)
	}
}
