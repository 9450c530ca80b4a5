// Package netlink is the driver for network links (a NIC port, a veth, a
// bridge port): it reads and sets a link's admin state, MTU, IP addresses,
// bridge master and 802.1Q sub-interfaces over rtnetlink
// (github.com/vishvananda/netlink), never by running ip(8).
//
// Settings, in canonical form (Link.Check):
//
//	up         bool      admin state (IFF_UP)
//	mtu        int64     68-65535
//	addresses  []string  CIDR prefixes, "192.0.2.1/24", "2001:db8::1/64", sorted
//	master     string    bridge (or bond) name, "" for none
//	vlans      []string  "eth1.100": an 802.1Q sub-interface with id 100, sorted by id
//
// Only permanent addresses that are not link-local are managed: the kernel's
// IPv6 link-local address and addresses from SLAAC, DHCP or privacy
// extensions are neither read nor removed. Apply applies only the settings
// it is given, in the order down, master, mtu, addresses, vlans, up; when
// going down it puts back the IPv6 addresses the kernel drops with the link
// (net.ipv6.conf.*.keep_addr_on_down=0, the default).
// A kernel without 8021q makes Apply fail with an error wrapping
// hardware.ErrNotSupported when a VLAN must be created; Check and Read
// work there (no VLAN can exist).
//
// Errors wrap the hardware sentinels: a missing link is
// hardware.ErrDisconnected, a bad value hardware.ErrInvalid, a request the
// kernel refused hardware.ErrRejected (with its errno).
package netlink
