// Package strictyaml parses YAML documents strictly: unknown keys, wrong
// types, out-of-range values and duplicate keys are errors that name the
// file, the line and the key. The node config and every profile format use
// it, so all of them report problems the same way.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a problem at one place of a file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Decode parses data as exactly one YAML document and returns its root
// node, or nil for an empty document. what describes the expected mapping
// in the error when the root is not one ("node:, site:, ...").
func Decode(file string, data []byte, what string) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "more than one YAML document"}
	} else if !errors.Is(err, io.EOF) {
		// A broken second document must not pass unnoticed.
		return nil, yamlError(file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Msg: "want a mapping of keys (" + what + ")"}
	}
	return root, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): `)

// yamlParserErrors are the messages of yaml.v3's parser (not its scanner).
// For these it reports the line counted from 0 (and no line at all for the
// first one), so one is added.
var yamlParserErrors = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// yamlError turns an error of the YAML decoder ("yaml: line 3: did not
// find expected key") into an Error with its line.
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if yamlParserErrors[msg] {
		line++
	}
	return &Error{File: file, Line: line, Msg: msg}
}

// Parser collects every error of one file, so all are reported at once.
type Parser struct {
	File string
	Errs []error
}

// Err returns the collected errors joined, or nil.
func (p *Parser) Err() error { return errors.Join(p.Errs...) }

// Errorf records an error at n's line.
func (p *Parser) Errorf(n *yaml.Node, key, format string, args ...any) {
	p.Errs = append(p.Errs, &Error{File: p.File, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Failed reports which top-level keys (see BaseKey) already have an error.
func (p *Parser) Failed() map[string]bool {
	failed := map[string]bool{}
	for _, e := range p.Errs {
		var se *Error
		if errors.As(e, &se) {
			failed[BaseKey(se.Key)] = true
		}
	}
	return failed
}

// Mapping calls fn for every key of a mapping node, in order, refusing
// duplicate and non-scalar keys. path prefixes the keys in errors.
func (p *Parser) Mapping(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, path, "want a mapping, got %s", KindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.Errorf(k, path, "keys must be plain words")
			continue
		}
		name := k.Value
		full := Join(path, name)
		if line, dup := seen[name]; dup {
			p.Errorf(k, full, "duplicate key (first at line %d)", line)
			continue
		}
		seen[name] = k.Line
		fn(name, k, v)
	}
}

// Join makes a key path: Join("devices[0]", "name") = "devices[0].name".
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Str reads a scalar as a string.
func (p *Parser) Str(n *yaml.Node, key string) string {
	if n.Kind != yaml.ScalarNode {
		p.Errorf(n, key, "want a string, got %s", KindName(n))
		return ""
	}
	if n.Tag == "!!null" {
		p.Errorf(n, key, "want a string, got nothing")
		return ""
	}
	return n.Value
}

// IntIn reads an integer in [lo, hi].
func (p *Parser) IntIn(n *yaml.Node, key string, lo, hi int) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.Errorf(n, key, "want an integer %d-%d, got %s", lo, hi, Describe(n))
		return 0
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.Errorf(n, key, "must be %d-%d, got %s", lo, hi, n.Value)
		return 0
	}
	return int(v)
}

// Float reads a finite number (an integer is fine).
func (p *Parser) Float(n *yaml.Node, key string) float64 {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		p.Errorf(n, key, "want a number, got %s", Describe(n))
		return 0
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		if i, ierr := strconv.ParseInt(n.Value, 0, 64); ierr == nil {
			return float64(i)
		}
	}
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		p.Errorf(n, key, "want a finite number, got %s", n.Value)
		return 0
	}
	return v
}

// Bool reads true or false.
func (p *Parser) Bool(n *yaml.Node, key string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.Errorf(n, key, "want true or false, got %s", Describe(n))
		return false
	}
	v, _ := strconv.ParseBool(strings.ToLower(n.Value))
	return v
}

// Duration reads a duration such as 500ms or 2s, in [lo, hi].
func (p *Parser) Duration(n *yaml.Node, key string, lo, hi time.Duration) time.Duration {
	s := p.Str(n, key)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.Errorf(n, key, "want a duration such as 500ms or 2s, got %q", s)
		return 0
	}
	if d < lo || d > hi {
		p.Errorf(n, key, "must be %s-%s, got %s", lo, hi, s)
		return 0
	}
	return d
}

// Enum reads one of allowed.
func (p *Parser) Enum(n *yaml.Node, key string, allowed []string) string {
	s := p.Str(n, key)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		p.Errorf(n, key, "must be one of %s, got %q", strings.Join(allowed, "|"), s)
	}
	return ""
}

// Seq reads a list.
func (p *Parser) Seq(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.Errorf(n, key, "want a list, got %s", KindName(n))
		return nil
	}
	return n.Content
}

// BaseKey is the top-level key of a key path: "seeds" of "seeds[2]",
// "devices" of "devices[0].name".
func BaseKey(key string) string {
	if i := strings.IndexAny(key, "[."); i >= 0 {
		return key[:i]
	}
	return key
}

// KindName names a node's kind for errors.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return Describe(n)
}

// Describe shows a scalar as written, for errors.
func Describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return KindName(n)
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}
