package site

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"edge/hardware"
	"edge/internal/strictyaml"
)

// MaxSize bounds a site document; anything larger is refused before it is
// parsed.
const MaxSize = 1 << 20

// Version is the only schema version of the site document.
const Version = 1

// Document is a parsed site config document. It is not changed after Parse
// and is safe to share between goroutines.
type Document struct {
	// File names the document in errors and warnings ("site.yaml").
	File string
	// Raw is the document exactly as the operator applied it, so the store
	// can keep it and parse it again.
	Raw []byte

	// Version is the schema version (always Version).
	Version int
	// Site must match the cluster's site (see CheckSite).
	Site string
	// Policy is the rollout policy, defaults filled in.
	Policy Policy
	// Groups are the named groups of nodes, in document order.
	Groups []Group
	// Nodes are the selectors of the nodes: section with their desired
	// device settings, in document order.
	Nodes []Selector
	// Constraints are the site constraints, in document order.
	Constraints []Constraint

	siteLine int
}

// Group is a named set of nodes: node names and globs.
type Group struct {
	Name    string
	Members []string
	// Line is the line of the group's name; MemberLines those of its
	// members.
	Line        int
	MemberLines []int
}

// Kind is the kind of a selector. Kinds are ordered by precedence: a later
// kind overrides an earlier one.
type Kind int

// Selector kinds, from least to most specific.
const (
	// KindAll is "*": every node.
	KindAll Kind = iota
	// KindGroup is "@name": the nodes of a group.
	KindGroup
	// KindGlob is a shell glob over node names: "ru-*", "node[1-3]".
	KindGlob
	// KindNode is one node by its exact name.
	KindNode
)

func (k Kind) String() string {
	switch k {
	case KindAll:
		return "all"
	case KindGroup:
		return "group"
	case KindGlob:
		return "glob"
	case KindNode:
		return "node"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Selector is one key of the nodes: section and the device settings it
// sets on the nodes it selects.
type Selector struct {
	// Key is the selector as written: "*", "@radios", "ru-*", "ru-01".
	Key  string
	Kind Kind
	// Group is the group's name, for KindGroup.
	Group string
	// Devices holds the desired settings by device name.
	Devices map[string]hardware.Settings
	Line    int
}

// Rule is the kind of a constraint.
type Rule string

// Constraint rules.
const (
	// Unique: no two matching values are the same.
	Unique Rule = "unique"
	// Equal: every matching value is the same.
	Equal Rule = "equal"
	// Range: every matching value is a number within Min and Max.
	Range Rule = "range"
)

var rules = []string{string(Unique), string(Equal), string(Range)}

// Constraint is one site constraint over the resolved desired settings of
// every node.
type Constraint struct {
	Rule Rule
	// Setting is the pattern DEVICE.SETTING as written; either part may be a
	// glob ("radio*.frequency_mhz", "*.power_dbm"). The device is everything
	// before the last '.'.
	Setting string
	// Min and Max bound a Range; either may be nil (no bound).
	Min, Max *float64
	Line     int
}

// String shows the constraint the way errors name it:
// "unique radio0.frequency_mhz", "range *.power_dbm -10..40".
func (c Constraint) String() string {
	s := string(c.Rule) + " " + c.Setting
	if c.Rule == Range {
		switch {
		case c.Min != nil && c.Max != nil:
			s += fmt.Sprintf(" %g..%g", *c.Min, *c.Max)
		case c.Min != nil:
			s += fmt.Sprintf(" >= %g", *c.Min)
		case c.Max != nil:
			s += fmt.Sprintf(" <= %g", *c.Max)
		}
	}
	return s
}

// device and setting split the pattern at its last '.'.
func (c Constraint) device() string {
	i := strings.LastIndexByte(c.Setting, '.')
	return c.Setting[:i]
}

func (c Constraint) setting() string {
	i := strings.LastIndexByte(c.Setting, '.')
	return c.Setting[i+1:]
}

// CheckSite returns an error naming the document's site: line unless the
// document is for site.
func (d *Document) CheckSite(site string) error {
	if d.Site == site {
		return nil
	}
	return &strictyaml.Error{File: d.File, Line: d.siteLine, Key: "site",
		Msg: fmt.Sprintf("this document is for site %q, this cluster is site %q", d.Site, site)}
}

// Load reads and strictly parses the site document at path.
func Load(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("site config: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("site config %s: %w", path, err)
	}
	return Parse(path, buf)
}

var (
	// nameRE is a node, device or group name (the node config's rule).
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	// settingRE is a setting name: no '.', so DEVICE.SETTING splits.
	settingRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
)

const (
	nameRule    = "letters, digits, '.', '_', '-', at most 63"
	settingRule = "letters, digits, '_', '-', starting with a letter, at most 64"
)

// Parse strictly parses a site document; file names it in errors. Every
// problem is reported at once (joined), each a *strictyaml.Error naming the
// file, the line and the key. data is copied into Raw.
func Parse(file string, data []byte) (*Document, error) {
	if file == "" {
		file = "<site>"
	}
	if len(data) > MaxSize {
		return nil, &strictyaml.Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	root, err := strictyaml.Decode(file, data, "version:, site:, policy:, groups:, nodes:, constraints:")
	if err != nil {
		return nil, yamlHint(err, data)
	}
	if root == nil {
		return nil, &strictyaml.Error{File: file, Msg: "empty file: version and site are required"}
	}
	p := &parser{Parser: strictyaml.Parser{File: file}}
	d := &Document{File: file, Policy: DefaultPolicy()}
	var policy, groups, nodes, constraints *yaml.Node
	p.Mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			d.Version = p.version(v, key)
		case "site":
			d.siteLine = k.Line
			d.Site = p.Str(v, key)
			if d.Site != "" && !nameRE.MatchString(d.Site) {
				p.Errorf(v, key, "%q is not a valid site name (%s)", d.Site, nameRule)
			}
		case "policy":
			policy = v
		case "groups":
			groups = v
		case "nodes":
			nodes = v
		case "constraints":
			constraints = v
		default:
			p.Errorf(k, "", "unknown key %q (want version, site, policy, groups, nodes or constraints)", key)
		}
	})
	if _, ok := p.seen(root, "version"); !ok {
		p.Errs = append(p.Errs, &strictyaml.Error{File: file, Key: "version", Msg: "required (version: 1)"})
	}
	if _, ok := p.seen(root, "site"); !ok {
		p.Errs = append(p.Errs, &strictyaml.Error{File: file, Key: "site", Msg: "required: the site's name, as in every node's edged.yaml"})
	}
	if policy != nil {
		d.Policy = p.policy(policy, "policy")
	}
	if groups != nil {
		d.Groups = p.groups(groups, "groups")
	}
	if nodes != nil {
		d.Nodes = p.nodes(nodes, "nodes", d.Groups)
	}
	if constraints != nil {
		d.Constraints = p.constraints(constraints, "constraints", d.Nodes, !p.failed("nodes"))
	}
	if len(p.Errs) > 0 {
		// Report in file order; problems of the whole file last.
		slices.SortStableFunc(p.Errs, func(a, b error) int {
			return lineOf(a) - lineOf(b)
		})
		return nil, errors.Join(p.Errs...)
	}
	d.Raw = bytes.Clone(data)
	return d, nil
}

func lineOf(err error) int {
	var e *strictyaml.Error
	if errors.As(err, &e) && e.Line > 0 {
		return e.Line
	}
	return 1 << 30
}

// yamlHint adds a hint to YAML's message for the two mistakes hand-written
// site documents make most: a key or value starting with * or @ (YAML reads
// an alias or refuses it: selectors such as "*" and "@radios" must be
// quoted), and a tab in the indentation.
func yamlHint(err error, data []byte) error {
	var e *strictyaml.Error
	if !errors.As(err, &e) || e.Line < 1 {
		return err
	}
	lines := bytes.Split(data, []byte("\n"))
	if e.Line > len(lines) {
		return err
	}
	line := string(lines[e.Line-1])
	hint := ""
	switch {
	case strings.HasPrefix(strings.TrimLeft(line, " "), "\t"):
		hint = "indent with spaces, not tabs"
	case e.Msg == "did not find expected alphabetic or numeric character" ||
		e.Msg == "found character that cannot start any token":
		if strings.ContainsAny(line, "*@") {
			hint = `quote names that start with * or @: "*", "@radios", "*.power_dbm"`
		}
	}
	if hint == "" {
		return err
	}
	c := *e
	c.Msg += " (" + hint + ")"
	return &c
}

// parser is the strict YAML parser with the site document's own readers.
type parser struct {
	strictyaml.Parser
}

// seen finds key in a mapping node.
func (p *parser) seen(m *yaml.Node, key string) (*yaml.Node, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1], true
		}
	}
	return nil, false
}

// failed reports whether key or anything below it already has an error.
func (p *parser) failed(key string) bool {
	for _, err := range p.Errs {
		var e *strictyaml.Error
		if errors.As(err, &e) && (e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[")) {
			return true
		}
	}
	return false
}

func (p *parser) version(n *yaml.Node, key string) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.Errorf(n, key, "want 1, got %s", strictyaml.Describe(n))
		return 0
	}
	if n.Value != "1" {
		p.Errorf(n, key, "only version 1 exists, got %s", n.Value)
		return 0
	}
	return Version
}

func (p *parser) groups(n *yaml.Node, path string) []Group {
	var out []Group
	p.Mapping(n, path, func(name string, k, v *yaml.Node) {
		full := strictyaml.Join(path, name)
		if !nameRE.MatchString(name) {
			p.Errorf(k, full, "%q is not a valid group name (%s)", name, nameRule)
			return
		}
		g := Group{Name: name, Line: k.Line}
		if v.Kind != yaml.SequenceNode {
			p.Errorf(v, full, "want a list of node names or globs ([ru-*, node1]), got %s", strictyaml.KindName(v))
			return
		}
		if len(v.Content) == 0 {
			p.Errorf(v, full, "empty: list at least one node name or glob")
			return
		}
		seen := map[string]int{}
		for i, item := range v.Content {
			key := fmt.Sprintf("%s[%d]", full, i)
			s := p.Str(item, key)
			if s == "" {
				continue
			}
			if strings.HasPrefix(s, "@") {
				p.Errorf(item, key, "%q: a group lists node names and globs, not other groups", s)
				continue
			}
			if msg := checkNodePattern(s); msg != "" {
				p.Errorf(item, key, "%s", msg)
				continue
			}
			if line, dup := seen[s]; dup {
				p.Errorf(item, key, "%q already listed at line %d", s, line)
				continue
			}
			seen[s] = item.Line
			g.Members = append(g.Members, s)
			g.MemberLines = append(g.MemberLines, item.Line)
		}
		out = append(out, g)
	})
	return out
}

func (p *parser) nodes(n *yaml.Node, path string, groups []Group) []Selector {
	var out []Selector
	p.Mapping(n, path, func(key string, k, v *yaml.Node) {
		full := strictyaml.Join(path, key)
		s := Selector{Key: key, Line: k.Line}
		switch {
		case key == "*":
			s.Kind = KindAll
		case strings.HasPrefix(key, "@"):
			s.Kind, s.Group = KindGroup, key[1:]
			if !slices.ContainsFunc(groups, func(g Group) bool { return g.Name == s.Group }) {
				p.Errorf(k, full, "unknown group %q (%s)", s.Group, groupNames(groups))
				return
			}
		default:
			if msg := checkNodePattern(key); msg != "" {
				p.Errorf(k, full, "%s", msg)
				return
			}
			s.Kind = KindNode
			if isGlob(key) {
				s.Kind = KindGlob
			}
		}
		s.Devices = map[string]hardware.Settings{}
		if v.Kind != yaml.MappingNode {
			p.Errorf(v, full, "want a mapping of devices to settings (radio0: {frequency_mhz: 3550}), got %s", strictyaml.KindName(v))
			return
		}
		p.Mapping(v, full, func(dev string, dk, dv *yaml.Node) {
			dpath := strictyaml.Join(full, dev)
			if !nameRE.MatchString(dev) {
				p.Errorf(dk, dpath, "%q is not a valid device name (%s)", dev, nameRule)
				return
			}
			if dv.Kind != yaml.MappingNode {
				p.Errorf(dv, dpath, "want a mapping of settings (frequency_mhz: 3550), got %s", strictyaml.KindName(dv))
				return
			}
			s.Devices[dev] = p.settings(dv, dpath)
		})
		out = append(out, s)
	})
	return out
}

func groupNames(groups []Group) string {
	if len(groups) == 0 {
		return "no groups are defined under groups:"
	}
	var names []string
	for _, g := range groups {
		names = append(names, "@"+g.Name)
	}
	return "defined: " + strings.Join(names, ", ")
}

// settings reads a device's desired settings the way the node config does:
// scalars become string, bool, int64 or float64, lists of scalars []string.
func (p *parser) settings(n *yaml.Node, path string) hardware.Settings {
	out := hardware.Settings{}
	p.Mapping(n, path, func(k string, kn, v *yaml.Node) {
		full := strictyaml.Join(path, k)
		if !settingRE.MatchString(k) {
			p.Errorf(kn, full, "%q is not a valid setting name (%s)", k, settingRule)
			return
		}
		switch v.Kind {
		case yaml.ScalarNode:
			if val, ok := p.scalar(v, full); ok {
				out[k] = val
			}
		case yaml.SequenceNode:
			l := []string{}
			for i, e := range v.Content {
				l = append(l, p.Str(e, fmt.Sprintf("%s[%d]", full, i)))
			}
			out[k] = l
		default:
			p.Errorf(v, full, "want a value or a list of values, got %s", strictyaml.KindName(v))
		}
	})
	return out
}

// scalar reads one setting value.
func (p *parser) scalar(v *yaml.Node, key string) (any, bool) {
	switch v.Tag {
	case "!!int":
		i, err := parseInt(v.Value)
		if err != nil {
			p.Errorf(v, key, "want an integer, got %s", v.Value)
			return nil, false
		}
		return i, true
	case "!!float":
		n := len(p.Errs)
		f := p.Float(v, key)
		return f, len(p.Errs) == n
	case "!!bool":
		switch strings.ToLower(v.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
		p.Errorf(v, key, "want true or false, got %s", v.Value)
		return nil, false
	case "!!null":
		p.Errorf(v, key, "want a value, got nothing")
		return nil, false
	}
	return v.Value, true
}

// parseInt reads a YAML integer the way yaml.v3 resolves one (0x, 0o, 0b
// prefixes; underscores ignored).
func parseInt(s string) (int64, error) {
	return strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
}
