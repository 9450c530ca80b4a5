package site

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"edge/hardware"
)

// Desired is the desired state of a site: node -> device -> settings. A node
// with no desired settings has no entry.
type Desired map[string]map[string]hardware.Settings

// Resolve computes the desired settings of each of nodes (the site's
// members). Selectors apply in order of specificity: "*", then groups, then
// globs, then exact node names; within one kind, in document order. Each
// setting takes the value of the last selector that sets it.
//
// A selector or group member that matches none of nodes is not an error (a
// node may be down or not yet joined): it is listed in the warnings, each
// "file:line: key: message". So is a value that a selector of the same kind
// overrides, since only document order decides between them. The error is
// for invalid or repeated node names.
func (d *Document) Resolve(nodes []string) (Desired, []string, error) {
	seen := map[string]bool{}
	for _, n := range nodes {
		if !nameRE.MatchString(n) {
			return nil, nil, fmt.Errorf("site: resolve: %q is not a valid node name", n)
		}
		if seen[n] {
			return nil, nil, fmt.Errorf("site: resolve: node %q listed twice", n)
		}
		seen[n] = true
	}
	sorted := slices.Sorted(slices.Values(nodes))
	groups := map[string]Group{}
	for _, g := range d.Groups {
		groups[g.Name] = g
	}

	var warnings []warning
	for _, g := range d.Groups {
		for i, m := range g.Members {
			if !slices.ContainsFunc(sorted, func(n string) bool { return match(m, n) }) {
				warnings = append(warnings, warning{g.MemberLines[i], fmt.Sprintf("groups.%s[%d]: %q matches none of the %s", g.Name, i, m, countNodes(sorted))})
			}
		}
	}

	// source is the selector that set a node's value.
	type source struct {
		sel int
		v   any
	}
	type slot struct{ node, device, setting string }
	set := map[slot]source{}
	// overrides collects, per (selector, overridden selector, device.setting),
	// the nodes where a selector of the same kind was overridden.
	type override struct {
		sel, prev       int
		device, setting string
		newVal, oldVal  string
	}
	overridden := map[override][]string{}

	out := Desired{}
	order := d.precedence()
	for _, si := range order {
		s := d.Nodes[si]
		var hits []string
		for _, n := range sorted {
			if s.selects(n, groups) {
				hits = append(hits, n)
			}
		}
		if len(hits) == 0 {
			warnings = append(warnings, warning{s.Line, fmt.Sprintf("nodes.%s: matches none of the %s", s.Key, countNodes(sorted))})
			continue
		}
		for _, n := range hits {
			for dev, settings := range s.Devices {
				for name, v := range settings {
					k := slot{n, dev, name}
					if prev, ok := set[k]; ok && d.Nodes[prev.sel].Kind == s.Kind && !hardware.Equal(prev.v, v) {
						o := override{si, prev.sel, dev, name, hardware.Format(v), hardware.Format(prev.v)}
						overridden[o] = append(overridden[o], n)
					}
					set[k] = source{si, v}
					if out[n] == nil {
						out[n] = map[string]hardware.Settings{}
					}
					if out[n][dev] == nil {
						out[n][dev] = hardware.Settings{}
					}
					if l, ok := v.([]string); ok {
						v = slices.Clone(l)
					}
					out[n][dev][name] = v
				}
			}
		}
	}
	for o, ns := range overridden {
		s, prev := d.Nodes[o.sel], d.Nodes[o.prev]
		warnings = append(warnings, warning{s.Line, fmt.Sprintf(
			"nodes.%s.%s.%s: %s overrides %s from nodes.%s (line %d) on %s: both are %s selectors, so the one further down wins",
			s.Key, o.device, o.setting, o.newVal, o.oldVal, prev.Key, prev.Line,
			strings.Join(ns, ", "), s.Kind)})
	}
	slices.SortStableFunc(warnings, func(a, b warning) int {
		return cmp.Or(cmp.Compare(a.line, b.line), strings.Compare(a.msg, b.msg))
	})
	var ws []string
	for _, w := range warnings {
		ws = append(ws, fmt.Sprintf("%s:%d: %s", d.File, w.line, w.msg))
	}
	return out, ws, nil
}

type warning struct {
	line int
	msg  string
}

func countNodes(nodes []string) string {
	if len(nodes) == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", len(nodes))
}

// precedence returns the indexes of d.Nodes in the order they apply.
func (d *Document) precedence() []int {
	order := make([]int, len(d.Nodes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(d.Nodes[a].Kind, d.Nodes[b].Kind) })
	return order
}

// selects reports whether the selector applies to node.
func (s Selector) selects(node string, groups map[string]Group) bool {
	switch s.Kind {
	case KindAll:
		return true
	case KindGroup:
		return slices.ContainsFunc(groups[s.Group].Members, func(m string) bool { return match(m, node) })
	case KindGlob:
		return match(s.Key, node)
	case KindNode:
		return s.Key == node
	}
	return false
}

// Change is one desired setting that differs between two desired states.
// Old is nil for a setting that is added, New nil for one that is no longer
// managed.
type Change struct {
	Node, Device, Setting string
	Old, New              any
}

// String reads "ru-01 radio0.frequency_mhz: 3550 -> 3600" ("-" for none).
func (c Change) String() string {
	return fmt.Sprintf("%s %s.%s: %s -> %s", c.Node, c.Device, c.Setting, hardware.Format(c.Old), hardware.Format(c.New))
}

// DiffDesired lists the settings that differ between old and next (compared
// with hardware.Equal), sorted by node, device and setting.
func DiffDesired(old, next Desired) []Change {
	var out []Change
	for _, node := range union(old, next) {
		o, n := old[node], next[node]
		for _, dev := range union(o, n) {
			os, ns := o[dev], n[dev]
			for _, name := range union(os, ns) {
				ov, ook := os[name]
				nv, nok := ns[name]
				if ook && nok && hardware.Equal(ov, nv) {
					continue
				}
				out = append(out, Change{Node: node, Device: dev, Setting: name, Old: ov, New: nv})
			}
		}
	}
	return out
}

func union[M ~map[string]V, V any](a, b M) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}
