package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
)

// Service is the DNS-SD service type edged advertises.
const Service = "_edged._tcp"

// TXT record keys.
const (
	TXTSite       = "site"
	TXTGossipPort = "gossip_port"
	TXTVersion    = "version"
	TXTKeyID      = "key_id"
	TXTProto      = "proto"
)

// Config configures a Discovery.
type Config struct {
	// Instance is the advertised instance name: the node name.
	Instance string
	// Site is advertised in TXT; sightings of other sites are dropped.
	Site string
	// GossipPort is advertised as the SRV port and in TXT.
	GossipPort int
	// Version, KeyID and Proto (the protocol range, as the serf tag
	// "proto" has it) are advertised in TXT for diagnostics.
	Version string
	KeyID   string
	Proto   string
	// Interface limits advertising and browsing to one interface; empty
	// means every up, multicast-capable interface.
	Interface string
	// Domain is the mDNS domain, "local." by default.
	Domain string
	// TTL of the advertised records, in seconds.
	TTL uint32
	// Renew is how often the browse session is started afresh, so that
	// every peer is reported again (the resolver reports each one once per
	// session). Peers that start later announce themselves and are seen at
	// once; the renewal is the safety net, and every renewal makes every
	// node of the site answer, so it is kept slow.
	Renew time.Duration
	// Logger receives discovery's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the default timings.
func DefaultConfig() Config {
	return Config{Domain: "local.", TTL: 120, Renew: time.Minute}
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []error
	if c.Instance == "" {
		errs = append(errs, errors.New("discovery: instance name is empty"))
	}
	if c.Site == "" {
		errs = append(errs, errors.New("discovery: site is empty"))
	}
	if c.GossipPort < 1 || c.GossipPort > 65535 {
		errs = append(errs, fmt.Errorf("discovery: gossip port %d out of range", c.GossipPort))
	}
	if c.Renew <= 0 {
		errs = append(errs, errors.New("discovery: renew period must be positive"))
	}
	return errors.Join(errs...)
}

// Sighting is one peer seen over mDNS.
type Sighting struct {
	Instance string
	Site     string
	// Addrs are the advertised addresses, IPv4 first.
	Addrs []netip.Addr
	// Port is the peer's gossip port.
	Port    int
	Version string
	KeyID   string
	// Proto is the peer's protocol range; "" for a release before
	// protocol versions (protocol 1).
	Proto string
	Seen  time.Time
}

// JoinAddrs returns host:port strings to join the peer at, IPv4 first.
func (s Sighting) JoinAddrs() []string {
	out := make([]string, 0, len(s.Addrs))
	for _, a := range s.Addrs {
		out = append(out, netip.AddrPortFrom(a, uint16(s.Port)).String())
	}
	return out
}

// Discovery advertises the node and browses for peers.
type Discovery struct {
	cfg Config // KeyID guarded by mu (SetKeyID)
	log *slog.Logger

	mu  sync.Mutex
	adv *advertiser // while Run advertises
}

// New returns a Discovery; it does nothing until Run.
func New(cfg Config) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Domain == "" {
		cfg.Domain = "local."
	}
	return &Discovery{cfg: cfg, log: log}, nil
}

// TXT returns the TXT strings this node advertises.
func (d *Discovery) TXT() []string {
	txt := []string{
		TXTSite + "=" + d.cfg.Site,
		TXTGossipPort + "=" + strconv.Itoa(d.cfg.GossipPort),
	}
	if d.cfg.Version != "" {
		txt = append(txt, TXTVersion+"="+d.cfg.Version)
	}
	if d.cfg.KeyID != "" {
		txt = append(txt, TXTKeyID+"="+d.cfg.KeyID)
	}
	if d.cfg.Proto != "" {
		txt = append(txt, TXTProto+"="+d.cfg.Proto)
	}
	return txt
}

// Run advertises this node and reports every same-site sighting to found
// until ctx is done. found is called from one goroutine at a time. Run
// returns nil when ctx is cancelled.
func (d *Discovery) Run(ctx context.Context, found func(Sighting)) error {
	ifaces, err := d.interfaces()
	if err != nil {
		return err
	}
	adv := &advertiser{d: d, ifaces: ifaces}
	d.mu.Lock()
	d.adv = adv
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.adv = nil
		d.mu.Unlock()
		adv.stop()
	}()
	if err := adv.refresh(); err != nil {
		return err
	}

	backoff := time.Second
	for {
		err := d.browse(ctx, ifaces, found)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A browse that cannot start (interface gone, no multicast
			// route yet at boot) is retried with a bounded backoff.
			d.log.Warn("browse failed, retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, d.cfg.Renew)
			continue
		}
		backoff = time.Second
		// Addresses change (DHCP, a cable moved): advertise the new ones.
		if err := adv.refresh(); err != nil {
			d.log.Warn("advertise failed, retrying", "err", err)
		}
	}
}

// advertiser keeps this node's mDNS records in step with its addresses.
type advertiser struct {
	d      *Discovery
	ifaces []net.Interface

	mu     sync.Mutex // refresh and stop run from Run and SetKeyID
	server *zeroconf.Server
	ips    []string
	txt    []string
	done   bool // stopped for good: refresh does nothing
}

// refresh (re)registers the service when the addresses or the TXT changed.
func (a *advertiser) refresh() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil
	}
	ips, err := addrsOf(a.ifaces)
	if err != nil {
		return err
	}
	a.d.mu.Lock()
	cfg, txt := a.d.cfg, a.d.TXT()
	a.d.mu.Unlock()
	if a.server != nil && slices.Equal(ips, a.ips) && slices.Equal(txt, a.txt) {
		return nil
	}
	a.stopLocked()
	if len(ips) == 0 {
		return fmt.Errorf("discovery: no address to advertise on %s", ifaceNames(a.ifaces))
	}
	// The SRV target is a host name of our own, not the OS hostname: boxes
	// fresh from the factory often share one, and a shared name would mix
	// their addresses up in other resolvers (avahi among them).
	server, err := zeroconf.RegisterProxy(cfg.Instance, Service, cfg.Domain, cfg.GossipPort, hostLabel(cfg.Instance), ips, txt, a.ifaces)
	if err != nil {
		return fmt.Errorf("discovery: advertise %s on %s: %w", Service, ifaceNames(a.ifaces), err)
	}
	server.TTL(cfg.TTL)
	a.server, a.ips, a.txt = server, ips, txt
	a.d.log.Info("advertising", "service", Service, "instance", cfg.Instance, "interfaces", ifaceNames(a.ifaces), "addrs", ips)
	return nil
}

func (a *advertiser) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done = true
	a.stopLocked()
}

func (a *advertiser) stopLocked() {
	if a.server != nil {
		a.server.Shutdown()
		a.server = nil
	}
}

// addrsOf lists the IPv4 and global IPv6 addresses of ifaces (nil: every
// up, multicast-capable, non-loopback interface), sorted.
func addrsOf(ifaces []net.Interface) ([]string, error) {
	if ifaces == nil {
		all, err := net.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("discovery: list interfaces: %w", err)
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
				ifaces = append(ifaces, ifi)
			}
		}
	}
	var ips []string
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
			if ip := p.Addr(); ip.Is4() || ip.IsGlobalUnicast() {
				if usable(ip) {
					ips = append(ips, ip.String())
				}
			}
		}
	}
	slices.Sort(ips)
	return slices.Compact(ips), nil
}

// hostLabel turns a node name into a DNS label for the SRV target.
func hostLabel(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// browse runs one browse session for cfg.Renew.
func (d *Discovery) browse(ctx context.Context, ifaces []net.Interface, found func(Sighting)) error {
	opts := []zeroconf.ClientOption{}
	if ifaces != nil {
		opts = append(opts, zeroconf.SelectIfaces(ifaces))
	}
	resolver, err := zeroconf.NewResolver(opts...)
	if err != nil {
		return fmt.Errorf("discovery: resolver: %w", err)
	}
	// Jitter, so that nodes started together do not all renew (and make
	// every node answer) at the same instant.
	renew := d.cfg.Renew - d.cfg.Renew/5 + time.Duration(rand.Int64N(int64(d.cfg.Renew/5)*2+1))
	sctx, cancel := context.WithTimeout(ctx, renew)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 64)
	if err := resolver.Browse(sctx, Service, d.cfg.Domain, entries); err != nil {
		return fmt.Errorf("discovery: browse %s: %w", Service, err)
	}
	for {
		select {
		case e, ok := <-entries:
			if !ok {
				// The resolver closes the channel when the session ends.
				return nil
			}
			s, why := Filter(e, d.cfg.Site, d.cfg.Instance, time.Now())
			if why != "" {
				d.log.Debug("sighting ignored", "instance", e.Instance, "reason", why)
				continue
			}
			found(s)
		case <-sctx.Done():
			// Drain what the resolver may still deliver, then end.
			for range entries {
			}
			return nil
		}
	}
}

func (d *Discovery) interfaces() ([]net.Interface, error) {
	if d.cfg.Interface == "" {
		return nil, nil // zeroconf picks every multicast-capable interface
	}
	ifi, err := net.InterfaceByName(d.cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("discovery: interface %q: %w", d.cfg.Interface, err)
	}
	return []net.Interface{*ifi}, nil
}

func ifaceNames(ifaces []net.Interface) string {
	if ifaces == nil {
		return "all"
	}
	names := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		names[i] = ifi.Name
	}
	return strings.Join(names, ",")
}

// Filter turns a resolver entry into a Sighting of a same-site peer. It
// returns a non-empty reason when the entry is to be ignored: another
// site, ourselves, no usable address or a malformed record.
func Filter(e *zeroconf.ServiceEntry, site, self string, now time.Time) (Sighting, string) {
	if e == nil {
		return Sighting{}, "empty entry"
	}
	txt := parseTXT(e.Text)
	s := Sighting{
		Instance: unescape(e.Instance),
		Site:     txt[TXTSite],
		Port:     e.Port,
		Version:  txt[TXTVersion],
		KeyID:    txt[TXTKeyID],
		Proto:    txt[TXTProto],
		Seen:     now,
	}
	switch {
	case s.Instance == "":
		return Sighting{}, "no instance name"
	case s.Instance == self:
		return Sighting{}, "ourselves"
	case s.Site == "":
		return Sighting{}, "no site in TXT"
	case s.Site != site:
		return Sighting{}, "other site " + strconv.Quote(s.Site)
	}
	if p, ok := txt[TXTGossipPort]; ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Sighting{}, "bad gossip_port in TXT"
		}
		s.Port = n
	}
	if s.Port < 1 || s.Port > 65535 {
		return Sighting{}, "no port"
	}
	for _, ip := range e.AddrIPv4 {
		if a, ok := netip.AddrFromSlice(ip); ok && usable(a.Unmap()) {
			s.Addrs = append(s.Addrs, a.Unmap())
		}
	}
	for _, ip := range e.AddrIPv6 {
		// Link-local IPv6 loses its zone in the resolver: unusable.
		if a, ok := netip.AddrFromSlice(ip); ok && usable(a) && !a.IsLinkLocalUnicast() {
			s.Addrs = append(s.Addrs, a)
		}
	}
	if len(s.Addrs) == 0 {
		return Sighting{}, "no usable address"
	}
	slices.SortStableFunc(s.Addrs, func(a, b netip.Addr) int {
		if a.Is4() == b.Is4() {
			return 0
		}
		if a.Is4() {
			return -1
		}
		return 1
	})
	s.Addrs = slices.Compact(s.Addrs)
	return s, ""
}

func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback()
}

func parseTXT(txt []string) map[string]string {
	m := make(map[string]string, len(txt))
	for _, t := range txt {
		k, v, _ := strings.Cut(t, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			continue
		}
		if _, dup := m[k]; !dup { // RFC 6763 6.4: first one wins
			m[k] = v
		}
	}
	return m
}

// unescape undoes the DNS escaping the resolver leaves in instance names
// ("node\ 1" -> "node 1").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
