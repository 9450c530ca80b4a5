package netlink

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"edge/hardware"
)

// Setting names.
const (
	SettingUp        = "up"
	SettingMTU       = "mtu"
	SettingAddresses = "addresses"
	SettingMaster    = "master"
	SettingVLANs     = "vlans"
)

// MTU bounds: 68 is the IPv4 minimum, 65535 the largest MTU this driver
// sets (a link's driver may allow less; the kernel then refuses).
const (
	MinMTU = 68
	MaxMTU = 65535
)

// settingNames lists the settings, sorted.
var settingNames = []string{SettingAddresses, SettingMaster, SettingMTU, SettingUp, SettingVLANs}

// Check returns desired in canonical form: up is a bool, mtu an int64,
// addresses a list of CIDR prefixes normalized by net/netip and sorted by
// address, master a link name or "", vlans a list of "<link>.<id>" names
// sorted by id. An unknown setting or a bad value gives an error wrapping
// hardware.ErrInvalid that names both. Check does not touch the kernel, so
// it accepts vlans even where the kernel lacks 8021q (Apply reports that).
func (l *Link) Check(desired hardware.Settings) (hardware.Settings, error) {
	return canonical(l.name, desired)
}

func canonical(link string, desired hardware.Settings) (hardware.Settings, error) {
	out := make(hardware.Settings, len(desired))
	for _, name := range desired.Names() {
		v, err := canonicalValue(link, name, desired[name])
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

func canonicalValue(link, name string, v any) (any, error) {
	switch name {
	case SettingUp:
		return parseBool(link, name, v)
	case SettingMTU:
		return parseMTU(link, v)
	case SettingAddresses:
		return parseAddresses(link, v)
	case SettingMaster:
		return parseMaster(link, v)
	case SettingVLANs:
		return parseVLANs(link, v)
	}
	return nil, unknownSetting(link, name)
}

func unknownSetting(link, name string) error {
	return fmt.Errorf("netlink %s: unknown setting %q (known: %s): %w",
		link, name, strings.Join(settingNames, ", "), hardware.ErrInvalid)
}

func invalid(link, name string, v any, why string) error {
	return fmt.Errorf("netlink %s: %s %s: %w: %s", link, name, hardware.Format(v), hardware.ErrInvalid, why)
}

func parseBool(link, name string, v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "up", "on", "yes":
			return true, nil
		case "false", "down", "off", "no":
			return false, nil
		}
	}
	return false, invalid(link, name, v, "want true or false")
}

func parseMTU(link string, v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint32:
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<31 {
			return 0, invalid(link, SettingMTU, v, fmt.Sprintf("want an integer %d-%d", MinMTU, MaxMTU))
		}
		n = int64(x)
	case string:
		p, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, invalid(link, SettingMTU, v, fmt.Sprintf("want an integer %d-%d", MinMTU, MaxMTU))
		}
		n = p
	default:
		return 0, invalid(link, SettingMTU, v, fmt.Sprintf("want an integer %d-%d", MinMTU, MaxMTU))
	}
	if n < MinMTU || n > MaxMTU {
		return 0, invalid(link, SettingMTU, v, fmt.Sprintf("out of range %d-%d", MinMTU, MaxMTU))
	}
	return n, nil
}

// parseList takes []string, []any of strings, or one string of items
// separated by commas or spaces.
func parseList(link, name string, v any) ([]string, error) {
	switch x := v.(type) {
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, invalid(link, name, v, fmt.Sprintf("item %v is not a string", e))
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }), nil
	case nil:
		return nil, nil
	}
	return nil, invalid(link, name, v, "want a list")
}

func parseAddresses(link string, v any) ([]string, error) {
	items, err := parseList(link, SettingAddresses, v)
	if err != nil {
		return nil, err
	}
	prefixes := make([]netip.Prefix, 0, len(items))
	for _, s := range items {
		p, err := parseAddress(strings.TrimSpace(s))
		if err != nil {
			return nil, invalid(link, SettingAddresses, s, err.Error())
		}
		prefixes = append(prefixes, p)
	}
	sortPrefixes(prefixes)
	prefixes = slices.Compact(prefixes)
	for i := 1; i < len(prefixes); i++ {
		if prefixes[i].Addr() == prefixes[i-1].Addr() {
			return nil, invalid(link, SettingAddresses, v,
				fmt.Sprintf("%s is given with two prefix lengths", prefixes[i].Addr()))
		}
	}
	return formatPrefixes(prefixes), nil
}

// parseAddress parses one managed address: an address with its prefix
// length (host bits kept), neither link-local, multicast nor unspecified.
func parseAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an address with its prefix length, like 192.0.2.1/24 or 2001:db8::1/64")
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, fmt.Errorf("an IPv4-mapped IPv6 address: write the IPv4 form")
	case a.IsLinkLocalUnicast():
		return netip.Prefix{}, fmt.Errorf("link-local addresses are not managed")
	case a.IsMulticast():
		return netip.Prefix{}, fmt.Errorf("a multicast address")
	case a.IsUnspecified():
		return netip.Prefix{}, fmt.Errorf("the unspecified address")
	}
	return p, nil
}

// managed reports whether an address read from the kernel is one this
// driver manages (see parseAddress).
func managed(p netip.Prefix) bool {
	a := p.Addr()
	return p.IsValid() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && !a.IsUnspecified()
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
}

func formatPrefixes(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// validName reports whether s can name a link (the kernel's
// dev_valid_name).
func validName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\v\f")
}

func parseMaster(link string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", invalid(link, SettingMaster, v, `want a bridge name, or "" for none`)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if !validName(s) {
		return "", invalid(link, SettingMaster, v, "not a valid link name (1-15 characters, no '/', ':' or spaces)")
	}
	if s == link {
		return "", invalid(link, SettingMaster, v, "a link cannot be its own master")
	}
	return s, nil
}

// VLAN IDs usable for sub-interfaces (0 and 4095 are reserved).
const (
	minVLAN = 1
	maxVLAN = 4094
)

func vlanName(link string, id int) string { return link + "." + strconv.Itoa(id) }

// parseVLANs takes "<link>.<id>" names (or bare ids) and returns them
// as "<link>.<id>", sorted by id.
func parseVLANs(link string, v any) ([]string, error) {
	items, err := parseList(link, SettingVLANs, v)
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, len(items))
	for _, s := range items {
		s = strings.TrimSpace(s)
		num := s
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			if s[:i] != link {
				return nil, invalid(link, SettingVLANs, s, fmt.Sprintf("want %s.<id>: a sub-interface of %s", link, link))
			}
			num = s[i+1:]
		}
		id, err := strconv.Atoi(num)
		if err != nil || id < minVLAN || id > maxVLAN {
			return nil, invalid(link, SettingVLANs, s, fmt.Sprintf("want %s.<id> with an id %d-%d", link, minVLAN, maxVLAN))
		}
		if n := vlanName(link, id); len(n) > 15 {
			return nil, invalid(link, SettingVLANs, s, fmt.Sprintf("the name %s is longer than 15 characters", n))
		}
		ids = append(ids, id)
	}
	return vlanNames(link, ids), nil
}

func vlanNames(link string, ids []int) []string {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = vlanName(link, id)
	}
	return out
}

// vlanIDs is the inverse of vlanNames for canonical names.
func vlanIDs(link string, names []string) []int {
	ids := make([]int, 0, len(names))
	for _, n := range names {
		id, _ := strconv.Atoi(strings.TrimPrefix(n, link+"."))
		ids = append(ids, id)
	}
	return ids
}
