package discovery

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
)

func entry(instance string, port int, txt []string, addrs ...string) *zeroconf.ServiceEntry {
	e := zeroconf.NewServiceEntry(instance, Service, "local.")
	e.Port = port
	e.Text = txt
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip.To4() != nil {
			e.AddrIPv4 = append(e.AddrIPv4, ip)
		} else {
			e.AddrIPv6 = append(e.AddrIPv6, ip)
		}
	}
	return e
}

func TestFilter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name      string
		e         *zeroconf.ServiceEntry
		why       string // "" = accepted
		wantAddrs []string
		wantPort  int
	}{
		{"same site", entry("n2", 7946, []string{"site=lab", "gossip_port=7946", "key_id=ab12"}, "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"other site", entry("n2", 7946, []string{"site=other"}, "192.0.2.12"), "other site", nil, 0},
		{"no site", entry("n2", 7946, nil, "192.0.2.12"), "no site", nil, 0},
		{"ourselves", entry("n1", 7946, []string{"site=lab"}, "192.0.2.11"), "ourselves", nil, 0},
		{"txt port wins", entry("n2", 1, []string{"site=lab", "gossip_port=8000"}, "192.0.2.12"), "", []string{"192.0.2.12:8000"}, 8000},
		{"bad txt port", entry("n2", 7946, []string{"site=lab", "gossip_port=99999"}, "192.0.2.12"), "bad gossip_port", nil, 0},
		{"no address", entry("n2", 7946, []string{"site=lab"}), "no usable address", nil, 0},
		{"loopback only", entry("n2", 7946, []string{"site=lab"}, "127.0.0.1"), "no usable address", nil, 0},
		{"link-local v6 dropped", entry("n2", 7946, []string{"site=lab"}, "fe80::1", "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"v4 first", entry("n2", 7946, []string{"site=lab"}, "2001:db8::12", "192.0.2.12"), "", []string{"192.0.2.12:7946", "[2001:db8::12]:7946"}, 7946},
		{"duplicate addrs", entry("n2", 7946, []string{"site=lab"}, "192.0.2.12", "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"first txt wins", entry("n2", 7946, []string{"site=lab", "site=other"}, "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"case of key", entry("n2", 7946, []string{"SITE=lab"}, "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"no port", entry("n2", 0, []string{"site=lab"}, "192.0.2.12"), "no port", nil, 0},
		{"escaped name", entry(`node\ 2`, 7946, []string{"site=lab"}, "192.0.2.12"), "", []string{"192.0.2.12:7946"}, 7946},
		{"nil", nil, "empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, why := Filter(tt.e, "lab", "n1", now)
			if tt.why != "" {
				if !strings.Contains(why, tt.why) {
					t.Fatalf("reason %q, want %q", why, tt.why)
				}
				return
			}
			if why != "" {
				t.Fatalf("ignored: %s", why)
			}
			if got := s.JoinAddrs(); !slices.Equal(got, tt.wantAddrs) {
				t.Errorf("addrs %v, want %v", got, tt.wantAddrs)
			}
			if s.Port != tt.wantPort || s.Site != "lab" || !s.Seen.Equal(now) {
				t.Errorf("sighting %+v", s)
			}
		})
	}
	s, _ := Filter(entry(`node\ 2`, 7946, []string{"site=lab", "key_id=ab12", "version=v1"}, "192.0.2.12"), "lab", "n1", now)
	if s.Instance != "node 2" || s.KeyID != "ab12" || s.Version != "v1" {
		t.Errorf("sighting %+v", s)
	}
}

func TestTXTAndConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Instance, cfg.Site, cfg.GossipPort, cfg.KeyID, cfg.Version, cfg.Proto = "n1", "lab", 7946, "ab12", "v1", "1-2"
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"site=lab", "gossip_port=7946", "version=v1", "key_id=ab12", "proto=1-2"}
	if got := d.TXT(); !slices.Equal(got, want) {
		t.Errorf("TXT %v, want %v", got, want)
	}
	// What we advertise is what we accept.
	e := entry("n1", 7946, d.TXT(), "192.0.2.11")
	if s, why := Filter(e, "lab", "n2", time.Now()); why != "" || s.Proto != "1-2" || s.Version != "v1" {
		t.Errorf("own TXT: %+v, refused: %q", s, why)
	}
	// A release before protocol versions advertises none: still a peer.
	e = entry("n1", 7946, []string{"site=lab", "gossip_port=7946", "version=v0", "key_id=ab12"}, "192.0.2.11")
	if s, why := Filter(e, "lab", "n2", time.Now()); why != "" || s.Proto != "" {
		t.Errorf("TXT without proto: %+v, refused: %q", s, why)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Instance = "" },
		func(c *Config) { c.Site = "" },
		func(c *Config) { c.GossipPort = 0 },
		func(c *Config) { c.Renew = 0 },
	} {
		c := cfg
		bad(&c)
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func FuzzFilter(f *testing.F) {
	f.Add("n2", 7946, "site=lab\x00gossip_port=7946", []byte{192, 0, 2, 12})
	f.Add(`a\`, 0, "site=\x00=x", []byte{})
	f.Fuzz(func(t *testing.T, instance string, port int, txt string, ip []byte) {
		e := zeroconf.NewServiceEntry(instance, Service, "local.")
		e.Port = port
		e.Text = strings.Split(txt, "\x00")
		if len(ip) == 4 {
			e.AddrIPv4 = []net.IP{ip}
		} else if len(ip) == 16 {
			e.AddrIPv6 = []net.IP{ip}
		}
		s, why := Filter(e, "lab", "self", time.Now())
		if why != "" {
			return
		}
		if s.Site != "lab" || s.Instance == "self" || s.Port < 1 || s.Port > 65535 || len(s.Addrs) == 0 {
			t.Fatalf("accepted a bad sighting: %+v", s)
		}
		for _, a := range s.Addrs {
			if !a.IsValid() || a.IsLoopback() || a.IsMulticast() || a == netip.IPv4Unspecified() {
				t.Fatalf("bad address %v", a)
			}
		}
	})
}
