package coord

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCluster fails joins until told otherwise and reports every attempt.
type fakeCluster struct {
	mu       sync.Mutex
	alive    map[string]bool
	aliveAt  map[string]bool
	fail     bool
	attempts chan []string
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{alive: map[string]bool{}, aliveAt: map[string]bool{}, fail: true, attempts: make(chan []string, 100)}
}

func (f *fakeCluster) Join(addrs []string) (int, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	f.attempts <- addrs
	if fail {
		return 0, errors.New("connection refused")
	}
	return len(addrs), nil
}

func (f *fakeCluster) IsAlive(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alive[name]
}

func (f *fakeCluster) AliveAt(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aliveAt[addr]
}

func (f *fakeCluster) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func testJoiner(t *testing.T, f *fakeCluster, mod func(*JoinerConfig)) (*Joiner, *bytes.Buffer) {
	t.Helper()
	var logs syncBuffer
	cfg := DefaultJoinerConfig()
	cfg.Tick = 5 * time.Millisecond
	cfg.MinBackoff = 10 * time.Millisecond
	cfg.MaxBackoff = 40 * time.Millisecond
	cfg.KeyID = "aaaa"
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if mod != nil {
		mod(&cfg)
	}
	j, err := NewJoiner(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return j, &logs.Buffer
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func nextAttempt(t *testing.T, f *fakeCluster) ([]string, time.Time) {
	t.Helper()
	select {
	case a := <-f.attempts:
		return a, time.Now()
	case <-time.After(5 * time.Second):
		t.Fatal("no join attempt")
		return nil, time.Time{}
	}
}

func TestJoinerRetriesWithBackoffUntilAlive(t *testing.T) {
	f := newFakeCluster()
	j, logs := testJoiner(t, f, nil)
	j.Sighted(Candidate{Name: "n2", Addrs: []string{"192.0.2.12:7946"}, KeyID: "bbbb"})
	var times []time.Time
	for range 5 {
		addrs, at := nextAttempt(t, f)
		if len(addrs) != 1 || addrs[0] != "192.0.2.12:7946" {
			t.Fatalf("joined %v", addrs)
		}
		times = append(times, at)
	}
	// Waits grow (10, 20, 40, 40 ms): never faster than the minimum.
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < 10*time.Millisecond {
			t.Errorf("attempt %d came %s after the previous one; want >= 10ms", i, d)
		}
	}
	// The failure says why: the peer's key differs.
	if !strings.Contains(logs.String(), "different gossip key") {
		t.Errorf("log does not explain the key mismatch:\n%s", logs)
	}
	// Once the peer is alive, no more attempts.
	f.set(func() { f.alive["n2"] = true })
	drainUntilQuiet(t, f, 200*time.Millisecond)
}

// drainUntilQuiet consumes attempts until none arrives for quiet; it fails
// if attempts keep coming for long.
func drainUntilQuiet(t *testing.T, f *fakeCluster, quiet time.Duration) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-f.attempts:
		case <-time.After(quiet):
			return
		case <-deadline:
			t.Fatal("join attempts never stopped")
		}
	}
}

func TestJoinerNeverGivesUpOnASightedPeer(t *testing.T) {
	f := newFakeCluster()
	j, _ := testJoiner(t, f, nil)
	j.Sighted(Candidate{Name: "n3", Addrs: []string{"192.0.2.13:7946"}})
	// Far more attempts than any "try N times" limit would allow.
	for range 30 {
		nextAttempt(t, f)
	}
	// And once the peer answers, it is joined.
	f.set(func() { f.fail = false })
	nextAttempt(t, f)
	f.set(func() { f.alive["n3"] = true })
	drainUntilQuiet(t, f, 200*time.Millisecond)
}

func TestJoinerNewAddressIsTriedAtOnce(t *testing.T) {
	f := newFakeCluster()
	j, _ := testJoiner(t, f, func(c *JoinerConfig) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	j.Sighted(Candidate{Name: "n4", Addrs: []string{"192.0.2.14:7946"}})
	nextAttempt(t, f)
	// A backoff of an hour is running; a new address resets it.
	j.Sighted(Candidate{Name: "n4", Addrs: []string{"192.0.2.44:7946"}})
	addrs, _ := nextAttempt(t, f)
	if addrs[0] != "192.0.2.44:7946" {
		t.Fatalf("joined %v, want the new address", addrs)
	}
}

func TestJoinerSeeds(t *testing.T) {
	f := newFakeCluster()
	f.set(func() { f.fail = false })
	testJoiner(t, f, func(c *JoinerConfig) { c.Seeds = []string{"198.51.100.7:7946"} })
	addrs, _ := nextAttempt(t, f)
	if addrs[0] != "198.51.100.7:7946" {
		t.Fatalf("joined %v", addrs)
	}
	f.set(func() { f.aliveAt["198.51.100.7:7946"] = true })
	drainUntilQuiet(t, f, 200*time.Millisecond)
	// The seed went away: it is joined again.
	f.set(func() { f.aliveAt["198.51.100.7:7946"] = false })
	nextAttempt(t, f)
}

func TestJoinerForgetsStaleSightings(t *testing.T) {
	f := newFakeCluster()
	j, _ := testJoiner(t, f, func(c *JoinerConfig) { c.Forget = 50 * time.Millisecond })
	j.Sighted(Candidate{Name: "gone", Addrs: []string{"192.0.2.99:7946"}})
	nextAttempt(t, f)
	drainUntilQuiet(t, f, 300*time.Millisecond)
}

func TestJoinerConfigValidate(t *testing.T) {
	c := DefaultJoinerConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.MaxBackoff = c.MinBackoff / 2
	if err := c.Validate(); err == nil {
		t.Fatal("max < min accepted")
	}
}
