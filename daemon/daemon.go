package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"edge/coord"
	"edge/coord/change"
	"edge/daemon/api"
	"edge/discovery"
	"edge/hardware"
	"edge/hardware/line"
	"edge/hardware/modbus"
	"edge/hardware/netlink"
	"edge/hardware/sim"
	"edge/internal/pki"
	"edge/systemd"
)

// ErrConfig marks errors that a restart cannot fix: the config, the key, or
// the node's identity must change first. edged exits with a distinct code
// for them so systemd does not restart it in a loop.
var ErrConfig = errors.New("configuration error")

// Daemon is one running edged.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	level   *slog.LevelVar
	notify  *systemd.Notifier
	started time.Time

	key        []byte
	member     *coord.Membership
	joiner     *coord.Joiner
	discovery  *discovery.Discovery
	api        *server
	advertised netip.Addr
	hw         *hardware.Manager
	creds      *pki.Credentials
	raftCfg    *coord.RaftConfig
	raft       *coord.Raft
	agent      *change.Agent
	recovery   *coord.KeyRecovery // nil without TLS credentials
	events     *eventLog
	metrics    *metrics // nil: metrics_address is off

	mu sync.Mutex // guards cfg on reload
}

// Options are the parts of a daemon that do not come from the config file.
type Options struct {
	// Logger receives every log; its level follows the config's log_level
	// when Level is set.
	Logger *slog.Logger
	Level  *slog.LevelVar
	// Notifier talks to systemd; nil means NewNotifier().
	Notifier *systemd.Notifier
	// Membership and Joiner override timings (tests shorten them); zero
	// values mean the defaults.
	Membership *coord.MembershipConfig
	Joiner     *coord.JoinerConfig
	Discovery  *discovery.Config
	// Raft overrides raft timings (tests shorten them).
	Raft *coord.RaftConfig
	// Registry holds the device drivers; nil means Drivers().
	Registry *hardware.Registry
	// Supervisor overrides device supervision timings.
	Supervisor *hardware.SupervisorConfig
}

// Drivers returns the registry of every device driver edged ships.
func Drivers() *hardware.Registry {
	r := hardware.NewRegistry()
	r.Register("sim", sim.OpenMemory)
	r.Register("netlink", netlink.Open)
	r.Register("modbus", modbus.Open)
	r.Register("line", line.Open)
	return r
}

// New checks cfg and prepares a daemon. It opens nothing.
func New(cfg Config, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Level != nil {
		opts.Level.Set(parseLevel(cfg.LogLevel))
	}
	n := opts.Notifier
	if n == nil {
		n = systemd.NewNotifier()
	}
	key, err := LoadKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fi, err := os.Stat(cfg.KeyFile); err == nil && fi.Mode().Perm()&0o007 != 0 {
		// root:edged 0640 is the layout the unit needs (edged runs as
		// user edged); only access for everyone is worth a warning.
		log.Warn("key_file is readable by every user; chmod 640 it (owner root, group edged)", "key_file", cfg.KeyFile, "mode", fi.Mode().Perm().String())
	}
	d := &Daemon{cfg: cfg, log: log, level: opts.Level, notify: n, key: key, started: time.Now(), events: newEventLog()}

	adv, err := advertiseAddr(cfg)
	if err != nil {
		return nil, err // not ErrConfig: the address may come up, so a restart can fix it
	}
	d.advertised = adv

	mc := coord.DefaultMembershipConfig()
	if opts.Membership != nil {
		mc = *opts.Membership
	}
	mc.NodeName = cfg.Node
	mc.AdvertiseAddr = adv
	if cfg.Interface != "" || cfg.AdvertiseAddr.IsValid() {
		mc.BindAddr = adv.String()
	}
	mc.Port = cfg.GossipPort
	mc.Key = key
	if err := d.gossipKeys(&mc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	mc.SnapshotPath = filepath.Join(cfg.DataDir, "serf.snapshot")
	mc.Tags = map[string]string{
		api.TagRole:       api.RoleEdged,
		api.TagSite:       cfg.Site,
		api.TagVersion:    api.Version,
		api.TagProto:      api.ThisProto().String(),
		api.TagGossipPort: strconv.Itoa(cfg.GossipPort),
	}
	mc.Logger = log.With("part", "membership")
	if d.member, err = coord.NewMembership(mc); err != nil {
		return nil, err
	}
	d.member.OnEvent(d.memberEvent)

	jc := coord.DefaultJoinerConfig()
	if opts.Joiner != nil {
		jc = *opts.Joiner
	}
	jc.Seeds = cfg.Seeds
	jc.KeyID = coord.KeyID(mc.Key)
	if cfg.TLSCA != "" {
		jc.Recover = d.keyringStuck
	}
	jc.Logger = log.With("part", "joiner")
	if d.joiner, err = coord.NewJoiner(jc, d.member); err != nil {
		return nil, err
	}

	dc := discovery.DefaultConfig()
	if opts.Discovery != nil {
		dc = *opts.Discovery
	}
	dc.Instance = cfg.Node
	dc.Site = cfg.Site
	dc.GossipPort = cfg.GossipPort
	dc.Version = api.Version
	dc.Proto = api.ThisProto().String()
	dc.KeyID = coord.KeyID(mc.Key)
	dc.Interface = cfg.Interface
	dc.Logger = log.With("part", "discovery")
	if d.discovery, err = discovery.New(dc); err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = Drivers()
	}
	sc := hardware.DefaultSupervisorConfig()
	if opts.Supervisor != nil {
		sc = *opts.Supervisor
	}
	if cfg.MetricsAddress != "" {
		d.metrics = d.newMetrics()
		sc.Observe = d.metrics.observeExchange
	}
	if d.hw, err = hardware.NewManager(sc, reg, log.With("part", "hardware")); err != nil {
		return nil, err
	}
	if err := d.hw.Check(cfg.Devices); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, cfg.Path, err)
	}
	if cfg.TLSCA != "" {
		creds, err := pki.Load(cfg.TLSCA, cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if err := credsMatch(cfg, creds); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		rc := coord.DefaultRaftConfig()
		if opts.Raft != nil {
			rc = *opts.Raft
		}
		rc.NodeName, rc.Site, rc.AdvertiseAddr, rc.Port = cfg.Node, cfg.Site, adv, cfg.RaftPortOrDefault()
		if mc.BindAddr != "" {
			rc.BindAddr = mc.BindAddr
		}
		rc.Creds = creds
		rc.BootstrapExpect = cfg.BootstrapExpect
		rc.Store.Dir = filepath.Join(cfg.DataDir, "raft")
		rc.Logger = log.With("part", "raft")
		if d.metrics != nil {
			rc.OnApply = d.metrics.observeApply
		}
		if err := rc.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if err := checkRecovery(rc); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		d.creds, d.raftCfg = creds, &rc
	} else {
		log.Info("raft is off on this node: no tls_ca/tls_cert/tls_key (create them with `edgectl tls`)")
		log.Info("gossip keyring recovery is off: no TLS credentials to fetch the site's keyring with; " +
			"if the site rotates its gossip key while this node is down, this node cannot rejoin until the site's key is installed on it (edgectl keys install KEY, then edgectl keys use KEY)")
	}
	d.api = newServer(d, log.With("part", "api"))
	return d, nil
}

// Run starts edged and keeps it running until ctx is done; then it leaves
// the cluster, stops discovery and closes the socket. Cancellation is not an
// error: Run returns nil after a clean stop.
func (d *Daemon) Run(ctx context.Context) error {
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := d.metrics.listen(); err != nil {
		return err
	}
	defer d.metrics.close()
	if err := d.member.Start(); err != nil {
		return err
	}
	if d.raftCfg != nil {
		r, err := coord.NewRaft(*d.raftCfg, d.member)
		if err != nil {
			_ = d.member.Run(canceled()) // leave nothing behind
			return err
		}
		d.raft = r
		d.rpcHandlers()
		r.ServeKeyring()
		d.recovery = coord.NewKeyRecovery(r, keyringAsk, d.log.With("part", "keyring"))
		connected := func() bool { l, _ := r.Store().Leader(); return l != "" }
		d.agent = change.NewAgent(change.AgentConfig{Node: d.cfg.Node, Base: d.cfg.Devices, Connected: connected, Logger: d.log.With("part", "agent")},
			r.Store(), r, d.hw, change.NewJournal(filepath.Join(d.cfg.DataDir, "journal.json")))
	}
	if err := d.api.listen(d.cfg.Socket); err != nil {
		_ = d.member.Run(canceled()) // leave nothing behind
		return err
	}
	d.log.Info("edged started", "node", d.cfg.Node, "site", d.cfg.Site, "version", api.Version,
		"gossip", d.member.LocalAddr(), "socket", d.cfg.Socket)

	memCtx, stopMember := context.WithCancel(context.Background())
	defer stopMember()
	memDone := make(chan error, 1)
	go func() { memDone <- d.member.Run(memCtx) }()

	partsCtx, stopParts := context.WithCancel(context.Background())
	defer stopParts()
	g, gctx := errgroup.WithContext(partsCtx)
	g.Go(d.api.serve)
	g.Go(func() error { return d.joiner.Run(gctx) })
	g.Go(func() error { return d.member.WatchKeyring(gctx, keyringCheck, d.keyringChanged) })
	if d.recovery != nil {
		g.Go(func() error { return d.recovery.Run(gctx) })
	}
	g.Go(func() error {
		return d.discovery.Run(gctx, func(s discovery.Sighting) {
			d.joiner.Sighted(coord.Candidate{Name: s.Instance, Addrs: s.JoinAddrs(), KeyID: s.KeyID})
		})
	})
	g.Go(func() error { return d.notify.Run(gctx) })
	g.Go(func() error { return d.hw.Run(gctx, d.cfg.Devices) })
	g.Go(func() error { return d.watchDevices(gctx) })
	if d.metrics != nil {
		g.Go(func() error { return d.metrics.run(gctx, d.raft) })
	}
	if d.raft != nil {
		g.Go(func() error { return d.raft.Run(gctx) })
		g.Go(func() error { return d.agent.Run(gctx) })
		g.Go(func() error { return d.watchChanges(gctx) })
		cc := change.DefaultControllerConfig()
		cc.Logger = d.log.With("part", "controller")
		cc.Alive = d.member.IsAlive
		ctl := change.NewController(cc, d.raft.Store(), d.raft, d.raft.Store())
		g.Go(func() error { return ctl.Run(gctx) })
	}
	if err := d.notify.Ready(); err != nil {
		d.log.Warn("sd_notify READY failed", "err", err)
	}

	var errs []error
	memberStopped := false
	select {
	case <-ctx.Done():
	case err := <-memDone:
		memberStopped = true
		errs = append(errs, err)
	case <-gctx.Done():
	}
	d.log.Info("edged stopping")
	_ = d.notify.Stopping()
	// 1. hand over the raft leadership, then leave the cluster
	if d.raft != nil && !memberStopped {
		d.raft.Quiesce()
	}
	if !memberStopped {
		stopMember()
		errs = append(errs, <-memDone)
	}
	// 2. stop discovery and the joiner, 3. close the socket
	stopParts()
	errs = append(errs, d.api.close())
	errs = append(errs, g.Wait())
	err := errors.Join(errs...)
	if errors.Is(err, coord.ErrNameConflict) {
		err = fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return err
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Reload re-reads the node config. A bad file changes nothing; settings that
// need a restart are named in the log.
func (d *Daemon) Reload() error {
	_ = d.notify.Reloading()
	defer func() { _ = d.notify.Ready() }()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.Path == "" {
		return nil
	}
	next, err := LoadConfig(d.cfg.Path)
	if err != nil {
		d.log.Error("reload refused; running config kept", "err", err)
		return err
	}
	cur := d.cfg
	var restart []string
	if next.Node != cur.Node {
		restart = append(restart, "node")
	}
	if next.Site != cur.Site {
		restart = append(restart, "site")
	}
	if next.GossipPort != cur.GossipPort {
		restart = append(restart, "gossip_port")
	}
	if next.KeyFile != cur.KeyFile {
		restart = append(restart, "key_file")
	}
	if next.Interface != cur.Interface || next.AdvertiseAddr != cur.AdvertiseAddr {
		restart = append(restart, "interface/advertise_addr")
	}
	if next.DataDir != cur.DataDir || next.Socket != cur.Socket {
		restart = append(restart, "data_dir/socket")
	}
	if fmt.Sprint(next.Seeds) != fmt.Sprint(cur.Seeds) {
		restart = append(restart, "seeds")
	}
	if next.RaftPort != cur.RaftPort {
		restart = append(restart, "raft_port")
	}
	// TLS files: read again (renewed in place, or new paths) and checked
	// now; put in use below, with the rest.
	applyTLS, tlsRestart, err := d.prepareTLS(next)
	if err != nil {
		err = fmt.Errorf("%s: %w", d.cfg.Path, err)
		d.log.Error("reload refused; running config kept", "err", err)
		return err
	}
	if tlsRestart {
		restart = append(restart, tlsOnOff)
	}
	if next.BootstrapExpect != cur.BootstrapExpect {
		restart = append(restart, "bootstrap_expect")
	}
	if next.MetricsAddress != cur.MetricsAddress {
		restart = append(restart, "metrics_address")
	}
	// Devices: checked first, so a bad inventory changes nothing at all.
	if err := d.hw.Check(next.Devices); err != nil {
		err = fmt.Errorf("%s: %w", d.cfg.Path, err)
		d.log.Error("reload refused; running config kept", "err", err)
		return err
	}
	applyTLS()
	if !tlsRestart {
		cur.TLSCA, cur.TLSCert, cur.TLSKey = next.TLSCA, next.TLSCert, next.TLSKey
	}
	if d.agent != nil {
		// The agent lays the site config over the new inventory.
		d.agent.SetBase(next.Devices)
	} else if err := d.hw.Update(next.Devices); err != nil {
		d.log.Error("reload: devices", "err", err)
		return err
	}
	cur.Devices = next.Devices
	if d.level != nil {
		d.level.Set(parseLevel(next.LogLevel))
	}
	cur.LogLevel = next.LogLevel
	d.cfg = cur
	if len(restart) > 0 {
		d.log.Warn("reloaded; these changes take effect after a restart", "keys", restart)
	} else {
		d.log.Info("reloaded", "config", d.cfg.Path)
	}
	return nil
}

// Status implements the API's view of the daemon.
func (d *Daemon) Status() api.Status {
	mems, idx := d.member.Members()
	return api.Status{
		Node: api.Node{
			Name:    d.cfg.Node,
			Site:    d.cfg.Site,
			Version: api.Version,
			Addr:    d.member.LocalAddr(),
			KeyID:   d.member.PrimaryKeyID(),
			Started: d.started,
		},
		Members: mems,
		Devices: d.Devices(),
		Raft:    d.raftStatus(),
		Config:  d.configStatus(),
		Index:   idx,
	}
}

func (d *Daemon) raftStatus() *api.Raft {
	if d.raft == nil {
		return nil
	}
	st := d.raft.Status()
	return &st
}

// DevicesIndex is the device change index.
func (d *Daemon) DevicesIndex() uint64 { return d.hw.Index() }

// WaitDevices blocks until a device changes past index or ctx ends.
func (d *Daemon) WaitDevices(ctx context.Context, index uint64) uint64 { return d.hw.Wait(ctx, index) }

// Devices lists this node's devices.
func (d *Daemon) Devices() []api.Device {
	sts := d.hw.Statuses()
	out := make([]api.Device, 0, len(sts))
	for _, st := range sts {
		dev := api.Device{
			Name: st.Name, Driver: st.Driver, Port: st.Where, State: st.State, InSync: st.InSync,
			Drift: make([]api.Drift, 0, len(st.Drift)), LastError: st.LastError, LastVerified: st.LastVerified,
			Failures: st.Failures, BreakerOpen: st.BreakerOpen,
		}
		for _, dr := range st.Drift {
			dev.Drift = append(dev.Drift, api.Drift(dr))
		}
		if len(st.Actual) > 0 {
			dev.Actual = map[string]any(st.Actual)
		}
		out = append(out, dev)
	}
	return out
}

// Members lists the cluster and the change index.
func (d *Daemon) Members() ([]api.Member, uint64) { return d.member.Members() }

// Wait blocks until membership changes past index or ctx ends.
func (d *Daemon) Wait(ctx context.Context, index uint64) uint64 { return d.member.Wait(ctx, index) }

func parseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// advertiseAddr picks the address peers reach this node at: advertise_addr,
// else the first IPv4 address of interface, else the first IPv4 address of
// any up, multicast-capable, non-loopback interface.
func advertiseAddr(cfg Config) (netip.Addr, error) {
	if cfg.AdvertiseAddr.IsValid() {
		return cfg.AdvertiseAddr, nil
	}
	var ifaces []net.Interface
	if cfg.Interface != "" {
		ifi, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("interface: %q: %w", cfg.Interface, err)
		}
		ifaces = []net.Interface{*ifi}
	} else {
		all, err := net.Interfaces()
		if err != nil {
			return netip.Addr{}, fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 && ifi.Flags&net.FlagMulticast != 0 {
				ifaces = append(ifaces, ifi)
			}
		}
	}
	var v6 netip.Addr
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := p.Addr()
			if ip.Is4() {
				return ip, nil
			}
			if !v6.IsValid() && ip.IsGlobalUnicast() {
				v6 = ip
			}
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	if cfg.Interface != "" {
		return netip.Addr{}, fmt.Errorf("interface: %q has no usable address; set advertise_addr", cfg.Interface)
	}
	return netip.Addr{}, errors.New("no interface with a usable address; set interface or advertise_addr")
}
