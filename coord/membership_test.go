package coord

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/internal/nettest"
)

func newKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

type testNode struct {
	m      *Membership
	cancel context.CancelFunc
	done   chan error
}

// startNode runs a real serf agent on loopback.
func startNode(t *testing.T, name string, key []byte) *testNode {
	t.Helper()
	return startNodeWith(t, name, func(cfg *MembershipConfig) {
		cfg.Key = key
		cfg.SnapshotPath = t.TempDir() + "/serf.snapshot"
	})
}

// startNodeWith runs a real serf agent on loopback, its config changed by
// mod (the gossip key, at least).
func startNodeWith(t *testing.T, name string, mod func(*MembershipConfig)) *testNode {
	t.Helper()
	cfg := DefaultMembershipConfig()
	cfg.NodeName = name
	cfg.BindAddr = "127.0.0.1"
	cfg.AdvertiseAddr = netip.MustParseAddr("127.0.0.1")
	cfg.Port = nettest.FreePort(t)
	cfg.Tags = map[string]string{api.TagRole: api.RoleEdged, api.TagSite: "test"}
	cfg.LeaveTimeout = 3 * time.Second
	// A loaded CI machine may delay the leave broadcast: give it time to
	// spread before serf stops.
	cfg.LeavePropagate = 2 * time.Second
	mod(&cfg)
	m, err := NewMembership(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *testNode) stop(t *testing.T) error {
	n.cancel()
	select {
	case err, ok := <-n.done:
		if ok {
			close(n.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Errorf("membership did not stop")
		return nil
	}
}

// waitFor waits on membership change events until cond holds.
func waitFor(t *testing.T, m *Membership, timeout time.Duration, what string, cond func([]api.Member) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		mems, idx := m.Members()
		if cond(mems) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: not reached within %s; members: %+v", what, timeout, mems)
		}
		// Suspect states change without an event: wake up now and then.
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m.Wait(wctx, idx)
		wcancel()
	}
}

func statusOf2(mems []api.Member, name string) string {
	for _, m := range mems {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

func TestMembershipJoinFailLeave(t *testing.T) {
	key := newKey(t)
	a := startNode(t, "a", key)
	b := startNode(t, "b", key)
	c := startNode(t, "c", key)
	if _, err := b.m.Join([]string{a.m.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.m.Join([]string{b.m.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{a, b, c} {
		waitFor(t, n.m, 5*time.Second, "3 alive", func(ms []api.Member) bool {
			return len(ms) == 3 && statusOf2(ms, "a") == "alive" && statusOf2(ms, "b") == "alive" && statusOf2(ms, "c") == "alive"
		})
	}
	mems, _ := a.m.Members()
	for _, m := range mems {
		if m.Since.IsZero() {
			t.Errorf("member %s has no since", m.Name)
		}
		if m.Tags[api.TagRole] != api.RoleEdged {
			t.Errorf("member %s tags %v", m.Name, m.Tags)
		}
	}
	if !a.m.IsAlive("c") || !a.m.AliveAt(c.m.LocalAddr()) || a.m.IsAlive("nobody") {
		t.Error("IsAlive/AliveAt disagree with members")
	}

	// A graceful leave is seen as left.
	if err := c.stop(t); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitFor(t, a.m, 5*time.Second, "c left", func(ms []api.Member) bool { return statusOf2(ms, "c") == "left" })
}

func TestMembershipFailureDetected(t *testing.T) {
	key := newKey(t)
	a := startNode(t, "a", key)
	b := startNode(t, "b", key)
	c := startNode(t, "c", key)
	for _, n := range []*testNode{b, c} {
		if _, err := n.m.Join([]string{a.m.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, a.m, 5*time.Second, "3 alive", func(ms []api.Member) bool { return len(ms) == 3 && statusOf2(ms, "c") == "alive" })
	// Stop c without a leave: shut serf down under it.
	if err := c.m.agent().Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a.m, 10*time.Second, "c failed on a", func(ms []api.Member) bool { return statusOf2(ms, "c") == "failed" })
	waitFor(t, b.m, 10*time.Second, "c failed on b", func(ms []api.Member) bool { return statusOf2(ms, "c") == "failed" })
}

func TestMembershipWrongKeyRefused(t *testing.T) {
	a := startNode(t, "a", newKey(t))
	x := startNode(t, "x", newKey(t))
	_, err := x.m.Join([]string{a.m.LocalAddr()})
	if err == nil {
		t.Fatal("join with another key succeeded")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "decrypt") || strings.Contains(err.Error(), "\n") {
		t.Errorf("join error should say why in one line, got %q", err)
	}
	if mems, _ := a.m.Members(); len(mems) != 1 {
		t.Errorf("a sees %v", mems)
	}
}

func TestMembershipNameConflict(t *testing.T) {
	key := newKey(t)
	a := startNode(t, "a", key)
	b := startNode(t, "b", key)
	c := startNode(t, "c", key)
	for _, n := range []*testNode{b, c} {
		if _, err := n.m.Join([]string{a.m.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, a.m, 5*time.Second, "3 alive", func(ms []api.Member) bool { return len(ms) == 3 })
	dup := startNode(t, "b", key)
	_, _ = dup.m.Join([]string{a.m.LocalAddr()})
	select {
	case err := <-dup.done:
		close(dup.done)
		if !errors.Is(err, ErrNameConflict) || !strings.Contains(err.Error(), b.m.LocalAddr()) {
			t.Fatalf("newcomer: want ErrNameConflict naming %s, got %v", b.m.LocalAddr(), err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the newcomer with a duplicate name kept running")
	}
	// The incumbent is untouched.
	mems, _ := a.m.Members()
	for _, m := range mems {
		if m.Name == "b" && (m.Addr != b.m.LocalAddr() || m.Status != "alive") {
			t.Errorf("incumbent b disturbed: %+v", m)
		}
	}
}

func TestMembershipConfigValidate(t *testing.T) {
	good := DefaultMembershipConfig()
	good.NodeName = "n"
	good.AdvertiseAddr = netip.MustParseAddr("192.0.2.1")
	good.Key = make([]byte, 32)
	tests := []struct {
		name string
		mod  func(*MembershipConfig)
		want string
	}{
		{"ok", func(*MembershipConfig) {}, ""},
		{"no key", func(c *MembershipConfig) { c.Key = nil }, "gossip key is required"},
		{"short key", func(c *MembershipConfig) { c.Key = make([]byte, 7) }, "16, 24 or 32"},
		{"no name", func(c *MembershipConfig) { c.NodeName = "" }, "node name"},
		{"no addr", func(c *MembershipConfig) { c.AdvertiseAddr = netip.Addr{} }, "advertise"},
		{"port", func(c *MembershipConfig) { c.Port = 0 }, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want %q, got %v", tt.want, err)
			}
		})
	}
}
