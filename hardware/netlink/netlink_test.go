package netlink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"edge/hardware"
)

// The tests below the Check and Plan tests need root and iproute2: they
// create a fresh network namespace per test with `ip netns add`, build
// veth pairs and a bridge in it, drive the links through this package and
// read them back with `ip -j` as an independent reader. They skip when
// not root, except in CI (env CI set), where they fail instead.

func TestCheck(t *testing.T) {
	l := &Link{name: "eth1"}
	tests := []struct {
		name string
		in   hardware.Settings
		want hardware.Settings
		bad  string // substring of the error; "" = no error
	}{
		{name: "empty", in: hardware.Settings{}, want: hardware.Settings{}},
		{
			name: "canonical values",
			in: hardware.Settings{
				"up":        "up",
				"mtu":       9000,
				"addresses": []any{"2001:DB8:0:0::1/64", "192.0.2.10/24", "192.0.2.9/24", "192.0.2.9/24"},
				"master":    " br0 ",
				"vlans":     "eth1.200, 100",
			},
			want: hardware.Settings{
				"up":        true,
				"mtu":       int64(9000),
				"addresses": []string{"192.0.2.9/24", "192.0.2.10/24", "2001:db8::1/64"},
				"master":    "br0",
				"vlans":     []string{"eth1.100", "eth1.200"},
			},
		},
		{name: "mtu float and string", in: hardware.Settings{"mtu": 1500.0}, want: hardware.Settings{"mtu": int64(1500)}},
		{name: "mtu string", in: hardware.Settings{"mtu": "68"}, want: hardware.Settings{"mtu": int64(68)}},
		{name: "mtu max", in: hardware.Settings{"mtu": int64(65535)}, want: hardware.Settings{"mtu": int64(65535)}},
		{name: "no master", in: hardware.Settings{"master": ""}, want: hardware.Settings{"master": ""}},
		{name: "no addresses", in: hardware.Settings{"addresses": []string{}}, want: hardware.Settings{"addresses": []string{}}},
		{name: "down", in: hardware.Settings{"up": false}, want: hardware.Settings{"up": false}},

		{name: "unknown setting", in: hardware.Settings{"speed": 1000}, bad: `unknown setting "speed"`},
		{name: "mtu too small", in: hardware.Settings{"mtu": 67}, bad: "mtu 67"},
		{name: "mtu too big", in: hardware.Settings{"mtu": 65536}, bad: "mtu 65536"},
		{name: "mtu fraction", in: hardware.Settings{"mtu": 1500.5}, bad: "mtu 1500.5"},
		{name: "mtu word", in: hardware.Settings{"mtu": "jumbo"}, bad: "mtu jumbo"},
		{name: "up word", in: hardware.Settings{"up": "maybe"}, bad: "up maybe"},
		{name: "up number", in: hardware.Settings{"up": 1}, bad: "up 1"},
		{name: "address without length", in: hardware.Settings{"addresses": []string{"192.0.2.1"}}, bad: "addresses 192.0.2.1"},
		{name: "address garbage", in: hardware.Settings{"addresses": []string{"nope/24"}}, bad: "addresses nope/24"},
		{name: "address link-local v6", in: hardware.Settings{"addresses": []string{"fe80::1/64"}}, bad: "link-local"},
		{name: "address link-local v4", in: hardware.Settings{"addresses": []string{"169.254.1.1/16"}}, bad: "link-local"},
		{name: "address multicast", in: hardware.Settings{"addresses": []string{"224.0.0.251/32"}}, bad: "multicast"},
		{name: "address twice", in: hardware.Settings{"addresses": []string{"2001:db8::1/64", "2001:db8::1/56"}}, bad: "two prefix lengths"},
		{name: "addresses not a list", in: hardware.Settings{"addresses": 5}, bad: "addresses 5"},
		{name: "master bad name", in: hardware.Settings{"master": "a/b"}, bad: "master a/b"},
		{name: "master too long", in: hardware.Settings{"master": "bridge-with-long-name"}, bad: "master bridge-with-long-name"},
		{name: "master itself", in: hardware.Settings{"master": "eth1"}, bad: "own master"},
		{name: "master not a string", in: hardware.Settings{"master": true}, bad: "master true"},
		{name: "vlan other link", in: hardware.Settings{"vlans": []string{"eth2.100"}}, bad: "vlans eth2.100"},
		{name: "vlan id 0", in: hardware.Settings{"vlans": []string{"eth1.0"}}, bad: "vlans eth1.0"},
		{name: "vlan id 4095", in: hardware.Settings{"vlans": []string{"eth1.4095"}}, bad: "vlans eth1.4095"},
		{name: "vlan no id", in: hardware.Settings{"vlans": []string{"eth1."}}, bad: "vlans eth1."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Check(tt.in)
			if tt.bad != "" {
				if !errors.Is(err, hardware.ErrInvalid) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("Check(%v) error = %v, want ErrInvalid mentioning %q", tt.in, err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check(%v): %v", tt.in, err)
			}
			assertSettings(t, got, tt.want)
			again, err := l.Check(got)
			if err != nil {
				t.Fatalf("Check(canonical %v): %v", got, err)
			}
			assertSettings(t, again, got)
		})
	}

	t.Run("vlan name too long", func(t *testing.T) {
		long := &Link{name: "enp0s31f6abcd"}
		_, err := long.Check(hardware.Settings{"vlans": []string{"100"}})
		if !errors.Is(err, hardware.ErrInvalid) || !strings.Contains(err.Error(), "longer than 15") {
			t.Fatalf("error = %v, want ErrInvalid about the name length", err)
		}
	})
}

func TestPlan(t *testing.T) {
	l := &Link{name: "eth1"}
	tests := []struct {
		name    string
		actual  hardware.Settings // nil: Plan
		changes hardware.Settings
		want    []string
	}{
		{
			name:    "up last",
			changes: hardware.Settings{"up": true, "mtu": 9000, "master": "br0"},
			want:    []string{"ip link set eth1 master br0", "ip link set eth1 mtu 9000", "ip link set eth1 up"},
		},
		{
			name:    "down first",
			changes: hardware.Settings{"up": false, "master": ""},
			want:    []string{"ip link set eth1 down", "ip link set eth1 nomaster"},
		},
		{
			name:    "addresses unknown actual",
			changes: hardware.Settings{"addresses": []string{"2001:db8::1/64", "192.0.2.1/24"}},
			want: []string{
				"# ip address del: each permanent, not link-local address of eth1 not listed here",
				"ip address replace 192.0.2.1/24 dev eth1",
				"ip address replace 2001:db8::1/64 dev eth1",
			},
		},
		{
			name:    "vlans unknown actual",
			changes: hardware.Settings{"vlans": []string{"eth1.100"}},
			want: []string{
				"# ip link del: each 802.1Q sub-interface of eth1 not listed here",
				"ip link add link eth1 name eth1.100 type vlan id 100 # if missing",
			},
		},
		{
			name:    "from actual",
			actual:  hardware.Settings{"up": true, "mtu": int64(1500), "addresses": []string{"192.0.2.1/24", "192.0.2.2/24"}, "master": "br0", "vlans": []string{"eth1.100"}},
			changes: hardware.Settings{"up": true, "mtu": 9000, "addresses": []string{"192.0.2.2/24", "198.51.100.1/24"}, "master": "br0", "vlans": []string{"eth1.200"}},
			want: []string{
				"ip link set eth1 mtu 9000",
				"ip address del 192.0.2.1/24 dev eth1",
				"ip address replace 198.51.100.1/24 dev eth1",
				"ip link del eth1.100",
				"ip link add link eth1 name eth1.200 type vlan id 200",
			},
		},
		{
			name:    "from actual, nothing to do",
			actual:  hardware.Settings{"up": false, "mtu": int64(1500)},
			changes: hardware.Settings{"up": false, "mtu": 1500},
			want:    nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				got []string
				err error
			)
			if tt.actual == nil {
				got, err = l.Plan(tt.changes)
			} else {
				got, err = l.PlanFrom(tt.actual, tt.changes)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	if _, err := l.Plan(hardware.Settings{"mtu": 10}); !errors.Is(err, hardware.ErrInvalid) {
		t.Fatalf("Plan(mtu 10) error = %v, want ErrInvalid", err)
	}
}

func TestOpenValidates(t *testing.T) {
	for _, name := range []string{"", "a/b", "has space", "sixteen-chars-xx"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			_, err := Open(context.Background(), hardware.Config{Name: "x", Link: name}, nil)
			if !errors.Is(err, hardware.ErrInvalid) {
				t.Fatalf("Open(link %q) error = %v, want ErrInvalid", name, err)
			}
		})
	}
}

// TestApply drives one veth through a sequence of changes and checks
// each with `ip -j`, then checks Read against the desired values.
func TestApply(t *testing.T) {
	ns := newNS(t)
	ns.ip(t, "link", "add", "name", "br0", "type", "bridge")
	ns.ip(t, "link", "set", "br0", "up")
	ns.ip(t, "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p")
	ns.ip(t, "link", "set", "eth1p", "up")
	l := ns.open(t, "eth1")
	ctx := context.Background()

	steps := []struct {
		name    string
		changes hardware.Settings
		keep    hardware.Settings // other settings ip must still show
	}{
		{"mtu", hardware.Settings{"mtu": 9000}, nil},
		{"add addresses", hardware.Settings{"addresses": []string{"192.0.2.1/24", "2001:db8::1/64"}}, nil},
		{"replace addresses", hardware.Settings{"addresses": []string{"192.0.2.2/24", "2001:DB8::2/64", "198.51.100.1/24"}}, nil},
		{"same ip other length", hardware.Settings{"addresses": []string{"192.0.2.2/25", "2001:db8::2/56", "198.51.100.1/24"}}, nil},
		{"master", hardware.Settings{"master": "br0"}, nil},
		{"up", hardware.Settings{"up": true}, nil},
		{"everything, going down", hardware.Settings{"up": false, "master": "", "mtu": 1500, "addresses": []string{"192.0.2.3/24", "2001:db8::3/64"}}, nil},
		{"no addresses", hardware.Settings{"addresses": []string{}}, nil},
		{"everything, going up", hardware.Settings{"up": true, "master": "br0", "mtu": 1280, "addresses": []string{"2001:db8::4/64", "192.0.2.4/24"}}, nil},
		{"nomaster", hardware.Settings{"master": ""}, nil},
		// The kernel drops IPv6 addresses on down (keep_addr_on_down=0);
		// Apply puts them back.
		{"down", hardware.Settings{"up": false}, hardware.Settings{"addresses": []string{"192.0.2.4/24", "2001:db8::4/64"}}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			want, err := l.Check(st.changes)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Apply(ctx, st.changes); err != nil {
				t.Fatalf("Apply(%v): %v", st.changes, err)
			}
			assertIP(t, ns, "eth1", want)
			assertIP(t, ns, "eth1", st.keep)
			got, err := l.Read(ctx, want.Names())
			if err != nil {
				t.Fatal(err)
			}
			assertSettings(t, got, want)
			// Applying again changes nothing and does not fail.
			if err := l.Apply(ctx, st.changes); err != nil {
				t.Fatalf("Apply again: %v", err)
			}
			assertIP(t, ns, "eth1", want)
		})
	}

	t.Run("link-local and dynamic addresses are left alone", func(t *testing.T) {
		if err := l.Apply(ctx, hardware.Settings{"up": true, "addresses": []string{"192.0.2.5/24"}}); err != nil {
			t.Fatal(err)
		}
		ns.ip(t, "address", "add", "198.51.100.7/24", "dev", "eth1", "valid_lft", "3600", "preferred_lft", "3600")
		if err := l.Apply(ctx, hardware.Settings{"addresses": []string{"192.0.2.5/24"}}); err != nil {
			t.Fatal(err)
		}
		all := ns.addresses(t, "eth1", true)
		if !slices.ContainsFunc(all, func(s string) bool { return strings.HasPrefix(s, "fe80:") }) {
			t.Errorf("ip shows no IPv6 link-local address on eth1 (%v): want the kernel's to stay", all)
		}
		if !slices.Contains(all, "198.51.100.7/24") {
			t.Errorf("ip shows %v: the dynamic address 198.51.100.7/24 was removed", all)
		}
		got, err := l.Read(ctx, []string{"addresses"})
		if err != nil {
			t.Fatal(err)
		}
		assertSettings(t, got, hardware.Settings{"addresses": []string{"192.0.2.5/24"}})
	})

	t.Run("read all", func(t *testing.T) {
		got, err := l.Read(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		assertSettings(t, got, hardware.Settings{
			"up": true, "mtu": int64(1280), "addresses": []string{"192.0.2.5/24"}, "master": "", "vlans": []string{},
		})
	})
}

// TestDrift changes the link behind the driver's back.
func TestDrift(t *testing.T) {
	ns := newNS(t)
	ns.ip(t, "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p")
	ns.ip(t, "link", "add", "name", "br0", "type", "bridge")
	l := ns.open(t, "eth1")
	ctx := context.Background()
	desired := hardware.Settings{"up": true, "mtu": int64(9000), "addresses": []string{"192.0.2.1/24"}, "master": ""}
	if err := l.Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		drift []string // ip arguments
		read  hardware.Settings
	}{
		{"mtu", []string{"link", "set", "eth1", "mtu", "1400"}, hardware.Settings{"mtu": int64(1400)}},
		{"down", []string{"link", "set", "eth1", "down"}, hardware.Settings{"up": false}},
		{"extra address", []string{"address", "add", "203.0.113.5/24", "dev", "eth1"},
			hardware.Settings{"addresses": []string{"192.0.2.1/24", "203.0.113.5/24"}}},
		{"address gone", []string{"address", "del", "192.0.2.1/24", "dev", "eth1"},
			hardware.Settings{"addresses": []string{}}},
		{"master", []string{"link", "set", "eth1", "master", "br0"}, hardware.Settings{"master": "br0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns.ip(t, tt.drift...)
			got, err := l.Read(ctx, tt.read.Names())
			if err != nil {
				t.Fatal(err)
			}
			assertSettings(t, got, tt.read)
			diff := hardware.Diff(desired, got)
			if err := l.Apply(ctx, desired.Clone()); err != nil {
				t.Fatalf("correcting %v: %v", diff, err)
			}
			assertIP(t, ns, "eth1", desired)
		})
	}
}

func TestMissingLink(t *testing.T) {
	ns := newNS(t)
	ctx := context.Background()
	l := ns.open(t, "eth2")

	wantGone := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, hardware.ErrDisconnected) || !strings.Contains(err.Error(), "link eth2 not found") {
			t.Fatalf("error = %v, want ErrDisconnected saying link eth2 not found", err)
		}
	}
	t.Run("never there", func(t *testing.T) {
		_, err := l.Read(ctx, []string{"mtu"})
		wantGone(t, err)
		wantGone(t, l.Apply(ctx, hardware.Settings{"mtu": 1400}))
	})
	t.Run("appears", func(t *testing.T) {
		ns.ip(t, "link", "add", "name", "eth2", "type", "veth", "peer", "name", "eth2p")
		if err := l.Apply(ctx, hardware.Settings{"mtu": 1400}); err != nil {
			t.Fatal(err)
		}
		assertIP(t, ns, "eth2", hardware.Settings{"mtu": int64(1400)})
	})
	t.Run("unplugged", func(t *testing.T) {
		ns.ip(t, "link", "del", "eth2")
		_, err := l.Read(ctx, []string{"mtu"})
		wantGone(t, err)
	})
	t.Run("replugged", func(t *testing.T) {
		ns.ip(t, "link", "add", "name", "eth2", "type", "veth", "peer", "name", "eth2p")
		got, err := l.Read(ctx, []string{"mtu"})
		if err != nil {
			t.Fatal(err)
		}
		assertSettings(t, got, hardware.Settings{"mtu": int64(1500)})
	})
	t.Run("closed", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := l.Read(ctx, []string{"mtu"}); !errors.Is(err, hardware.ErrDisconnected) {
			t.Fatalf("Read after Close: %v, want ErrDisconnected", err)
		}
	})
}

func TestBadValues(t *testing.T) {
	ns := newNS(t)
	ns.ip(t, "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p")
	l := ns.open(t, "eth1")
	ctx := context.Background()

	tests := []struct {
		name    string
		changes hardware.Settings
		want    error
		msg     string
	}{
		{"unknown setting", hardware.Settings{"speed": 1000, "mtu": 1400}, hardware.ErrInvalid, `unknown setting "speed"`},
		{"mtu out of range", hardware.Settings{"mtu": 70000}, hardware.ErrInvalid, "mtu 70000"},
		{"bad address", hardware.Settings{"addresses": []string{"192.0.2.300/24"}, "mtu": 1400}, hardware.ErrInvalid, "addresses 192.0.2.300/24"},
		{"bad up", hardware.Settings{"up": "sideways"}, hardware.ErrInvalid, "up sideways"},
		{"master missing", hardware.Settings{"master": "nobr0"}, hardware.ErrRejected, "no link nobr0"},
		{"master not a bridge", hardware.Settings{"master": "eth1p"}, hardware.ErrRejected, "set master eth1p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Apply(ctx, tt.changes)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Apply(%v) error = %v, want %v mentioning %q", tt.changes, err, tt.want, tt.msg)
			}
			// Nothing was applied.
			assertIP(t, ns, "eth1", hardware.Settings{"mtu": int64(1500), "addresses": []string{}, "master": ""})
		})
	}
	t.Run("unknown name in Read", func(t *testing.T) {
		if _, err := l.Read(ctx, []string{"mtu", "speed"}); !errors.Is(err, hardware.ErrInvalid) {
			t.Fatalf("Read(speed) error = %v, want ErrInvalid", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := l.Read(cctx, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Read error = %v, want context.Canceled", err)
		}
		if err := l.Apply(cctx, hardware.Settings{"mtu": 1400}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply error = %v, want context.Canceled", err)
		}
	})
}

// TestVLANs tests 802.1Q sub-interfaces where the kernel has 8021q, and
// the clear ErrNotSupported where it has not (both are asserted, never
// skipped).
func TestVLANs(t *testing.T) {
	ns := newNS(t)
	ns.ip(t, "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p")
	l := ns.open(t, "eth1")
	ctx := context.Background()

	if _, err := l.Check(hardware.Settings{"vlans": []string{"eth1.100"}}); err != nil {
		t.Fatalf("Check must accept vlans whatever the kernel: %v", err)
	}
	got, err := l.Read(ctx, []string{"vlans"})
	if err != nil {
		t.Fatal(err)
	}
	assertSettings(t, got, hardware.Settings{"vlans": []string{}})

	// Ask the kernel independently.
	probe := exec.Command("ip", "-n", ns.name, "link", "add", "link", "eth1", "name", "eth1.4094", "type", "vlan", "id", "4094")
	out, perr := probe.CombinedOutput()
	supported := perr == nil
	t.Logf("8021q supported: %v (ip: %s)", supported, bytes.TrimSpace(out))
	if supported {
		ns.ip(t, "link", "del", "eth1.4094")
	}

	if !supported {
		err := l.Apply(ctx, hardware.Settings{"vlans": []string{"eth1.100"}, "mtu": 1400})
		if !errors.Is(err, hardware.ErrNotSupported) || !strings.Contains(err.Error(), "8021q VLANs are not supported by this kernel") {
			t.Fatalf("Apply(vlans) error = %v, want ErrNotSupported saying 8021q VLANs are not supported by this kernel", err)
		}
		// The other settings were still applied.
		assertIP(t, ns, "eth1", hardware.Settings{"mtu": int64(1400)})
		if err := l.Apply(ctx, hardware.Settings{"vlans": []string{}}); err != nil {
			t.Fatalf("Apply(no vlans) on a kernel without 8021q: %v", err)
		}
		return
	}

	steps := []hardware.Settings{
		{"vlans": []string{"eth1.200", "eth1.100"}},
		{"vlans": []string{"eth1.200", "eth1.300"}},
		{"vlans": []string{}},
	}
	for _, st := range steps {
		t.Run(hardware.Format(st["vlans"]), func(t *testing.T) {
			want, err := l.Check(st)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Apply(ctx, st); err != nil {
				t.Fatal(err)
			}
			assertIP(t, ns, "eth1", want)
			got, err := l.Read(ctx, []string{"vlans"})
			if err != nil {
				t.Fatal(err)
			}
			assertSettings(t, got, want)
		})
	}
}

// --- helpers

func assertSettings(t *testing.T, got, want hardware.Settings) {
	t.Helper()
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("settings %v, want %v", got, want)
	}
	for _, n := range want.Names() {
		if !hardware.Equal(got[n], want[n]) {
			t.Errorf("%s = %s (%T), want %s (%T)", n, hardware.Format(got[n]), got[n], hardware.Format(want[n]), want[n])
		}
	}
}

// needRoot skips a test that needs root and iproute2, except in CI.
func needRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs ip (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

type namespace struct {
	name string
	h    netns.NsHandle
}

var nsSeq atomic.Int64

// newNS creates a fresh network namespace, deleted when the test ends.
func newNS(t *testing.T) *namespace {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("edgenl-%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &namespace{name: name}
	t.Cleanup(func() {
		if ns.h.IsOpen() {
			ns.h.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.h = h
	return ns
}

// open opens link in the namespace, closed when the test ends.
func (ns *namespace) open(t *testing.T, link string) *Link {
	t.Helper()
	l, err := OpenIn(context.Background(), hardware.Config{Name: "test", Driver: "netlink", Link: link}, nil, ns.h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// ip runs ip -n NS ARGS.
func (ns *namespace) ip(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("ip -n %s %s: %v", ns.name, strings.Join(args, " "), err)
	}
	return out
}

// ipLink is what `ip -j -d link show` says about a link.
type ipLink struct {
	Ifname   string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int64    `json:"mtu"`
	Master   string   `json:"master"`
	Link     string   `json:"link"`
	Linkinfo struct {
		InfoKind string `json:"info_kind"`
		InfoData struct {
			Protocol string `json:"protocol"`
			ID       int    `json:"id"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

func (ns *namespace) links(t *testing.T) []ipLink {
	t.Helper()
	var links []ipLink
	if err := json.Unmarshal(ns.ip(t, "-j", "-d", "link", "show"), &links); err != nil {
		t.Fatalf("ip -j link show: %v", err)
	}
	return links
}

// addresses returns the addresses `ip -j address show` lists for link,
// sorted: all of them, or only those this driver manages (not link-local
// scope, not dynamic).
func (ns *namespace) addresses(t *testing.T, link string, all bool) []string {
	t.Helper()
	var out []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
			Dynamic   bool   `json:"dynamic"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(ns.ip(t, "-j", "address", "show", "dev", link), &out); err != nil {
		t.Fatalf("ip -j address show: %v", err)
	}
	var ps []netip.Prefix
	for _, l := range out {
		for _, a := range l.AddrInfo {
			if !all && (a.Scope == "link" || a.Dynamic) {
				continue
			}
			ps = append(ps, netip.PrefixFrom(netip.MustParseAddr(a.Local), a.Prefixlen))
		}
	}
	sortPrefixes(ps)
	return formatPrefixes(ps)
}

// assertIP checks with ip(8) that link has the given canonical settings.
func assertIP(t *testing.T, ns *namespace, link string, want hardware.Settings) {
	t.Helper()
	links := ns.links(t)
	i := slices.IndexFunc(links, func(l ipLink) bool { return l.Ifname == link })
	if i < 0 {
		t.Fatalf("ip shows no link %s", link)
	}
	l := links[i]
	for _, n := range want.Names() {
		var got any
		switch n {
		case SettingUp:
			got = slices.Contains(l.Flags, "UP")
		case SettingMTU:
			got = l.MTU
		case SettingMaster:
			got = l.Master
		case SettingAddresses:
			got = ns.addresses(t, link, false)
		case SettingVLANs:
			var ids []int
			for _, c := range links {
				if c.Link == link && c.Linkinfo.InfoKind == "vlan" {
					ids = append(ids, c.Linkinfo.InfoData.ID)
				}
			}
			got = vlanNames(link, ids)
		default:
			t.Fatalf("assertIP: unknown setting %s", n)
		}
		if !hardware.Equal(got, want[n]) {
			t.Errorf("ip says %s %s = %s, want %s", link, n, hardware.Format(got), hardware.Format(want[n]))
		}
	}
}
