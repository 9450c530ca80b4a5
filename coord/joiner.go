package coord

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Candidate is a peer worth joining: a discovery sighting or a seed.
type Candidate struct {
	// Name is the peer's node name; "" for a seed, known only by address.
	Name string
	// Addrs are host:port addresses to join it at, best first.
	Addrs []string
	// KeyID is the gossip key id the peer advertises, if any.
	KeyID string
}

// cluster is what the joiner needs of membership.
type cluster interface {
	Join(addrs []string) (int, error)
	IsAlive(name string) bool
	AliveAt(addr string) bool
}

// JoinerConfig configures a Joiner.
type JoinerConfig struct {
	// Seeds are host:port addresses joined until they are members.
	Seeds []string
	// KeyID of this node's gossip key, to explain failed joins.
	KeyID string
	// Tick is how often candidates are checked.
	Tick time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts on one
	// candidate.
	MinBackoff, MaxBackoff time.Duration
	// Forget drops a sighted candidate not seen again for this long.
	Forget time.Duration
	// Parallel bounds the joins in flight.
	Parallel int
	// Recover, when set, is called (and must not block) after a failed
	// join to a candidate that may hold a gossip keyring this node lacks:
	// it advertises another key id than ours, or joins to it failed
	// RecoverAfter times in a row. See KeyRecovery.
	Recover      func(Candidate)
	RecoverAfter int
	Logger       *slog.Logger
}

// DefaultJoinerConfig returns the default timings.
func DefaultJoinerConfig() JoinerConfig {
	return JoinerConfig{
		Tick:       500 * time.Millisecond,
		MinBackoff: 500 * time.Millisecond,
		MaxBackoff: 30 * time.Second,
		Forget:     time.Hour,
		Parallel:   4,
		// The third failure: about 1.5 s after the first attempt.
		RecoverAfter: 3,
	}
}

// Validate checks the config.
func (c JoinerConfig) Validate() error {
	if c.Tick <= 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff || c.Forget <= 0 || c.Parallel < 1 {
		return errors.New("joiner: timings and parallelism must be positive, max backoff >= min backoff")
	}
	return nil
}

type candState struct {
	Candidate
	seed     bool
	seen     time.Time
	next     time.Time
	backoff  time.Duration
	failures int
	inflight bool
}

type joinResult struct {
	key string
	err error
}

// Joiner keeps joining candidates that are not alive members, with backoff
// per candidate, until they are. A candidate is never given up while it is
// still being sighted: a peer seen once is retried, not ignored forever.
type Joiner struct {
	cfg       JoinerConfig
	cluster   cluster
	log       *slog.Logger
	sightings chan Candidate
	now       func() time.Time
	keyID     atomic.Value  // string: this node's primary key id now
	retry     chan struct{} // a token: try every candidate again now
}

// NewJoiner returns a Joiner for c; it does nothing until Run.
func NewJoiner(cfg JoinerConfig, c cluster) (*Joiner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j := &Joiner{cfg: cfg, cluster: c, log: log, sightings: make(chan Candidate, 256), now: time.Now, retry: make(chan struct{}, 1)}
	j.keyID.Store(cfg.KeyID)
	return j, nil
}

// SetKeyID tells the joiner this node's primary gossip key id after it
// changed (a key rotation): candidates that failed, perhaps for want of
// that key, are tried again at once.
func (j *Joiner) SetKeyID(id string) {
	j.keyID.Store(id)
	select {
	case j.retry <- struct{}{}:
	default:
	}
}

func (j *Joiner) ourKeyID() string { return j.keyID.Load().(string) }

// Sighted hands a candidate to the joiner. It never blocks: when the joiner is
// behind, the sighting is dropped and the next one (discovery repeats them)
// takes its place.
func (j *Joiner) Sighted(c Candidate) {
	select {
	case j.sightings <- c:
	default:
	}
}

// Run joins candidates until ctx is done; it returns nil then.
func (j *Joiner) Run(ctx context.Context) error {
	cands := map[string]*candState{}
	now := j.now()
	for _, s := range j.cfg.Seeds {
		cands["seed:"+s] = &candState{Candidate: Candidate{Addrs: []string{s}}, seed: true, seen: now, next: now}
	}
	results := make(chan joinResult, j.cfg.Parallel)
	inflight := 0
	tick := time.NewTicker(j.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Joins in flight end on their own within serf's TCP timeout;
			// their results go to the buffered channel.
			return nil
		case c := <-j.sightings:
			key := "node:" + c.Name
			st, ok := cands[key]
			if !ok || !slices.Equal(st.Addrs, c.Addrs) {
				if ok && st.inflight {
					// Keep the attempt's bookkeeping; only refresh the target.
					st.Addrs, st.KeyID, st.seen = c.Addrs, c.KeyID, j.now()
					break
				}
				cands[key] = &candState{Candidate: c, seen: j.now(), next: j.now()}
				break
			}
			st.seen = j.now()
			st.KeyID = c.KeyID
		case r := <-results:
			inflight--
			st, ok := cands[r.key]
			if !ok {
				break
			}
			st.inflight = false
			if r.err == nil {
				st.failures, st.backoff = 0, 0
				st.next = j.now().Add(j.cfg.MaxBackoff)
				break
			}
			st.failures++
			st.backoff = min(max(st.backoff*2, j.cfg.MinBackoff), j.cfg.MaxBackoff)
			jitter := time.Duration(rand.Int64N(int64(st.backoff)/5 + 1))
			st.next = j.now().Add(st.backoff + jitter)
			j.report(st, r.err)
			if j.cfg.Recover != nil && (j.keyDiffers(st) && !unreachable(r.err) || st.failures >= j.cfg.RecoverAfter) {
				j.cfg.Recover(st.Candidate)
			}
			continue
		case <-j.retry:
			for _, st := range cands {
				st.backoff, st.next = 0, j.now()
			}
		case <-tick.C:
		}
		now := j.now()
		for key, st := range cands {
			if st.inflight || inflight >= j.cfg.Parallel {
				continue
			}
			if !st.seed && now.Sub(st.seen) > j.cfg.Forget {
				delete(cands, key)
				continue
			}
			if j.isMember(st) {
				st.failures, st.backoff = 0, 0
				continue
			}
			if now.Before(st.next) {
				continue
			}
			st.inflight = true
			inflight++
			go func(key string, addrs []string) {
				_, err := j.cluster.Join(addrs)
				results <- joinResult{key: key, err: err}
			}(key, slices.Clone(st.Addrs))
		}
	}
}

func (j *Joiner) isMember(st *candState) bool {
	if st.Name != "" {
		return j.cluster.IsAlive(st.Name)
	}
	for _, a := range st.Addrs {
		if j.cluster.AliveAt(a) {
			return true
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || net.ParseIP(host) != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		cancel()
		for _, ip := range ips {
			if err == nil && j.cluster.AliveAt(net.JoinHostPort(ip.IP.String(), port)) {
				return true
			}
		}
	}
	return false
}

func (j *Joiner) report(st *candState, err error) {
	// The first failure and then every tenth: enough to see, not a flood.
	if st.failures != 1 && st.failures%10 != 0 {
		j.log.Debug("join failed", "peer", st.Name, "addrs", st.Addrs, "err", err)
		return
	}
	attrs := []any{"addrs", st.Addrs, "attempts", st.failures, "retry_in", st.backoff.Round(time.Millisecond), "err", err}
	if st.Name != "" {
		attrs = append([]any{"peer", st.Name}, attrs...)
	}
	switch {
	case j.keyDiffers(st) && !unreachable(err):
		j.log.Warn("join failed: the peer advertises a different gossip key; check key_file on both nodes",
			append(attrs, "peer_key_id", st.KeyID, "our_key_id", j.ourKeyID())...)
	default:
		j.log.Warn("join failed (unreachable, or the peer uses a different gossip key)", attrs...)
	}
}

// keyDiffers reports whether the candidate advertises another gossip key
// than this node's primary key.
func (j *Joiner) keyDiffers(st *candState) bool {
	ours := j.ourKeyID()
	return st.KeyID != "" && ours != "" && st.KeyID != ours
}

// unreachable reports whether a join failed before any gossip was
// exchanged: the peer is down or cut off, whatever key it has.
func unreachable(err error) bool {
	s := err.Error()
	for _, why := range []string{"connection refused", "no route to host", "network is unreachable", "i/o timeout"} {
		if strings.Contains(s, why) {
			return true
		}
	}
	return false
}
