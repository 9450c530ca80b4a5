package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// makeBridge creates the bridge namespace with bridge br0. IPv6 is off in
// that namespace so the bridge itself stays silent (no router or listener
// reports); frames of every kind are still bridged.
func makeBridge(ctx context.Context, ns string) error {
	if err := ip(ctx, "netns", "add", ns); err != nil {
		return fmt.Errorf("lab: netns add %s: %w", ns, err)
	}
	if err := sysctls(ns,
		"net/ipv6/conf/all/disable_ipv6", "1",
		"net/ipv6/conf/default/disable_ipv6", "1",
	); err != nil {
		return err
	}
	// Multicast snooping off: without a querier it could hold back mDNS.
	if err := ipBatch(ctx, ns,
		"link add name br0 type bridge mcast_snooping 0",
		"link set br0 up",
		"link set lo up",
	); err != nil {
		return fmt.Errorf("lab: netns %s: add bridge br0: %w", ns, err)
	}
	return nil
}

// makeNode creates a node namespace and wires its eth0 to the bridge.
func makeNode(ctx context.Context, st state, n nodeState) error {
	if err := ip(ctx, "netns", "add", n.Namespace); err != nil {
		return fmt.Errorf("lab: netns add %s: %w", n.Namespace, err)
	}
	// Before eth0 exists, so it inherits the defaults: no duplicate address
	// detection, so IPv6 link-local addresses (mDNS over IPv6) work at once.
	if err := sysctls(n.Namespace,
		"net/ipv6/conf/all/accept_dad", "0",
		"net/ipv6/conf/default/accept_dad", "0",
	); err != nil {
		return err
	}
	// Both ends are created directly in their namespaces, so the names only
	// need to be unique there.
	if err := ip(ctx, "link", "add", "name", "eth0", "netns", n.Namespace,
		"type", "veth", "peer", "name", n.Veth, "netns", st.Bridge); err != nil {
		return fmt.Errorf("lab: netns %s: add veth eth0/%s: %w", n.Namespace, n.Veth, err)
	}
	if err := ip(ctx, "-n", st.Bridge, "link", "set", n.Veth, "master", "br0", "up"); err != nil {
		return fmt.Errorf("lab: netns %s: attach %s to br0: %w", st.Bridge, n.Veth, err)
	}
	subnet := netip.MustParsePrefix(st.Subnet)
	if err := ipBatch(ctx, n.Namespace,
		"link set lo up",
		"link set eth0 up",
		fmt.Sprintf("addr add %s/%d dev eth0", n.Addr, subnet.Bits()),
		// A device route, as a real box has a default route: software that
		// picks "the interface of the default route" finds eth0. Nothing
		// outside the bridge answers.
		"route add default dev eth0",
	); err != nil {
		return fmt.Errorf("lab: netns %s: configure eth0: %w", n.Namespace, err)
	}
	return nil
}

// deleteNetns deletes named namespaces with one ip process.
func deleteNetns(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = "netns del " + n
	}
	_, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", "-force", "-batch", "-")
	if err != nil {
		return fmt.Errorf("lab: netns del %s: %w", strings.Join(names, " "), err)
	}
	return nil
}
