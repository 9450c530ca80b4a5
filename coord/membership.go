package coord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"edge/daemon/api"
	"edge/internal/notify"
)

// ErrNameConflict is returned by Run when another node of the site already
// uses this node's name and the site kept the other one.
var ErrNameConflict = errors.New("node name already in use on this site")

// MembershipConfig configures serf membership.
type MembershipConfig struct {
	NodeName string
	// BindAddr is the IP to listen on; "" or "0.0.0.0" for all.
	BindAddr string
	// AdvertiseAddr is the IP other nodes reach this one at (required).
	AdvertiseAddr netip.Addr
	Port          int
	// Key is the gossip encryption key (16, 24 or 32 bytes). Required:
	// gossip is never sent in clear.
	Key []byte
	// Keyring holds more keys, beside Key (the primary, which encrypts):
	// gossip encrypted with any of them is read. Retired are the ids of keys
	// this node stopped using. Both come from the keyring file.
	Keyring [][]byte
	Retired []string
	// KeyringFile is where the keyring is saved after every change (a key
	// rotation); "" keeps it in memory only. See LoadKeyring.
	KeyringFile string
	// SnapshotPath keeps the last known members so a restarted node rejoins
	// them without discovery; "" disables it.
	SnapshotPath string
	Tags         map[string]string

	// Timings, tuned for a site LAN: failure seen within ~2 s at 30 nodes.
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration
	GossipInterval    time.Duration
	SuspicionMult     int
	SuspicionMaxMult  int
	PushPullInterval  time.Duration
	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration
	TombstoneTimeout  time.Duration
	// LeavePropagate is how long a leave waits for its broadcast to spread;
	// LeaveTimeout bounds the whole graceful leave.
	LeavePropagate time.Duration
	LeaveTimeout   time.Duration

	Logger *slog.Logger
}

// DefaultMembershipConfig returns the site-LAN timings.
func DefaultMembershipConfig() MembershipConfig {
	return MembershipConfig{
		Port:          7946,
		ProbeInterval: 200 * time.Millisecond,
		// A busy embedded box answers a probe late: 250 ms before the
		// indirect probes, and up to 6x the suspicion minimum to refute.
		ProbeTimeout:      250 * time.Millisecond,
		GossipInterval:    100 * time.Millisecond,
		SuspicionMult:     4,
		SuspicionMaxMult:  6,
		PushPullInterval:  15 * time.Second,
		ReconnectInterval: time.Second,
		ReconnectTimeout:  72 * time.Hour,
		TombstoneTimeout:  24 * time.Hour,
		LeavePropagate:    500 * time.Millisecond,
		LeaveTimeout:      5 * time.Second,
	}
}

// Validate checks the config.
func (c MembershipConfig) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("membership: node name is empty"))
	}
	if !c.AdvertiseAddr.IsValid() {
		errs = append(errs, errors.New("membership: no advertise address"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("membership: port %d out of range", c.Port))
	}
	switch len(c.Key) {
	case 16, 24, 32:
	case 0:
		errs = append(errs, errors.New("membership: a gossip key is required"))
	default:
		errs = append(errs, fmt.Errorf("membership: gossip key must be 16, 24 or 32 bytes, got %d", len(c.Key)))
	}
	for i, k := range c.Keyring {
		if err := memberlist.ValidateKey(k); err != nil {
			errs = append(errs, fmt.Errorf("membership: keyring key %d: %w", i+1, err))
		}
	}
	if c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.GossipInterval <= 0 || c.LeaveTimeout <= 0 {
		errs = append(errs, errors.New("membership: timings must be positive"))
	}
	return errors.Join(errs...)
}

// KeyID is a short, non-secret identifier of a gossip key, for comparing
// keys between nodes in logs and mDNS.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Membership is this node's serf agent.
type Membership struct {
	cfg    MembershipConfig
	log    *slog.Logger
	bridge *logBridge
	events chan serf.Event

	keys *keyState

	mu       sync.Mutex
	serf     *serf.Serf
	since    map[string]time.Time
	changes  notify.Index
	conflict string // address that won our name, once serf gave it up
	leaving  bool
	notify   func(Event)
}

// Event is a membership change or a user event, for the node's event feed.
type Event struct {
	// Kind is "member" or "user".
	Kind string
	// Type is member-join, member-leave, member-failed, member-update, or
	// the user event's name.
	Type    string
	Member  string
	Addr    string
	Payload []byte
}

// OnEvent sets the function that receives membership and user events; set it
// before Start. It is called from the event loop: it must not block.
func (m *Membership) OnEvent(fn func(Event)) {
	m.mu.Lock()
	m.notify = fn
	m.mu.Unlock()
}

// UserEvent broadcasts a small notification to every member (serf user
// event). Never used for configuration: only for the event feed.
func (m *Membership) UserEvent(name string, payload []byte) error {
	s := m.agent()
	if s == nil {
		return errors.New("membership: not started")
	}
	if err := s.UserEvent(name, payload, false); err != nil {
		return fmt.Errorf("membership: user event %s: %w", name, err)
	}
	return nil
}

// NewMembership prepares a serf agent; nothing listens until Start.
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		cfg:    cfg,
		log:    log,
		bridge: newLogBridge(log),
		events: make(chan serf.Event, 1024),
		since:  map[string]time.Time{},
	}
	m.bridge.onConflict = m.nameConflict
	var err error
	if m.keys, err = newKeyState(cfg, log); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Membership) serfConfig() *serf.Config {
	c := m.cfg
	sc := serf.DefaultConfig()
	sc.NodeName = c.NodeName
	sc.Tags = c.Tags
	sc.EventCh = m.events
	sc.SnapshotPath = c.SnapshotPath
	sc.RejoinAfterLeave = true
	sc.ReconnectInterval = c.ReconnectInterval
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.LeavePropagateDelay = c.LeavePropagate
	sc.EnableNameConflictResolution = true
	sc.Logger = m.bridge.logger()

	ml := memberlist.DefaultLANConfig()
	ml.BindAddr = c.BindAddr
	if ml.BindAddr == "" {
		ml.BindAddr = "0.0.0.0"
	}
	ml.BindPort = c.Port
	ml.AdvertiseAddr = c.AdvertiseAddr.String()
	ml.AdvertisePort = c.Port
	ml.Keyring = m.keys.ring
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.GossipInterval = c.GossipInterval
	ml.GossipNodes = 4
	ml.SuspicionMult = c.SuspicionMult
	ml.SuspicionMaxTimeoutMult = c.SuspicionMaxMult
	ml.PushPullInterval = c.PushPullInterval
	ml.TCPTimeout = 2 * time.Second
	// A node that comes back with a new address after it was declared dead
	// takes its name back without waiting for the reap.
	ml.DeadNodeReclaimTime = 10 * time.Second
	ml.Logger = sc.Logger
	sc.MemberlistConfig = ml
	return sc
}

// Start creates the serf agent: it binds the gossip port and, when the
// snapshot lists earlier members, starts rejoining them. Events are buffered
// until Run consumes them.
func (m *Membership) Start() error {
	s, err := serf.Create(m.serfConfig())
	if err != nil {
		return fmt.Errorf("membership: start serf on %s:%d: %w", m.cfg.BindAddr, m.cfg.Port, err)
	}
	m.mu.Lock()
	m.serf = s
	m.mu.Unlock()
	m.log.Info("gossip started", "addr", netip.AddrPortFrom(m.cfg.AdvertiseAddr, uint16(m.cfg.Port)).String(),
		"key_id", m.PrimaryKeyID(), "keys", len(m.keys.ids()), "encrypted", s.EncryptionEnabled())
	return nil
}

// Run consumes membership events until ctx is done, then leaves the cluster
// gracefully within LeaveTimeout and stops serf. It returns nil on a clean
// leave and ErrNameConflict when the site refused this node's name.
func (m *Membership) Run(ctx context.Context) error {
	s := m.agent()
	if s == nil {
		return errors.New("membership: Run before Start")
	}
	for {
		select {
		case e := <-m.events:
			m.handle(e)
		case <-s.ShutdownCh():
			m.mu.Lock()
			other := m.conflict
			m.mu.Unlock()
			if other != "" {
				return fmt.Errorf("membership: %w: %q is already used by the node at %s; give this node a unique `node:` in its config",
					ErrNameConflict, m.cfg.NodeName, other)
			}
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("membership: serf stopped unexpectedly")
		case <-ctx.Done():
			return m.leave(s)
		}
	}
}

func (m *Membership) leave(s *serf.Serf) error {
	m.mu.Lock()
	m.leaving = true
	m.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.Leave() }()
	var errs []error
	select {
	case err := <-done:
		if err != nil {
			errs = append(errs, fmt.Errorf("membership: leave: %w", err))
		} else {
			m.log.Info("left the cluster")
		}
	case <-time.After(m.cfg.LeaveTimeout):
		errs = append(errs, fmt.Errorf("membership: leave: not done after %s, stopping anyway", m.cfg.LeaveTimeout))
	}
	if err := s.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("membership: shutdown: %w", err))
	}
	return errors.Join(errs...)
}

func (m *Membership) nameConflict(other string) {
	m.mu.Lock()
	if other == "" {
		other = "another address"
	}
	m.conflict = other
	m.mu.Unlock()
}

func (m *Membership) handle(e serf.Event) {
	m.mu.Lock()
	notify := m.notify
	m.mu.Unlock()
	if q, ok := e.(*serf.Query); ok {
		m.answerQuery(q)
		return
	}
	if ue, ok := e.(serf.UserEvent); ok && notify != nil {
		notify(Event{Kind: "user", Type: ue.Name, Payload: ue.Payload})
		return
	}
	me, ok := e.(serf.MemberEvent)
	if !ok {
		return
	}
	if notify != nil && me.Type != serf.EventMemberReap {
		for _, mem := range me.Members {
			notify(Event{Kind: "member", Type: me.Type.String(), Member: mem.Name, Addr: net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port)))})
		}
	}
	now := time.Now()
	m.mu.Lock()
	for _, mem := range me.Members {
		if me.Type == serf.EventMemberReap {
			delete(m.since, mem.Name)
		} else {
			m.since[mem.Name] = now
		}
	}
	m.mu.Unlock()
	m.changes.Bump()
	for _, mem := range me.Members {
		attrs := []any{"member", mem.Name, "addr", net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port)))}
		if site := mem.Tags[api.TagSite]; site != "" && site != m.cfg.Tags[api.TagSite] {
			m.log.Warn("member of another site joined this cluster", append(attrs, "site", site)...)
		}
		switch me.Type {
		case serf.EventMemberFailed:
			m.log.Warn("member failed", attrs...)
		case serf.EventMemberUpdate, serf.EventMemberReap:
			m.log.Debug(me.Type.String(), attrs...)
		default:
			m.log.Info(me.Type.String(), attrs...)
		}
	}
}

func (m *Membership) agent() *serf.Serf {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serf
}

// Join asks serf to join the cluster through addrs (host:port) and returns
// how many were contacted.
func (m *Membership) Join(addrs []string) (int, error) {
	s := m.agent()
	if s == nil {
		return 0, errors.New("membership: not started")
	}
	n, err := s.Join(addrs, true)
	if err != nil {
		return n, fmt.Errorf("membership: join: %w", flatten(err))
	}
	return n, nil
}

// IsAlive reports whether name is a member serf considers alive.
func (m *Membership) IsAlive(name string) bool {
	s := m.agent()
	if s == nil {
		return false
	}
	for _, mem := range s.Members() {
		if mem.Name == name {
			return mem.Status == serf.StatusAlive
		}
	}
	return false
}

// AliveAt reports whether an alive member gossips at addr (host:port).
func (m *Membership) AliveAt(addr string) bool {
	s := m.agent()
	if s == nil {
		return false
	}
	for _, mem := range s.Members() {
		if mem.Status == serf.StatusAlive && net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))) == addr {
			return true
		}
	}
	return false
}

// Members lists the cluster as this node sees it, sorted by name, and the
// current change index.
func (m *Membership) Members() ([]api.Member, uint64) {
	s := m.agent()
	if s == nil {
		return nil, 0
	}
	suspect := map[string]bool{}
	for _, n := range s.Memberlist().Members() {
		if n.State == memberlist.StateSuspect {
			suspect[n.Name] = true
		}
	}
	mems := s.Members()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Member, 0, len(mems))
	for _, mem := range mems {
		am := api.Member{
			Name:   mem.Name,
			Addr:   net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))),
			Status: statusOf(mem.Status, suspect[mem.Name]),
			Tags:   mem.Tags,
			Since:  m.since[mem.Name],
		}
		if am.Tags == nil {
			am.Tags = map[string]string{}
		}
		out = append(out, am)
	}
	slices.SortFunc(out, func(a, b api.Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	n, _ := m.changes.Load()
	return out, n
}

func statusOf(s serf.MemberStatus, suspect bool) string {
	switch s {
	case serf.StatusAlive:
		if suspect {
			return api.StatusSuspect
		}
		return api.StatusAlive
	case serf.StatusFailed:
		return api.StatusFailed
	case serf.StatusLeaving, serf.StatusLeft:
		return api.StatusLeft
	}
	return api.StatusFailed
}

// Wait blocks until the membership index is past index or ctx is done, and
// returns the current index.
func (m *Membership) Wait(ctx context.Context, index uint64) uint64 {
	return m.changes.Wait(ctx, index)
}

// LocalAddr is this node's gossip address, host:port.
func (m *Membership) LocalAddr() string {
	return netip.AddrPortFrom(m.cfg.AdvertiseAddr, uint16(m.cfg.Port)).String()
}

// flatten turns serf's multi-line multierror into one line.
func flatten(err error) error {
	w, ok := err.(interface{ WrappedErrors() []error })
	if !ok {
		return err
	}
	errs := w.WrappedErrors()
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%w (and: %s)", errs[0], strings.Join(msgs[1:], "; "))
}

// SetTag sets one of this node's serf tags (gossiped to every member).
func (m *Membership) SetTag(key, value string) error {
	s := m.agent()
	if s == nil {
		return errors.New("membership: not started")
	}
	m.mu.Lock()
	tags := make(map[string]string, len(m.cfg.Tags)+1)
	for k, v := range m.cfg.Tags {
		tags[k] = v
	}
	if tags[key] == value {
		m.mu.Unlock()
		return nil
	}
	tags[key] = value
	m.cfg.Tags = tags
	m.mu.Unlock()
	if err := s.SetTags(tags); err != nil {
		return fmt.Errorf("membership: set tag %s: %w", key, err)
	}
	return nil
}

// LocalName is this node's name.
func (m *Membership) LocalName() string { return m.cfg.NodeName }
