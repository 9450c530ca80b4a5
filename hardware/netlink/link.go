package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"edge/hardware"
)

// DefaultTimeout bounds one netlink request when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Compile-time guards.
var (
	_ hardware.Device  = (*Link)(nil)
	_ hardware.Checker = (*Link)(nil)
	_ hardware.Planner = (*Link)(nil)
	_ hardware.Opener  = Open
)

// Link is one network link driven over rtnetlink. It finds the link by name
// on every call, so a link that is deleted and created again (a USB NIC
// replugged) is picked up without reopening.
type Link struct {
	name string
	log  *slog.Logger

	mu sync.Mutex  // guards h
	h  *vnl.Handle // nil once closed
}

// Open returns the link cfg.Link of the daemon's own network namespace. The
// link need not exist yet: Read and Apply report a missing link with an
// error wrapping hardware.ErrDisconnected.
func Open(ctx context.Context, cfg hardware.Config, log *slog.Logger) (hardware.Device, error) {
	return open(ctx, cfg, log, netns.None())
}

// OpenIn is Open for a link in the network namespace ns (tests, or a daemon
// managing another namespace). The caller keeps ownership of ns: the
// netlink socket stays in that namespace after ns is closed.
func OpenIn(ctx context.Context, cfg hardware.Config, log *slog.Logger, ns netns.NsHandle) (*Link, error) {
	return open(ctx, cfg, log, ns)
}

func open(ctx context.Context, cfg hardware.Config, log *slog.Logger, ns netns.NsHandle) (*Link, error) {
	if !validName(cfg.Link) {
		return nil, fmt.Errorf("netlink: device %s: link %q: %w: want a link name (1-15 characters, no '/', ':' or spaces)",
			cfg.Name, cfg.Link, hardware.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netlink %s: open: %w", cfg.Link, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Only the route family: the default opens every family, and some
	// (xfrm, netfilter) are missing under qemu-user or in containers.
	h, err := vnl.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink %s: open rtnetlink socket: %w", cfg.Link, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := h.SetSocketTimeout(timeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink %s: set socket timeout %s: %w", cfg.Link, timeout, err)
	}
	return &Link{name: cfg.Link, log: log.With("link", cfg.Link), h: h}, nil
}

// Name returns the link's name.
func (l *Link) Name() string { return l.name }

// Close releases the netlink socket. It is safe to call twice.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		l.h.Close()
		l.h = nil
	}
	return nil
}

// handle returns the open handle with l.mu held; the caller unlocks.
func (l *Link) handle() (*vnl.Handle, error) {
	l.mu.Lock()
	if l.h == nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlink %s: closed: %w", l.name, hardware.ErrDisconnected)
	}
	return l.h, nil
}

// kernelErr wraps an error of a netlink request op with the sentinel the
// supervisor tells apart: a vanished link is ErrDisconnected, a socket
// timeout ErrTimeout, anything else the kernel refused ErrRejected. The
// errno stays in the chain.
func (l *Link) kernelErr(op string, err error) error {
	var nf vnl.LinkNotFoundError
	switch {
	case errors.As(err, &nf), errors.Is(err, unix.ENODEV):
		return fmt.Errorf("netlink %s: %s: link not found: %w: %w", l.name, op, hardware.ErrDisconnected, err)
	case errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("netlink %s: %s: %w: %w", l.name, op, hardware.ErrTimeout, err)
	}
	return fmt.Errorf("netlink %s: %s: %w: %w", l.name, op, hardware.ErrRejected, err)
}

// lookup finds the link by name.
func (l *Link) lookup(h *vnl.Handle) (vnl.Link, error) {
	link, err := h.LinkByName(l.name)
	if err != nil {
		var nf vnl.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("netlink %s: link %s not found: %w", l.name, l.name, hardware.ErrDisconnected)
		}
		return nil, l.kernelErr("get link", err)
	}
	return link, nil
}

// retryDump runs a dump again when the kernel says it was interrupted by a
// concurrent change.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 5 {
		v, err = dump()
		if !errors.Is(err, vnl.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// Read returns the named settings (all of them when names is empty) as
// the kernel has them now.
func (l *Link) Read(ctx context.Context, names []string) (hardware.Settings, error) {
	if len(names) == 0 {
		names = settingNames
	}
	for _, n := range names {
		if !slices.Contains(settingNames, n) {
			return nil, unknownSetting(l.name, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netlink %s: read: %w", l.name, err)
	}
	h, err := l.handle()
	if err != nil {
		return nil, err
	}
	defer l.mu.Unlock()
	link, err := l.lookup(h)
	if err != nil {
		return nil, err
	}
	out := make(hardware.Settings, len(names))
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("netlink %s: read: %w", l.name, err)
		}
		var v any
		switch n {
		case SettingUp:
			v = link.Attrs().Flags&net.FlagUp != 0
		case SettingMTU:
			v = int64(link.Attrs().MTU)
		case SettingMaster:
			v, err = l.readMaster(h, link)
		case SettingAddresses:
			var ps []netip.Prefix
			ps, err = l.readAddresses(h, link)
			v = formatPrefixes(ps)
		case SettingVLANs:
			var ids []int
			ids, _, err = l.readVLANs(h, link)
			v = vlanNames(l.name, ids)
		}
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

func (l *Link) readMaster(h *vnl.Handle, link vnl.Link) (string, error) {
	idx := link.Attrs().MasterIndex
	if idx == 0 {
		return "", nil
	}
	m, err := h.LinkByIndex(idx)
	if err != nil {
		return "", l.kernelErr(fmt.Sprintf("get master (index %d)", idx), err)
	}
	return m.Attrs().Name, nil
}

// readAddresses returns the managed addresses of link, sorted: permanent
// ones (added by hand or by this driver, not by SLAAC, DHCP or privacy
// extensions) that are not link-local.
func (l *Link) readAddresses(h *vnl.Handle, link vnl.Link) ([]netip.Prefix, error) {
	addrs, err := retryDump(func() ([]vnl.Addr, error) { return h.AddrList(link, vnl.FAMILY_ALL) })
	if err != nil {
		return nil, l.kernelErr("list addresses", err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if a.IPNet == nil || a.Flags&unix.IFA_F_PERMANENT == 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), bits)
		if managed(p) {
			out = append(out, p)
		}
	}
	sortPrefixes(out)
	return slices.Compact(out), nil
}

// readVLANs returns the 802.1Q sub-interfaces of link: their ids, sorted,
// and the links by id.
func (l *Link) readVLANs(h *vnl.Handle, link vnl.Link) ([]int, map[int]vnl.Link, error) {
	links, err := retryDump(h.LinkList)
	if err != nil {
		return nil, nil, l.kernelErr("list links", err)
	}
	idx := link.Attrs().Index
	byID := map[int]vnl.Link{}
	var ids []int
	for _, c := range links {
		v, ok := c.(*vnl.Vlan)
		if !ok || v.ParentIndex != idx {
			continue
		}
		if v.VlanProtocol != vnl.VLAN_PROTOCOL_8021Q && v.VlanProtocol != vnl.VLAN_PROTOCOL_UNKNOWN {
			continue // 802.1ad (QinQ outer tags) are not ours
		}
		ids = append(ids, v.VlanId)
		byID[v.VlanId] = c
	}
	slices.Sort(ids)
	return ids, byID, nil
}

// Apply sets the given settings and leaves the others alone: down first
// when going down, then master, mtu, addresses (extra ones removed, then
// missing ones added), vlans, and up last when going up. Values already in
// place are not written again. Taking the link down keeps its managed IPv6
// addresses (the kernel drops them; Apply puts them back). A failing step does not stop the following
// ones (unless the link is gone); the errors are joined.
func (l *Link) Apply(ctx context.Context, changes hardware.Settings) error {
	want, err := canonical(l.name, changes)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("netlink %s: apply: %w", l.name, err)
	}
	h, err := l.handle()
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	link, err := l.lookup(h)
	if err != nil {
		return err
	}

	up, setUp := want[SettingUp].(bool)
	isUp := link.Attrs().Flags&net.FlagUp != 0
	var steps []func() error
	if setUp && !up && isUp {
		_, addrsGiven := want[SettingAddresses]
		steps = append(steps, func() error { return l.setDown(h, link, !addrsGiven) })
	}
	if m, ok := want[SettingMaster].(string); ok {
		steps = append(steps, func() error { return l.applyMaster(h, link, m) })
	}
	if mtu, ok := want[SettingMTU].(int64); ok && int64(link.Attrs().MTU) != mtu {
		steps = append(steps, func() error {
			if err := h.LinkSetMTU(link, int(mtu)); err != nil {
				return l.kernelErr(fmt.Sprintf("set mtu %d", mtu), err)
			}
			l.log.Debug("applied", "op", fmt.Sprintf("ip link set %s mtu %d", l.name, mtu))
			return nil
		})
	}
	if as, ok := want[SettingAddresses].([]string); ok {
		steps = append(steps, func() error { return l.applyAddresses(h, link, as) })
	}
	if vs, ok := want[SettingVLANs].([]string); ok {
		steps = append(steps, func() error { return l.applyVLANs(h, link, vlanIDs(l.name, vs)) })
	}
	if setUp && up && !isUp {
		steps = append(steps, func() error { return l.setUp(h, link, true) })
	}

	var errs []error
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("netlink %s: apply: %w", l.name, err))
			break
		}
		if err := step(); err != nil {
			errs = append(errs, err)
			if errors.Is(err, hardware.ErrDisconnected) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// setDown takes the link down. Unless net.ipv6.conf.*.keep_addr_on_down
// is set, the kernel drops the link's IPv6 addresses with it; with keep
// set, setDown puts back the managed ones, so that Apply changes only what
// it was given.
func (l *Link) setDown(h *vnl.Handle, link vnl.Link, keep bool) error {
	var before []netip.Prefix
	if keep {
		var err error
		if before, err = l.readAddresses(h, link); err != nil {
			return err
		}
	}
	if err := l.setUp(h, link, false); err != nil {
		return err
	}
	if len(before) == 0 {
		return nil
	}
	after, err := l.readAddresses(h, link)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range before {
		if slices.Contains(after, p) {
			continue
		}
		if err := h.AddrReplace(link, toAddr(p)); err != nil {
			errs = append(errs, l.kernelErr("restore address "+p.String()+" after down", err))
			continue
		}
		l.log.Debug("applied", "op", fmt.Sprintf("ip address replace %s dev %s", p, l.name), "why", "the kernel dropped it on down")
	}
	return errors.Join(errs...)
}

func (l *Link) setUp(h *vnl.Handle, link vnl.Link, up bool) error {
	op, set := "down", h.LinkSetDown
	if up {
		op, set = "up", h.LinkSetUp
	}
	if err := set(link); err != nil {
		return l.kernelErr("set "+op, err)
	}
	l.log.Debug("applied", "op", fmt.Sprintf("ip link set %s %s", l.name, op))
	return nil
}

func (l *Link) applyMaster(h *vnl.Handle, link vnl.Link, master string) error {
	cur, err := l.readMaster(h, link)
	if err != nil {
		return err
	}
	if cur == master {
		return nil
	}
	if master == "" {
		if err := h.LinkSetNoMaster(link); err != nil {
			return l.kernelErr("set nomaster", err)
		}
		l.log.Debug("applied", "op", fmt.Sprintf("ip link set %s nomaster", l.name))
		return nil
	}
	m, err := h.LinkByName(master)
	if err != nil {
		var nf vnl.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("netlink %s: set master %s: %w: no link %s", l.name, master, hardware.ErrRejected, master)
		}
		return l.kernelErr("get master "+master, err)
	}
	if err := h.LinkSetMaster(link, m); err != nil {
		return l.kernelErr("set master "+master, err)
	}
	l.log.Debug("applied", "op", fmt.Sprintf("ip link set %s master %s", l.name, master))
	return nil
}

// applyAddresses removes the managed addresses not in want, then reads
// again and adds the missing ones: removing a primary IPv4 address can
// take its secondaries with it (promote_secondaries off), and IPv6 cannot
// hold one address with two prefix lengths.
func (l *Link) applyAddresses(h *vnl.Handle, link vnl.Link, want []string) error {
	wantSet := make(map[netip.Prefix]bool, len(want))
	for _, s := range want {
		wantSet[netip.MustParsePrefix(s)] = true
	}
	have, err := l.readAddresses(h, link)
	if err != nil {
		return err
	}
	var errs []error
	removed := false
	for _, p := range have {
		if wantSet[p] {
			continue
		}
		if err := h.AddrDel(link, toAddr(p)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, l.kernelErr("del address "+p.String(), err))
			continue
		}
		removed = true
		l.log.Debug("applied", "op", fmt.Sprintf("ip address del %s dev %s", p, l.name))
	}
	if removed {
		if have, err = l.readAddresses(h, link); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	for _, s := range want {
		p := netip.MustParsePrefix(s)
		if slices.Contains(have, p) {
			continue
		}
		// Replace, not add: it also takes over an address a DHCP or SLAAC
		// client holds (not managed, so not read) and makes it permanent.
		if err := h.AddrReplace(link, toAddr(p)); err != nil {
			errs = append(errs, l.kernelErr("add address "+s, err))
			continue
		}
		l.log.Debug("applied", "op", fmt.Sprintf("ip address replace %s dev %s", s, l.name))
	}
	return errors.Join(errs...)
}

func toAddr(p netip.Prefix) *vnl.Addr {
	a := p.Addr()
	return &vnl.Addr{IPNet: &net.IPNet{
		IP:   net.IP(a.AsSlice()),
		Mask: net.CIDRMask(p.Bits(), a.BitLen()),
	}}
}

// ErrNoVLANs is wrapped (with hardware.ErrNotSupported) when the kernel
// refuses to create a VLAN link because it lacks 8021q.
var ErrNoVLANs = fmt.Errorf("8021q VLANs are not supported by this kernel: %w", hardware.ErrNotSupported)

// applyVLANs deletes the 802.1Q sub-interfaces whose id is not wanted and
// creates the missing ones, named <link>.<id> and left down (a
// sub-interface is a link of its own, configured as its own device).
func (l *Link) applyVLANs(h *vnl.Handle, link vnl.Link, want []int) error {
	have, byID, err := l.readVLANs(h, link)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range have {
		if slices.Contains(want, id) {
			continue
		}
		c := byID[id]
		if err := h.LinkDel(c); err != nil {
			errs = append(errs, l.kernelErr("del vlan "+c.Attrs().Name, err))
			continue
		}
		l.log.Debug("applied", "op", fmt.Sprintf("ip link del %s", c.Attrs().Name))
	}
	for _, id := range want {
		if slices.Contains(have, id) {
			continue
		}
		name := vlanName(l.name, id)
		v := &vnl.Vlan{
			LinkAttrs:    vnl.LinkAttrs{Name: name, ParentIndex: link.Attrs().Index},
			VlanId:       id,
			VlanProtocol: vnl.VLAN_PROTOCOL_8021Q,
		}
		if err := h.LinkAdd(v); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				errs = append(errs, fmt.Errorf("netlink %s: add vlan %s: %w", l.name, name, ErrNoVLANs))
				break // the next ones would fail the same way
			}
			errs = append(errs, l.kernelErr("add vlan "+name, err))
			continue
		}
		l.log.Debug("applied", "op", fmt.Sprintf("ip link add link %s name %s type vlan id %d", l.name, name, id))
	}
	return errors.Join(errs...)
}
