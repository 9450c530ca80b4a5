package site

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"edge/hardware"
	"edge/internal/strictyaml"
)

func (p *parser) constraints(n *yaml.Node, path string, nodes []Selector, checkUse bool) []Constraint {
	var out []Constraint
	used := settingsOf(nodes)
	for i, item := range p.Seq(n, path) {
		key := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.MappingNode {
			p.Errorf(item, key, "want a mapping (unique: radio0.frequency_mhz, equal: ..., range: ...), got %s", strictyaml.KindName(item))
			continue
		}
		c := Constraint{Line: item.Line}
		var ruleNode, minNode, maxNode *yaml.Node
		ok := true
		p.Mapping(item, key, func(k string, kn, v *yaml.Node) {
			full := strictyaml.Join(key, k)
			switch k {
			case "unique", "equal", "range":
				if ruleNode != nil {
					p.Errorf(kn, full, "one rule per constraint, this one already has %s:", c.Rule)
					ok = false
					return
				}
				ruleNode, c.Rule = kn, Rule(k)
				n := len(p.Errs)
				c.Setting = p.Str(v, full)
				if len(p.Errs) > n {
					ok = false
					return
				}
				if msg := checkSettingPattern(c.Setting); msg != "" {
					p.Errorf(v, full, "%s", msg)
					ok = false
				}
			case "min", "max":
				n := len(p.Errs)
				f := p.Float(v, full)
				if len(p.Errs) > n {
					ok = false
					return
				}
				if k == "min" {
					c.Min, minNode = &f, kn
				} else {
					c.Max, maxNode = &f, kn
				}
			default:
				p.Errorf(kn, full, "unknown key (want one of %s, and min, max for range)", strings.Join(rules, ", "))
				ok = false
			}
		})
		switch {
		case ruleNode == nil:
			if ok {
				p.Errorf(item, key, "want a rule: one of %s", strings.Join(rules, ", "))
			}
			continue
		case c.Rule != Range:
			for _, b := range []*yaml.Node{minNode, maxNode} {
				if b != nil {
					p.Errorf(b, strictyaml.Join(key, b.Value), "only applies to range:")
					ok = false
				}
			}
		case c.Min == nil && c.Max == nil:
			if ok {
				p.Errorf(ruleNode, strictyaml.Join(key, "range"), "needs min:, max: or both")
				ok = false
			}
		case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
			p.Errorf(minNode, strictyaml.Join(key, "min"), "%g is above max %g", *c.Min, *c.Max)
			ok = false
		}
		if !ok {
			continue
		}
		if checkUse && !c.usedIn(used) {
			p.Errorf(ruleNode, strictyaml.Join(key, string(c.Rule)), "%q matches no setting under nodes:", c.Setting)
			continue
		}
		out = append(out, c)
	}
	return out
}

// usedIn reports whether the pattern matches one of the settings, each
// "device.setting".
func (c Constraint) usedIn(settings map[string]bool) bool {
	dev, set := c.device(), c.setting()
	for ds := range settings {
		i := strings.LastIndexByte(ds, '.')
		if match(dev, ds[:i]) && match(set, ds[i+1:]) {
			return true
		}
	}
	return false
}

// settingsOf lists every setting under nodes: once, as "device.setting".
func settingsOf(nodes []Selector) map[string]bool {
	out := map[string]bool{}
	for _, s := range nodes {
		for dev, set := range s.Devices {
			for name := range set {
				out[dev+"."+name] = true
			}
		}
	}
	return out
}

// Violation is a constraint that the desired settings break.
type Violation struct {
	File string
	Line int
	// Index is the constraint's position under constraints:.
	Index      int
	Constraint Constraint
	// Msg names the nodes, devices and values in conflict.
	Msg string
}

// Error reads "site.yaml:31: constraints[0] unique radio0.frequency_mhz:
// node ru-01 and node ru-02 both 3550".
func (v *Violation) Error() string {
	return fmt.Sprintf("%s:%d: constraints[%d] %s: %s", v.File, v.Line, v.Index, v.Constraint, v.Msg)
}

// value is one desired value that a constraint's pattern matches.
type value struct {
	node, device, setting string
	v                     any
}

// Check holds the resolved desired settings of the site against the
// document's constraints. It returns every violation (each a *Violation),
// joined, or nil.
func (d *Document) Check(desired Desired) error {
	var errs []error
	for i, c := range d.Constraints {
		vals := c.values(desired)
		for _, msg := range c.check(vals) {
			errs = append(errs, &Violation{File: d.File, Line: c.Line, Index: i, Constraint: c, Msg: msg})
		}
	}
	return errors.Join(errs...)
}

// values collects the matching values, sorted by node, device, setting.
func (c Constraint) values(desired Desired) []value {
	var out []value
	for _, node := range sortedKeys(desired) {
		devs := desired[node]
		for _, dev := range sortedKeys(devs) {
			if !match(c.device(), dev) {
				continue
			}
			for _, name := range devs[dev].Names() {
				if match(c.setting(), name) {
					out = append(out, value{node, dev, name, devs[dev][name]})
				}
			}
		}
	}
	return out
}

// label names where a value is: "node ru-01", adding the device when the
// pattern's device is a glob, and the setting when its setting is one.
func (c Constraint) label(v value) string {
	switch {
	case isGlob(c.setting()):
		return "node " + v.node + " " + v.device + "." + v.setting
	case isGlob(c.device()):
		return "node " + v.node + " " + v.device
	}
	return "node " + v.node
}

// sameValues groups values that are Equal, in order of first appearance.
func sameValues(vals []value) [][]value {
	var groups [][]value
	for _, v := range vals {
		i := slices.IndexFunc(groups, func(g []value) bool { return hardware.Equal(g[0].v, v.v) })
		if i < 0 {
			groups = append(groups, []value{v})
		} else {
			groups[i] = append(groups[i], v)
		}
	}
	return groups
}

func (c Constraint) check(vals []value) []string {
	var out []string
	switch c.Rule {
	case Unique:
		for _, g := range sameValues(vals) {
			if len(g) < 2 {
				continue
			}
			var names []string
			for _, v := range g {
				names = append(names, c.label(v))
			}
			word := "both"
			if len(g) > 2 {
				word = "all"
			}
			out = append(out, fmt.Sprintf("%s %s %s", and(names), word, describe(g[0].v)))
		}
	case Equal:
		groups := sameValues(vals)
		if len(groups) < 2 {
			break
		}
		// The odd ones out first; long lists shortened.
		slices.SortStableFunc(groups, func(a, b []value) int { return len(a) - len(b) })
		var parts []string
		for _, g := range groups {
			var names []string
			for i, v := range g {
				if i == 3 && len(g) > 4 {
					names = append(names, fmt.Sprintf("%d more", len(g)-3))
					break
				}
				names = append(names, c.label(v))
			}
			parts = append(parts, fmt.Sprintf("%s on %s", describe(g[0].v), and(names)))
		}
		out = append(out, "values differ: "+strings.Join(parts, "; "))
	case Range:
		for _, v := range vals {
			f, ok := toFloat(v.v)
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s is %s, not a number", c.label(v), describe(v.v)))
			case c.Min != nil && f < *c.Min:
				out = append(out, fmt.Sprintf("%s is %s, below %g", c.label(v), hardware.Format(v.v), *c.Min))
			case c.Max != nil && f > *c.Max:
				out = append(out, fmt.Sprintf("%s is %s, above %g", c.label(v), hardware.Format(v.v), *c.Max))
			}
		}
	}
	return out
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return hardware.Format(v)
}

// and lists names: "a", "a and b", "a, b and c".
func and(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
