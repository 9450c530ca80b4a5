package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"edge/coord/store"
	"edge/coord/transport"
	"edge/daemon/api"
	"edge/internal/pki"
)

// Serf tags for raft.
const (
	TagRaftPort  = "raft_port"
	TagRaftState = "raft" // "1" once the node is part of a raft cluster
)

// RaftConfig configures this node's part in the site's raft group.
type RaftConfig struct {
	NodeName      string
	Site          string
	BindAddr      string
	AdvertiseAddr netip.Addr
	Port          int
	Creds         *pki.Credentials
	// BootstrapExpect is how many edged nodes must be seen before the first
	// voters bootstrap the cluster (like Consul's bootstrap_expect).
	BootstrapExpect int
	// DeadAfter is how long a failed server stays in the raft configuration
	// before it is removed (and, if a voter, replaced).
	DeadAfter time.Duration
	// StableAfter is how long a non-voter must have been healthy before it
	// may be promoted to voter.
	StableAfter time.Duration
	// Interval of the bootstrap and membership loops.
	Interval time.Duration
	Store    store.Config
	Logger   *slog.Logger
	// OnApply, when set, is told how long each Apply took and whether its
	// command was committed (the store may still have refused it); a
	// command that never was (no quorum, a timeout) reports false.
	OnApply func(took time.Duration, committed bool)
}

// DefaultRaftConfig returns the defaults.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{BootstrapExpect: 3, DeadAfter: 30 * time.Second, StableAfter: 10 * time.Second, Interval: 500 * time.Millisecond, Store: store.DefaultConfig()}
}

// Validate checks the config.
func (c RaftConfig) Validate() error {
	var errs []error
	if c.NodeName == "" || !c.AdvertiseAddr.IsValid() {
		errs = append(errs, errors.New("raft: node name and advertise address are required"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("raft: port %d out of range", c.Port))
	}
	if c.Creds == nil {
		errs = append(errs, errors.New("raft: TLS credentials are required"))
	} else if c.Creds.Node() != c.NodeName {
		errs = append(errs, fmt.Errorf("raft: tls_cert is issued for node %q, this node is %q", c.Creds.Node(), c.NodeName))
	}
	if c.BootstrapExpect < 1 {
		errs = append(errs, errors.New("raft: bootstrap_expect must be at least 1"))
	}
	if c.DeadAfter <= 0 || c.Interval <= 0 || c.StableAfter < 0 {
		errs = append(errs, errors.New("raft: timings must be positive"))
	}
	return errors.Join(errs...)
}

// Raft is this node's member of the site's raft group: the transport, the
// store, bootstrap, the leader's membership management and the RPC that
// forwards commands to the leader.
type Raft struct {
	cfg     RaftConfig
	log     *slog.Logger
	members *Membership
	mux     *transport.Mux
	store   *store.Store
	rpc     *http.Server
	rpcMux  *http.ServeMux

	mu       sync.Mutex
	addrName map[string]string // raft address -> node name, from serf
	downFrom map[string]time.Time
	// badAt: when the leader last saw a node unhealthy (a failed ping or
	// failed raft heartbeats); a non-voter's stability counts from there.
	badAt map[string]time.Time
	// memberIndex and memberSince: the membership view and since when it
	// has not changed (bootstrap waits for a settled view).
	memberIndex uint64
	memberSince time.Time

	// stepMu is held by each step of the membership loop; stopping, once
	// set under it by Quiesce, ends the loop's decisions.
	stepMu   sync.Mutex
	stopping bool
}

// bootstrapSettle is how long the membership view must stay unchanged
// before a new site bootstraps: nodes started together then all see the
// same members and pick the same first voters.
const bootstrapSettle = 2 * time.Second

// NewRaft opens the transport and the store. Nothing is bootstrapped until
// Run.
func NewRaft(cfg RaftConfig, members *Membership) (*Raft, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Raft{cfg: cfg, log: log, members: members, addrName: map[string]string{}, downFrom: map[string]time.Time{}, badAt: map[string]time.Time{}}
	tc := transport.DefaultConfig()
	tc.Logger = log.With("component", "transport")
	tc.NameOf = r.nameOf
	bind := cfg.BindAddr
	if bind == "" {
		bind = "0.0.0.0"
	}
	adv := &net.TCPAddr{IP: cfg.AdvertiseAddr.AsSlice(), Port: cfg.Port}
	mux, err := tc.Listen(net.JoinHostPort(bind, strconv.Itoa(cfg.Port)), cfg.Creds, adv)
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	sc := cfg.Store
	sc.NodeName = cfg.NodeName
	sc.Logger = log
	st, err := store.Open(sc, mux.Raft())
	if err != nil {
		mux.Close()
		return nil, err
	}
	r.mux, r.store = mux, st
	mux2 := http.NewServeMux()
	mux2.HandleFunc("POST /rpc/v1/apply", r.handleApply)
	mux2.HandleFunc("POST /rpc/v1/readindex", r.handleReadIndex)
	mux2.HandleFunc("POST /rpc/v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})
	r.rpcMux = mux2
	r.rpc = &http.Server{Handler: http.MaxBytesHandler(mux2, 4<<20), ReadHeaderTimeout: 5 * time.Second}
	return r, nil
}

// HandleRPC adds a node-to-node RPC endpoint (before Run). Requests come
// over mutual TLS; pki.PeerNode(*req.TLS) names the caller.
func (r *Raft) HandleRPC(pattern string, h http.HandlerFunc) { r.rpcMux.HandleFunc(pattern, h) }

// Call POSTs body to path on the named node and decodes the JSON answer.
func (r *Raft) Call(ctx context.Context, node, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	r.mu.Lock()
	var addr string
	for a, n := range r.addrName {
		if n == node {
			addr = a
		}
	}
	r.mu.Unlock()
	if addr == "" {
		return fmt.Errorf("node %s: no raft address known", node)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	resp, err := r.mux.RPCClient().Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("node %s: %s: %s", node, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out)
}

// Store is the local replica.
func (r *Raft) Store() *store.Store { return r.store }

// Addr is this node's raft address.
func (r *Raft) Addr() string {
	return netip.AddrPortFrom(r.cfg.AdvertiseAddr, uint16(r.cfg.Port)).String()
}

func (r *Raft) nameOf(addr string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.addrName[addr]
	return n, ok
}

// Run serves RPC, bootstraps when the site is new, and on the leader keeps
// the raft membership in step with the site, until ctx is done.
func (r *Raft) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if err := r.rpc.Serve(r.mux.RPC()); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("raft rpc: %w", err)
		}
	}()
	_ = r.members.SetTag(TagRaftPort, strconv.Itoa(r.cfg.Port))
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go r.watchHeartbeats(wctx)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.step()
		select {
		case <-ctx.Done():
			return r.close()
		case err := <-errc:
			r.close()
			return err
		case <-t.C:
		}
	}
}

func (r *Raft) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	errs = append(errs, r.store.Close())
	if err := r.rpc.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, r.mux.Close())
	return errors.Join(errs...)
}

// peers lists the edged members that run raft.
func (r *Raft) peers() []store.Peer {
	mems, _ := r.members.Members()
	now := time.Now()
	var out []store.Peer
	names := map[string]string{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range mems {
		if m.Tags[api.TagRole] != api.RoleEdged {
			continue
		}
		host, _, err := net.SplitHostPort(m.Addr)
		if err != nil {
			continue
		}
		addr := ""
		if m.Tags[TagRaftPort] != "" {
			// No raft_port tag yet (a node that just started) still counts
			// as a member: it is not dead, only not addable yet.
			addr = net.JoinHostPort(host, m.Tags[TagRaftPort])
			names[addr] = m.Name
		}
		p := store.Peer{Name: m.Name, Addr: addr, Alive: m.Status == api.StatusAlive || m.Status == api.StatusSuspect, Left: m.Status == api.StatusLeft, Proto: m.Tags[api.TagProto]}
		if p.Alive {
			delete(r.downFrom, m.Name)
			if m.Status == api.StatusAlive {
				from := m.Since
				if bad := r.badAt[m.Name]; bad.After(from) {
					from = bad
				}
				if !from.IsZero() {
					p.Up = max(now.Sub(from), 0)
				}
			}
		} else {
			since, ok := r.downFrom[m.Name]
			if !ok {
				since = m.Since
				if since.IsZero() {
					since = now
				}
				r.downFrom[m.Name] = since
			}
			p.Down = now.Sub(since)
		}
		out = append(out, p)
	}
	names[r.Addr()] = r.cfg.NodeName
	r.addrName = names
	return out
}

func (r *Raft) step() {
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	if r.stopping {
		return
	}
	peers := r.peers()
	if r.store.HasState() {
		_ = r.members.SetTag(TagRaftState, "1")
	}
	if r.store.IsLeader() {
		r.manage(peers)
		r.releaseLocks(peers)
		return
	}
	if r.store.HasState() {
		return
	}
	r.maybeBootstrap(peers)
}

// maybeBootstrap creates the cluster once BootstrapExpect edged nodes are
// alive and none of them is already in a cluster. Every node computes the
// same first voters (the lowest names), so they bootstrap the same
// configuration; the others wait to be added by the leader.
func (r *Raft) maybeBootstrap(peers []store.Peer) {
	mems, idx := r.members.Members()
	if idx != r.memberIndex || r.memberSince.IsZero() {
		r.memberIndex, r.memberSince = idx, time.Now()
		return
	}
	if time.Since(r.memberSince) < bootstrapSettle {
		return
	}
	for _, m := range mems {
		if m.Tags[TagRaftState] == "1" && m.Status == api.StatusAlive {
			return // a cluster exists: its leader adds us
		}
	}
	var alive []store.Peer
	for _, p := range peers {
		if p.Alive {
			alive = append(alive, p)
		}
	}
	if len(alive) < r.cfg.BootstrapExpect {
		return
	}
	slices.SortFunc(alive, func(a, b store.Peer) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	first := alive[:r.cfg.BootstrapExpect]
	if !slices.ContainsFunc(first, func(p store.Peer) bool { return p.Name == r.cfg.NodeName }) {
		return
	}
	var servers []raft.Server
	for _, p := range first {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.Name), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
	}
	r.log.Info("bootstrapping the site's raft cluster", "voters", len(servers))
	if err := r.store.Bootstrap(servers); err != nil {
		r.log.Warn("bootstrap failed", "err", err)
	}
}

// manage applies PlanMembership on the leader.
func (r *Raft) manage(peers []store.Peer) {
	f := r.store.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	pol := store.PromotePolicy{DeadAfter: r.cfg.DeadAfter, StableAfter: r.cfg.StableAfter}
	for _, a := range store.PlanMembership(f.Configuration(), peers, r.cfg.NodeName, pol) {
		var err error
		rf := r.store.Raft()
		if a.Op == store.ActAddNonvoter || a.Op == store.ActPromote || a.Op == store.ActReaddress {
			// Only a peer that answers over mutual TLS (site credentials,
			// reachable from here) gets a replica or a vote.
			if perr := r.ping(a.Addr); perr != nil {
				r.markBad(a.ID)
				r.log.Debug("not adding an unreachable or foreign server", "op", a.Op, "server", a.ID, "err", perr)
				continue
			}
		}
		switch a.Op {
		case store.ActAddNonvoter:
			err = rf.AddNonvoter(raft.ServerID(a.ID), raft.ServerAddress(a.Addr), 0, 5*time.Second).Error()
		case store.ActPromote:
			err = rf.AddVoter(raft.ServerID(a.ID), raft.ServerAddress(a.Addr), 0, 5*time.Second).Error()
		case store.ActDemote:
			err = rf.DemoteVoter(raft.ServerID(a.ID), 0, 5*time.Second).Error()
		case store.ActRemove:
			err = rf.RemoveServer(raft.ServerID(a.ID), 0, 5*time.Second).Error()
		case store.ActReaddress:
			if a.Demote {
				err = rf.DemoteVoter(raft.ServerID(a.ID), 0, 5*time.Second).Error()
			}
			if err == nil {
				// For a server raft knows, AddNonvoter changes only its
				// address: a voter stays a voter.
				err = rf.AddNonvoter(raft.ServerID(a.ID), raft.ServerAddress(a.Addr), 0, 5*time.Second).Error()
			}
			if err == nil {
				// Its stability counts from the move, as for a new node.
				r.markBad(a.ID)
				r.log.Info("raft server moved to its node's new address", "server", a.ID, "addr", a.Addr, "demoted", a.Demote)
			}
		}
		if err != nil {
			r.log.Warn("raft membership change failed", "op", a.Op, "server", a.ID, "err", err)
			return
		}
		r.log.Info("raft membership changed", "op", a.Op, "server", a.ID)
	}
}

// markBad notes that node was just seen unhealthy.
func (r *Raft) markBad(node string) {
	r.mu.Lock()
	r.badAt[node] = time.Now()
	r.mu.Unlock()
}

// watchHeartbeats marks the followers whose raft heartbeats fail, until
// ctx is done: a non-voter that cannot keep up is not stable.
func (r *Raft) watchHeartbeats(ctx context.Context) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.FailedHeartbeatObservation)
		return ok
	})
	rf := r.store.Raft()
	rf.RegisterObserver(obs)
	defer rf.DeregisterObserver(obs)
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-ch:
			if fh, ok := o.Data.(raft.FailedHeartbeatObservation); ok {
				r.markBad(string(fh.PeerID))
			}
		}
	}
}

// releaseLocks frees the lock slots held through nodes that failed or left:
// a lock must not stay taken by a holder that can no longer release it.
func (r *Raft) releaseLocks(peers []store.Peer) {
	st := r.store.State()
	if len(st.Locks) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, p := range peers {
		if p.Left || (!p.Alive && p.Down > 5*time.Second) {
			gone[p.Name] = true
		}
	}
	done := map[string]bool{}
	for _, l := range st.Locks {
		for _, h := range l.Holders {
			if gone[h.Node] && !done[h.Node] {
				done[h.Node] = true
				if _, err := r.store.Apply(store.Command{Op: store.OpUnlockNode, Node: h.Node, Time: time.Now().UTC()}); err == nil {
					r.log.Warn("released the locks held through a node that is gone", "node", h.Node)
				}
			}
		}
	}
}

// ping checks that the node at addr answers node RPC over mutual TLS.
func (r *Raft) ping(addr string) error {
	if addr == "" {
		return errors.New("no raft address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/rpc/v1/ping", nil)
	if err != nil {
		return err
	}
	resp, err := r.mux.RPCClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s: %s", addr, resp.Status)
	}
	return nil
}

// forwardTimeout bounds a command forwarded to the leader.
const forwardTimeout = 10 * time.Second

// Apply commits cmd: on the leader directly, elsewhere through the leader's
// RPC. Without a reachable leader it fails with store.ErrNoQuorum.
func (r *Raft) Apply(ctx context.Context, cmd store.Command) (res store.Result, err error) {
	if r.cfg.OnApply != nil {
		defer func(start time.Time) { r.cfg.OnApply(time.Since(start), err == nil || res.Err != "") }(time.Now())
	}
	if cmd.Time.IsZero() {
		cmd.Time = time.Now().UTC()
	}
	if err := r.gate(cmd); err != nil {
		return store.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	if r.store.IsLeader() {
		return r.store.Apply(cmd)
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return store.Result{}, err
	}
	out, err := r.toLeader(ctx, "/rpc/v1/apply", body)
	if err != nil {
		return store.Result{}, err
	}
	if out.Error != "" {
		if out.NoQuorum {
			return out.Result, fmt.Errorf("%w (%s)", store.ErrNoQuorum, out.Error)
		}
		return out.Result, store.ResultError(out.Error)
	}
	return out.Result, nil
}

// toLeader posts body to path on the leader's node RPC and decodes its
// answer. Without a leader, or when it cannot be reached, it fails with
// store.ErrNoQuorum.
func (r *Raft) toLeader(ctx context.Context, path string, body []byte) (rpcAnswer, error) {
	addr, _ := r.store.Leader()
	if addr == "" {
		return rpcAnswer{}, store.ErrNoQuorum
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return rpcAnswer{}, err
	}
	resp, err := r.mux.RPCClient().Do(req)
	if err != nil {
		return rpcAnswer{}, fmt.Errorf("%w (leader %s: %v)", store.ErrNoQuorum, addr, err)
	}
	defer resp.Body.Close()
	var out rpcAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return rpcAnswer{}, fmt.Errorf("raft rpc: leader %s: %w", addr, err)
	}
	return out, nil
}

// Sync waits until this node's replica holds every command the leader had
// applied when Sync was called (a read index, as in the raft thesis),
// so that a read that follows sees every write that finished before it
// began, whichever node made it. It fails with store.ErrNoQuorum when no
// leader answers.
func (r *Raft) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	var index uint64
	if r.store.IsLeader() {
		var err error
		if index, err = r.readIndex(); err != nil {
			return err
		}
	} else {
		out, err := r.toLeader(ctx, "/rpc/v1/readindex", nil)
		if err != nil {
			return err
		}
		if out.Error != "" {
			return fmt.Errorf("%w (%s)", store.ErrNoQuorum, out.Error)
		}
		index = out.Index
	}
	// index is the last command the leader's FSM applied, so wait for this
	// FSM's own index: raft's AppliedIndex counts entries handed to the FSM,
	// which may not have applied them yet (under load, a plan then missed
	// the confirm just before it: a false conflict). Every command and
	// every snapshot restore moves the FSM's index and notifies.
	for {
		ch := r.store.Changed()
		if r.store.Index() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w (this node's replica is behind the leader: index %d of %d)", store.ErrNoQuorum, r.store.Index(), index)
		}
	}
}

// readIndex is, on the leader, the index of the last command it applied,
// after a barrier: the barrier commits in this leader's term (so a leader
// just elected has applied everything its predecessors committed) and
// proves that a quorum still follows it. Not the commit index: that is
// the barrier's, which followers learn of only at the next AppendEntries.
func (r *Raft) readIndex() (uint64, error) {
	if err := r.store.Raft().Barrier(forwardTimeout).Error(); err != nil {
		return 0, fmt.Errorf("%w (%v)", store.ErrNoQuorum, err)
	}
	return r.store.Index(), nil
}

func (r *Raft) handleReadIndex(w http.ResponseWriter, _ *http.Request) {
	var ans rpcAnswer
	if !r.store.IsLeader() {
		ans.Error, ans.NoQuorum = "not the leader", true
	} else if idx, err := r.readIndex(); err != nil {
		ans.Error, ans.NoQuorum = err.Error(), true
	} else {
		ans.Index = idx
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// rpcAnswer is the leader's answer to a forwarded command (Result) or a
// read index (Index).
type rpcAnswer struct {
	Result   store.Result `json:"result"`
	Index    uint64       `json:"index,omitempty"`
	Error    string       `json:"error,omitempty"`
	NoQuorum bool         `json:"no_quorum,omitempty"`
}

func (r *Raft) handleApply(w http.ResponseWriter, req *http.Request) {
	var cmd store.Command
	if err := json.NewDecoder(io.LimitReader(req.Body, 4<<20)).Decode(&cmd); err != nil {
		http.Error(w, "bad command", http.StatusBadRequest)
		return
	}
	// A node reports only for itself.
	if cmd.Op == store.OpNode && req.TLS != nil && pki.PeerNode(*req.TLS) != cmd.Node {
		http.Error(w, "a node may only report its own progress", http.StatusForbidden)
		return
	}
	var ans rpcAnswer
	if !r.store.IsLeader() {
		ans.Error, ans.NoQuorum = "not the leader", true
	} else if err := r.gate(cmd); err != nil {
		ans.Error = err.Error()
	} else {
		res, err := r.store.Apply(cmd)
		ans.Result = res
		if err != nil {
			ans.Error = err.Error()
			ans.NoQuorum = errors.Is(err, store.ErrNoQuorum)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// Status is the raft section of `edgectl status`.
func (r *Raft) Status() api.Raft {
	st := api.Raft{Role: "none"}
	addr, id := r.store.Leader()
	st.Leader = id
	_ = addr
	rf := r.store.Raft()
	switch rf.State() {
	case raft.Leader:
		st.Role = "leader"
	case raft.Follower:
		st.Role = "follower"
	case raft.Candidate:
		st.Role = "candidate"
	}
	if f := rf.GetConfiguration(); f.Error() == nil {
		if len(f.Configuration().Servers) == 0 {
			st.Role = "forming"
		}
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				st.Voters = append(st.Voters, string(s.ID))
			} else if string(s.ID) == r.cfg.NodeName && st.Role == "follower" {
				st.Role = "nonvoter"
			}
		}
	}
	slices.Sort(st.Voters)
	st.Quorum = st.Leader != ""
	return st
}

// Quiesce prepares a graceful stop, before this node leaves the cluster: the
// membership loop makes no more decisions (a leader that saw itself leave
// would shrink the voters it is about to abandon), and a leader hands the
// leadership to another voter, so the site has a leader again at once
// instead of after an election timeout. It returns when both are done, or
// when the transfer failed (logged; the others then elect a leader as after
// a crash).
func (r *Raft) Quiesce() {
	r.stepMu.Lock()
	r.stopping = true
	r.stepMu.Unlock()
	if !r.store.IsLeader() {
		return
	}
	start := time.Now()
	if err := r.store.TransferLeadership(); err != nil {
		r.log.Warn("leadership transfer before stopping failed; the others will elect a leader", "err", err)
		return
	}
	r.log.Info("leadership handed over before stopping", "took", time.Since(start).Round(time.Millisecond))
}
