package coord

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"edge/daemon/api"
)

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip.keyring")
	if _, err := LoadKeyring(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	k1, k2 := newKey(t), newKey(t)
	want := Keyring{Keys: [][]byte{k1, k2}, Retired: []string{KeyID(newKey(t))}}
	if err := writeKeyring(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.Keys, want.Keys, bytes.Equal) || !slices.Equal(got.Retired, want.Retired) {
		t.Errorf("read back %+v, want %+v", got, want)
	}

	b64 := base64.StdEncoding.EncodeToString(k1)
	short := base64.StdEncoding.EncodeToString(k1[:10])
	tests := []struct {
		name, text, want string
	}{
		{"not JSON", `keys: [x]`, "invalid character"},
		{"unknown field", `{"keys": ["` + b64 + `"], "primary": 1}`, `unknown field "primary"`},
		{"no keys", `{"keys": []}`, "no keys"},
		{"not base64", `{"keys": ["` + b64 + `", "not base64!"]}`, "key 2: not base64"},
		{"wrong size", `{"keys": ["` + short + `"]}`, "key 1: key size must be 16, 24 or 32 bytes"},
		{"twice", `{"keys": ["` + b64 + `", "` + b64 + `"]}`, "key 2: listed twice"},
		{"bad retired id", `{"keys": ["` + b64 + `"], "retired": ["` + b64 + `"]}`, "not a key id"},
		{"too many", `{"keys": [` + strings.TrimSuffix(strings.Repeat(`"`+b64+`",`, maxKeys+1), ",") + `]}`, "at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyring(p)
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q, want it to name %s and say %q", err, p, tt.want)
			}
			if strings.Contains(err.Error(), b64) {
				t.Errorf("error shows a key: %q", err)
			}
		})
	}
}

// keyNode is a serf agent on loopback whose keyring is saved in its own
// folder and watched, as edged runs it.
type keyNode struct {
	*testNode
	name    string
	file    string
	primary chan string // the new primary key id, after each change
}

func startKeyNode(t *testing.T, name string, kr Keyring) *keyNode {
	t.Helper()
	n := &keyNode{name: name, file: filepath.Join(t.TempDir(), "gossip.keyring"), primary: make(chan string, 16)}
	n.testNode = startNodeWith(t, name, func(cfg *MembershipConfig) {
		cfg.Key, cfg.Keyring, cfg.Retired = kr.Keys[0], kr.Keys[1:], kr.Retired
		cfg.KeyringFile = n.file
	})
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- n.m.WatchKeyring(ctx, 20*time.Millisecond, func(id string) { n.primary <- id }) }()
	t.Cleanup(func() {
		cancel()
		<-watched
	})
	return n
}

// waitPrimary waits until the node reports id as its new primary key; its
// keyring file is written by then.
func (n *keyNode) waitPrimary(t *testing.T, id string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-n.primary:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("%s: primary key %s not reported within 10s (now %s)", n.name, id, n.m.PrimaryKeyID())
		}
	}
}

func (n *keyNode) saved(t *testing.T) Keyring {
	t.Helper()
	kr, err := LoadKeyring(n.file)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return kr
}

func ids(keys [][]byte) []string {
	var out []string
	for _, k := range keys {
		out = append(out, KeyID(k))
	}
	return out
}

func listKeys(t *testing.T, n *keyNode) api.Keyring {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kr, err := n.m.ListKeys(ctx)
	if err != nil {
		t.Fatalf("%s: list: %v", n.name, err)
	}
	return kr
}

// keysOf renders a listing as "id:nodes/primary ..." for comparisons.
func keysOf(kr api.Keyring) string {
	var parts []string
	for _, k := range kr.Keys {
		parts = append(parts, k.ID+":"+strings.Join(k.Nodes, ",")+"/"+strings.Join(k.Primary, ","))
	}
	return strings.Join(parts, " ")
}

// TestKeyRotation rotates the gossip key of a real three-node cluster: list,
// rotate, refuse to remove the primary, remove the old key, and a node
// restarted from its saved keyring rejoins while the old key is refused.
func TestKeyRotation(t *testing.T) {
	k0 := newKey(t)
	site := Keyring{Keys: [][]byte{k0}}
	a := startKeyNode(t, "a", site)
	b := startKeyNode(t, "b", site)
	c := startKeyNode(t, "c", site)
	for _, n := range []*keyNode{b, c} {
		if _, err := n.m.Join([]string{a.m.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*keyNode{a, b, c} {
		waitFor(t, n.m, 10*time.Second, "3 alive", func(ms []api.Member) bool {
			return statusOf2(ms, "a") == "alive" && statusOf2(ms, "b") == "alive" && statusOf2(ms, "c") == "alive"
		})
	}
	id0 := KeyID(k0)
	if got, want := keysOf(listKeys(t, c)), id0+":a,b,c/a,b,c"; got != want {
		t.Fatalf("list: %s, want %s", got, want)
	}
	if _, err := os.Stat(a.file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("keyring file written before any key operation: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := b.m.RotateKey(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	id1 := res.ID
	if got, want := keysOf(res.Keyring), id1+":a,b,c/a,b,c "+id0+":a,b,c/"; got != want {
		t.Fatalf("after rotate: %s, want %s", got, want)
	}
	for _, n := range []*keyNode{a, b, c} {
		n.waitPrimary(t, id1)
		kr := n.saved(t)
		if got := ids(kr.Keys); !slices.Equal(got, []string{id1, id0}) || !slices.Equal(kr.Retired, []string{id0}) {
			t.Errorf("%s saved keys %v retired %v, want [%s %s] retired [%s]", n.name, got, kr.Retired, id1, id0, id0)
		}
		if n.m.PrimaryKeyID() != id1 {
			t.Errorf("%s: primary %s, want %s", n.name, n.m.PrimaryKeyID(), id1)
		}
	}

	// The primary key cannot go; the old one can, by its id.
	if _, _, err := a.m.RemoveKey(ctx, id1); !errors.Is(err, ErrPrimaryKey) || !strings.Contains(err.Error(), "keys use") {
		t.Errorf("remove the primary: %v, want ErrPrimaryKey saying what to do", err)
	}
	if _, _, err := a.m.RemoveKey(ctx, "00000000"); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Errorf("remove an unknown id: %v", err)
	}
	kr, _, err := a.m.RemoveKey(ctx, id0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(kr), id1+":a,b,c/a,b,c"; got != want {
		t.Fatalf("after remove: %s, want %s", got, want)
	}

	// c restarts from its saved keyring (once its watcher saved the
	// removal) and rejoins; an agent with the old key cannot.
	waitSaved(t, c, []string{id1})
	saved := c.saved(t)
	if err := c.stop(t); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a.m, 10*time.Second, "c left", func(ms []api.Member) bool { return statusOf2(ms, "c") == "left" })
	c2 := startKeyNode(t, "c", saved)
	if _, err := c2.m.Join([]string{a.m.LocalAddr()}); err != nil {
		t.Fatalf("c from its saved keyring: %v", err)
	}
	waitFor(t, a.m, 10*time.Second, "c alive again", func(ms []api.Member) bool { return statusOf2(ms, "c") == "alive" })
	old := startKeyNode(t, "old", site)
	if _, err := old.m.Join([]string{a.m.LocalAddr()}); err == nil {
		t.Error("a node with the removed key joined")
	}
}

// waitSaved waits until n's keyring file holds exactly ids.
func waitSaved(t *testing.T, n *keyNode, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		kr, err := LoadKeyring(n.file)
		if err == nil && slices.Equal(ids(kr.Keys), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: keyring file %v (%v), want %v", n.name, ids(kr.Keys), err, want)
		}
		time.Sleep(20 * time.Millisecond) // the watcher's own period: a file has no event
	}
}

// TestKeyUseNeedsTheKeyEverywhere: a key that some node lacks is not made
// primary (that node could no longer read the others), and the error names
// the node.
func TestKeyUseNeedsTheKeyEverywhere(t *testing.T) {
	k0, k1 := newKey(t), newKey(t)
	a := startKeyNode(t, "a", Keyring{Keys: [][]byte{k0, k1}})
	b := startKeyNode(t, "b", Keyring{Keys: [][]byte{k0}})
	if _, err := b.m.Join([]string{a.m.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a.m, 10*time.Second, "b alive", func(ms []api.Member) bool { return statusOf2(ms, "b") == "alive" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := a.m.UseKey(ctx, KeyID(k1))
	if err == nil || !strings.Contains(err.Error(), "not installed on b") {
		t.Fatalf("use a key b lacks: %v, want a refusal naming b", err)
	}
	if a.m.PrimaryKeyID() != KeyID(k0) || b.m.PrimaryKeyID() != KeyID(k0) {
		t.Errorf("primary keys changed: a %s b %s", a.m.PrimaryKeyID(), b.m.PrimaryKeyID())
	}
	if _, err := a.m.InstallKey(ctx, k1[:5]); err == nil || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k1[:5])) {
		t.Errorf("install a short key: %v", err)
	}
	if _, err := a.m.InstallKey(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.m.UseKey(ctx, base64.StdEncoding.EncodeToString(k1)); err != nil {
		t.Fatal(err)
	}
	a.waitPrimary(t, KeyID(k1))
	b.waitPrimary(t, KeyID(k1))
}

// TestAdoptKeyring: which of two keyrings is the newer one, and what
// adopting a peer's does to this node's.
func TestAdoptKeyring(t *testing.T) {
	k0, k1, k2, kx := newKey(t), newKey(t), newKey(t), newKey(t)
	b64 := func(keys ...[]byte) []string {
		var out []string
		for _, k := range keys {
			out = append(out, base64.StdEncoding.EncodeToString(k))
		}
		return out
	}
	tests := []struct {
		name    string
		ours    Keyring
		peer    peerKeyring
		adopted bool
		why     string
		saved   []string // key ids saved after
		retired []string
	}{
		{"same primary", Keyring{Keys: [][]byte{k1, k0}}, peerKeyring{Keys: b64(k1), Retired: []string{KeyID(k0)}},
			false, "same primary key", nil, nil},
		{"the peer missed a rotation", Keyring{Keys: [][]byte{k1}, Retired: []string{KeyID(k0)}}, peerKeyring{Keys: b64(k0)},
			false, "the peer is the one that missed a rotation", nil, nil},
		{"this node missed two rotations", Keyring{Keys: [][]byte{k1, k0}, Retired: []string{KeyID(k0)}},
			peerKeyring{Keys: b64(k2), Retired: []string{KeyID(k0), KeyID(k1)}},
			true, "", []string{KeyID(k2)}, []string{KeyID(k0), KeyID(k1)}},
		{"this node missed the use, not the install", Keyring{Keys: [][]byte{k0, k1}},
			peerKeyring{Keys: b64(k1, k0), Retired: []string{KeyID(k0)}},
			true, "", []string{KeyID(k1), KeyID(k0)}, []string{KeyID(k0)}},
		{"unrelated keys: a wrong key_file is not fixed this way", Keyring{Keys: [][]byte{kx}},
			peerKeyring{Keys: b64(k2), Retired: []string{KeyID(k0), KeyID(k1)}},
			false, "neither keyring is newer", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultMembershipConfig()
			cfg.NodeName, cfg.AdvertiseAddr = "x", netip.MustParseAddr("127.0.0.1")
			cfg.Key, cfg.Keyring, cfg.Retired = tt.ours.Keys[0], tt.ours.Keys[1:], tt.ours.Retired
			cfg.KeyringFile = filepath.Join(t.TempDir(), "gossip.keyring")
			m, err := NewMembership(cfg)
			if err != nil {
				t.Fatal(err)
			}
			adopted, why, err := m.adoptKeyring(tt.peer)
			if err != nil {
				t.Fatal(err)
			}
			if adopted != tt.adopted || !strings.Contains(why, tt.why) {
				t.Fatalf("adopted %v (%q), want %v (%q)", adopted, why, tt.adopted, tt.why)
			}
			kr, err := LoadKeyring(cfg.KeyringFile)
			if !adopted {
				if !errors.Is(err, fs.ErrNotExist) || !slices.Equal(m.keys.ids(), ids(tt.ours.Keys)) {
					t.Errorf("keyring changed: %v, file: %v", m.keys.ids(), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(kr.Keys); !slices.Equal(got, tt.saved) || !slices.Equal(m.keys.ids(), tt.saved) {
				t.Errorf("keys saved %v, in use %v, want %v", got, m.keys.ids(), tt.saved)
			}
			if !slices.Equal(kr.Retired, tt.retired) {
				t.Errorf("retired %v, want %v", kr.Retired, tt.retired)
			}
		})
	}
	t.Run("a bad keyring from the peer", func(t *testing.T) {
		cfg := DefaultMembershipConfig()
		cfg.NodeName, cfg.AdvertiseAddr, cfg.Key = "x", netip.MustParseAddr("127.0.0.1"), k0
		m, err := NewMembership(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.adoptKeyring(peerKeyring{Keys: []string{"short"}}); err == nil {
			t.Error("adopted a bad keyring")
		}
		if m.PrimaryKeyID() != KeyID(k0) {
			t.Error("keyring changed")
		}
	})
}

// countingCluster counts join attempts, which fail with err.
type countingCluster struct {
	*fakeCluster
	n   atomic.Int32
	err error
}

func (c *countingCluster) Join(addrs []string) (int, error) {
	c.n.Add(1)
	c.fakeCluster.Join(addrs)
	return 0, c.err
}

// TestJoinerAsksForTheKeyring: a failed join to a peer with another key id
// reports it at once; to a peer with the same (or no) key id, after
// RecoverAfter failures in a row.
func TestJoinerAsksForTheKeyring(t *testing.T) {
	decrypt := errors.New("membership: join: failed to join 192.0.2.12:7946: no installed keys could decrypt the message")
	down := errors.New("membership: join: failed to join 192.0.2.12:7946: dial tcp 192.0.2.12:7946: connect: connection refused")
	tests := []struct {
		name, ours, theirs string
		err                error
		after              int32
	}{
		{"another key id", "aaaa", "bbbb", decrypt, 1},
		{"another key id, the peer down", "aaaa", "bbbb", down, 3},
		{"the same key id", "cccc", "cccc", decrypt, 3},
		{"no key id", "aaaa", "", decrypt, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &countingCluster{fakeCluster: newFakeCluster(), err: tt.err}
			type report struct {
				c        Candidate
				attempts int32
			}
			stuck := make(chan report, 100)
			cfg := DefaultJoinerConfig()
			cfg.Tick, cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 10*time.Millisecond, 20*time.Millisecond
			cfg.KeyID = "aaaa"
			cfg.Recover = func(c Candidate) { stuck <- report{c, f.n.Load()} }
			j, err := NewJoiner(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			j.SetKeyID(tt.ours)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- j.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			j.Sighted(Candidate{Name: "n2", Addrs: []string{"192.0.2.12:7946"}, KeyID: tt.theirs})
			select {
			case r := <-stuck:
				if r.c.Name != "n2" || r.attempts != tt.after {
					t.Errorf("%s reported stuck after %d failed joins, want n2 after %d", r.c.Name, r.attempts, tt.after)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("never reported stuck")
			}
		})
	}
}

// TestJoinerRetriesAfterAKeyChange: a new primary key makes the joiner try
// every candidate again at once, whatever its backoff.
func TestJoinerRetriesAfterAKeyChange(t *testing.T) {
	f := newFakeCluster()
	j, _ := testJoiner(t, f, func(c *JoinerConfig) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	j.Sighted(Candidate{Name: "n2", Addrs: []string{"192.0.2.12:7946"}})
	nextAttempt(t, f)
	j.SetKeyID("bbbb")
	nextAttempt(t, f)
}
