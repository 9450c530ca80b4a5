package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// ErrNoQuorum means no leader can be reached: this side of the site cannot
// change the configuration.
var ErrNoQuorum = errors.New("no quorum: no raft leader is reachable from this node; the site config cannot change until a majority of voters is back")

// Config configures the store.
type Config struct {
	// NodeName is the raft server id.
	NodeName string
	// Dir holds raft.db and the snapshots.
	Dir string
	// Timings: failover within ~1-2 s on a site LAN.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// Snapshots and log compaction, bounded for flash.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	RetainSnapshots   int
	// ApplyTimeout bounds one command.
	ApplyTimeout time.Duration
	Logger       *slog.Logger
}

// DefaultConfig returns the site-LAN defaults.
func DefaultConfig() Config {
	return Config{
		// A follower that hears nothing for HeartbeatTimeout (randomised up
		// to twice that) stands for election: 700 ms replaces a dead leader
		// within ~1.5 s (the goal is 2 s; 1 s measured up to 2.7 s). The
		// leader sends heartbeats every HeartbeatTimeout/10.
		HeartbeatTimeout: 700 * time.Millisecond,
		ElectionTimeout:  700 * time.Millisecond,
		// A leader that hears from no quorum for this long steps down: as
		// long as the heartbeat timeout, so that a busy leader is not
		// deposed sooner than a dead one.
		LeaderLeaseTimeout: 700 * time.Millisecond,
		// Followers learn the commit index with the next AppendEntries. The
		// leader sends one every CommitTimeout (randomised up to twice
		// that) to every follower even when idle, which at 30 nodes was
		// most of an idle leader's CPU at raft's 50 ms. Commands do not wait
		// for it: after each burst the leader appends a barrier, whose
		// AppendEntries carries the new commit index at once (announce).
		CommitTimeout:     time.Second,
		SnapshotThreshold: 1024,
		SnapshotInterval:  2 * time.Minute,
		TrailingLogs:      1024,
		RetainSnapshots:   2,
		ApplyTimeout:      5 * time.Second,
	}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.NodeName == "" || c.Dir == "" {
		return errors.New("store: node name and dir are required")
	}
	if c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 || c.CommitTimeout <= 0 || c.ApplyTimeout <= 0 {
		return errors.New("store: timings must be positive")
	}
	if c.RetainSnapshots < 1 {
		return errors.New("store: retain at least one snapshot")
	}
	return nil
}

// Store is this node's replica of the site state, kept by raft.
type Store struct {
	cfg   Config
	log   *slog.Logger
	fsm   *FSM
	raft  *raft.Raft
	trans raft.Transport
	db    *raftboltdb.BoltStore
	// nudge wakes the announcer; done stops it.
	nudge chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// Open opens (or creates) the raft state in cfg.Dir and starts raft over
// layer. It does not bootstrap: see Bootstrap. When cfg.Dir holds a
// PeersFile, the local state is first recovered to the configuration it
// lists (see PeersFile); a bad file is an error and changes nothing.
func Open(cfg Config, layer raft.StreamLayer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A manual recovery file is read first: a bad one refuses the start
	// before anything is opened or changed.
	recovery, err := readRecovery(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: recovery: %w", err)
	}
	if recovery != nil {
		if err := checkSelf(filepath.Join(cfg.Dir, PeersFile), recovery, cfg.NodeName, layer.Addr()); err != nil {
			return nil, fmt.Errorf("store: recovery: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	hl := hclogAdapter(log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.RetainSnapshots, hl)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 2 * time.Second, Logger: hl,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// Commands that arrive together (every node reporting its progress at
	// once) share one log write and one AppendEntries per follower.
	rc.BatchApplyCh = true
	rc.Logger = hl
	if recovery != nil {
		if err := recoverCluster(cfg.Dir, recovery, rc, db, db, snaps, trans, log); err != nil {
			trans.Close()
			db.Close()
			return nil, fmt.Errorf("store: recovery: %w", err)
		}
	}
	fsm := NewFSM()
	r, err := raft.NewRaft(rc, fsm, db, db, snaps, trans)
	if err != nil {
		trans.Close()
		db.Close()
		return nil, fmt.Errorf("store: start raft: %w", err)
	}
	s := &Store{cfg: cfg, log: log, fsm: fsm, raft: r, trans: trans, db: db, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	s.wg.Add(1)
	go s.announcer()
	return s, nil
}

// announcer tells the followers about commits without waiting for raft's
// idle CommitTimeout: after a committed command it appends a barrier (an
// empty entry) whose replication carries the commit index. A burst of
// commands shares one barrier, and a barrier wakes nothing itself.
func (s *Store) announcer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.nudge:
		}
		// Commands that follow within announceQuiet carry the commit index
		// themselves: wait for a pause (at most announceMax) so that a burst,
		// or a client's command right after another, pays for no barrier.
		quiet := time.NewTimer(announceQuiet)
		limit := time.NewTimer(announceMax)
	wait:
		for {
			select {
			case <-s.done:
				quiet.Stop()
				limit.Stop()
				return
			case <-s.nudge:
				quiet.Reset(announceQuiet)
			case <-quiet.C:
				break wait
			case <-limit.C:
				break wait
			}
		}
		quiet.Stop()
		limit.Stop()
		if s.raft.State() != raft.Leader {
			continue
		}
		// Blocks until the barrier is applied: commands committed meanwhile
		// nudge again and get the next one.
		_ = s.raft.Barrier(s.cfg.ApplyTimeout).Error()
	}
}

// The announcer's pause: followers learn of a commit at most about
// announceQuiet after the last command of a burst (announceMax into a
// long one), instead of raft's idle CommitTimeout.
const (
	announceQuiet = 5 * time.Millisecond
	announceMax   = 50 * time.Millisecond
)

// announce wakes the announcer (without blocking).
func (s *Store) announce() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Index returns the raft index of the last command this replica applied;
// a replica whose applied index reaches the leader's Index has seen every
// command the leader had.
func (s *Store) Index() uint64 { return s.fsm.Index() }

// HasState reports whether this node already belongs to a raft cluster
// (it must then never bootstrap).
func (s *Store) HasState() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
}

// Bootstrap creates the cluster with servers as its first voters. Every
// node that computes the same set may call it; raft ignores it on a node
// that already has state.
func (s *Store) Bootstrap(servers []raft.Server) error {
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("store: bootstrap: %w", err)
	}
	return nil
}

// Raft exposes the raft instance for membership management.
func (s *Store) Raft() *raft.Raft { return s.raft }

// Active returns the id of the change in progress ("" when none), without
// copying the state.
func (s *Store) Active() string { return s.fsm.Active() }

// State returns a copy of the local replica.
func (s *Store) State() *State { return s.fsm.State() }

// Changed returns a channel closed at the next applied command.
func (s *Store) Changed() <-chan struct{} { return s.fsm.Changed() }

// IsLeader reports whether this node leads.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// TransferLeadership hands the leadership to the most up-to-date other
// voter and waits for it to take over (at most about an election timeout).
// It fails when this node does not lead or no other voter can take over.
func (s *Store) TransferLeadership() error {
	return s.raft.LeadershipTransfer().Error()
}

// Leader returns the leader's address and id ("" when unknown).
func (s *Store) Leader() (string, string) {
	a, id := s.raft.LeaderWithID()
	return string(a), string(id)
}

// Apply commits cmd on the leader (this node must lead) and returns its
// result; a refused command is an error.
func (s *Store) Apply(cmd Command) (Result, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return Result{}, err
	}
	f := s.raft.Apply(data, s.cfg.ApplyTimeout)
	err = f.Error()
	s.announce()
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return Result{}, fmt.Errorf("%w (%v)", ErrNoQuorum, err)
		}
		return Result{}, fmt.Errorf("store: apply %s: %w", cmd.Op, err)
	}
	res, _ := f.Response().(Result)
	if res.Err != "" {
		return res, ResultError(res.Err)
	}
	return res, nil
}

// Close stops raft and closes the database.
func (s *Store) Close() error {
	close(s.done)
	var errs []error
	if err := s.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("store: raft shutdown: %w", err))
	}
	if err := s.trans.(io.Closer).Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: transport: %w", err))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: db: %w", err))
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// hclogAdapter sends raft's hclog output to slog, one level down (raft is
// chatty at info).
func hclogAdapter(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Info,
		Output: &slogWriter{log: log},
		// Plain lines: the writer parses the level.
		DisableTime: true,
	})
}

type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := string(p)
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	level := slog.LevelDebug
	switch {
	case len(line) > 6 && line[:6] == "[WARN]":
		level = slog.LevelWarn
	case len(line) > 7 && line[:7] == "[ERROR]":
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, line, "component", "raft")
	return len(p), nil
}
