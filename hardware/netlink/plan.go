package netlink

import (
	"fmt"
	"slices"

	"edge/hardware"
)

// Plan returns the `ip` commands Apply would run for changes, in Apply's
// order, without touching the kernel. Not knowing the link's actual state,
// it lists every given value; what to remove (addresses and VLANs not
// listed) is unknown, so it says so in a comment line ("# ..."). The
// output is valid shell. PlanFrom gives the exact commands.
func (l *Link) Plan(changes hardware.Settings) ([]string, error) {
	return l.PlanFrom(nil, changes)
}

// PlanFrom is Plan knowing the actual settings (as Read returns them): it
// leaves out values already in place and lists exactly the addresses and
// VLANs to remove. A setting missing from actual is planned as Plan does.
func (l *Link) PlanFrom(actual, changes hardware.Settings) ([]string, error) {
	want, err := canonical(l.name, changes)
	if err != nil {
		return nil, err
	}
	// known returns the canonical actual value of name, if there is one.
	known := func(name string) (any, bool) {
		v, ok := actual[name]
		if !ok {
			return nil, false
		}
		c, err := canonicalValue(l.name, name, v)
		return c, err == nil
	}
	same := func(name string) bool {
		v, ok := known(name)
		return ok && hardware.Equal(v, want[name])
	}

	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	up, setUp := want[SettingUp].(bool)
	if setUp && !up && !same(SettingUp) {
		add("ip link set %s down", l.name)
	}
	if m, ok := want[SettingMaster].(string); ok && !same(SettingMaster) {
		if m == "" {
			add("ip link set %s nomaster", l.name)
		} else {
			add("ip link set %s master %s", l.name, m)
		}
	}
	if mtu, ok := want[SettingMTU].(int64); ok && !same(SettingMTU) {
		add("ip link set %s mtu %d", l.name, mtu)
	}
	if as, ok := want[SettingAddresses].([]string); ok {
		if v, ok := known(SettingAddresses); ok {
			have := v.([]string)
			for _, p := range have {
				if !slices.Contains(as, p) {
					add("ip address del %s dev %s", p, l.name)
				}
			}
			for _, p := range as {
				if !slices.Contains(have, p) {
					add("ip address replace %s dev %s", p, l.name)
				}
			}
		} else {
			add("# ip address del: each permanent, not link-local address of %s not listed here", l.name)
			for _, p := range as {
				add("ip address replace %s dev %s", p, l.name)
			}
		}
	}
	if vs, ok := want[SettingVLANs].([]string); ok {
		wantIDs := vlanIDs(l.name, vs)
		if v, ok := known(SettingVLANs); ok {
			have := vlanIDs(l.name, v.([]string))
			for _, id := range have {
				if !slices.Contains(wantIDs, id) {
					add("ip link del %s", vlanName(l.name, id))
				}
			}
			for _, id := range wantIDs {
				if !slices.Contains(have, id) {
					add("ip link add link %s name %s type vlan id %d", l.name, vlanName(l.name, id), id)
				}
			}
		} else {
			add("# ip link del: each 802.1Q sub-interface of %s not listed here", l.name)
			for _, id := range wantIDs {
				add("ip link add link %s name %s type vlan id %d # if missing", l.name, vlanName(l.name, id), id)
			}
		}
	}
	if setUp && up && !same(SettingUp) {
		add("ip link set %s up", l.name)
	}
	return out, nil
}
