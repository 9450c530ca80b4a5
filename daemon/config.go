package daemon

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of the node config.
const (
	DefaultConfigPath = "/etc/edged/edged.yaml"
	DefaultDataDir    = "/var/lib/edged"
	DefaultSocket     = "/run/edged/edged.sock"
	DefaultGossipPort = 7946

	// MaxConfigSize bounds the node config file; anything larger is refused
	// before it is parsed.
	MaxConfigSize  = 1 << 20
	maxKeyFileSize = 4 << 10
)

// Config is the node config: identity, network, credentials and the device
// inventory of one node, read from /etc/edged/edged.yaml.
type Config struct {
	// Path is the file the config was read from ("" when built in code).
	Path string

	Node          string
	Site          string
	DataDir       string
	Socket        string
	Interface     string
	AdvertiseAddr netip.Addr
	GossipPort    int
	KeyFile       string
	Seeds         []string
	LogLevel      string
	Devices       []DeviceConfig
}

// DeviceConfig is one entry of the device inventory: what is plugged in where.
type DeviceConfig struct {
	Name    string
	Driver  string
	Port    string
	Link    string
	Profile string
}

// DefaultConfig returns a config with every default filled in; Site and
// KeyFile are left empty because they have none.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Node:       host,
		DataDir:    DefaultDataDir,
		Socket:     DefaultSocket,
		GossipPort: DefaultGossipPort,
		LogLevel:   "info",
	}
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	logLevels = []string{"debug", "info", "warn", "error"}
)

// Validate checks the values that parsing alone cannot.
func (c Config) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.Node) {
		errs = append(errs, fmt.Errorf("node: %q is not a valid node name (letters, digits, '.', '_', '-', at most 63)", c.Node))
	}
	if c.Site == "" {
		errs = append(errs, errors.New("site: required"))
	} else if !nameRE.MatchString(c.Site) {
		errs = append(errs, fmt.Errorf("site: %q is not a valid site name (letters, digits, '.', '_', '-', at most 63)", c.Site))
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("key_file: required (create one with `edgectl keygen > /etc/edged/gossip.key`)"))
	}
	if c.GossipPort < 1 || c.GossipPort > 65535 {
		errs = append(errs, fmt.Errorf("gossip_port: must be 1-65535, got %d", c.GossipPort))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	if c.Socket == "" {
		errs = append(errs, errors.New("socket: must not be empty"))
	}
	for i, s := range c.Seeds {
		if err := checkHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("seeds[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// LoadConfig reads and strictly parses the node config at path. Errors name
// the file, the line and the key; nothing is half-applied.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if len(buf) > MaxConfigSize {
		return Config{}, fmt.Errorf("config %s: larger than %d bytes", path, MaxConfigSize)
	}
	return ParseConfig(path, buf)
}

// ConfigError is a problem at one place of a config file.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
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

// ParseConfig parses a node config document. file names it in errors.
// Relative paths in it (key_file) are taken relative to the file's folder.
func ParseConfig(file string, data []byte) (Config, error) {
	if file == "" {
		file = "<config>"
	}
	cfg := DefaultConfig()
	cfg.Path = file
	p := &parser{file: file}

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, &ConfigError{File: file, Msg: "empty file: site and key_file are required"}
		}
		return Config{}, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, &ConfigError{File: file, Line: extra.Line, Msg: "more than one YAML document"}
	} else if !errors.Is(err, io.EOF) {
		// A broken second document must not pass unnoticed.
		return Config{}, yamlError(file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return Config{}, &ConfigError{File: file, Line: root.Line, Msg: "want a mapping of keys (node:, site:, ...)"}
	}
	lines := map[string]int{}
	p.mapping(root, "", func(key string, k, v *yaml.Node) {
		lines[key] = k.Line
		switch key {
		case "node":
			cfg.Node = p.str(v, key)
		case "site":
			cfg.Site = p.str(v, key)
		case "data_dir":
			cfg.DataDir = p.str(v, key)
		case "socket":
			cfg.Socket = p.str(v, key)
		case "interface":
			cfg.Interface = p.str(v, key)
		case "advertise_addr":
			s := p.str(v, key)
			a, err := netip.ParseAddr(s)
			if err != nil && s != "" {
				p.errf(v, key, "want an IP address, got %q", s)
			}
			cfg.AdvertiseAddr = a
		case "gossip_port":
			cfg.GossipPort = p.intIn(v, key, 1, 65535)
		case "key_file":
			cfg.KeyFile = p.str(v, key)
		case "log_level":
			cfg.LogLevel = p.enum(v, key, logLevels)
		case "seeds":
			cfg.Seeds = nil
			for i, s := range p.seq(v, key) {
				k := fmt.Sprintf("%s[%d]", key, i)
				n := len(p.errs)
				hp := p.str(s, k)
				if err := checkHostPort(hp); err != nil && len(p.errs) == n {
					p.errf(s, k, "%v", err)
				}
				cfg.Seeds = append(cfg.Seeds, hp)
			}
		case "devices":
			cfg.Devices = p.devices(v, key)
		default:
			p.errf(k, "", "unknown key %q", key)
		}
	})
	if cfg.KeyFile != "" && !filepath.IsAbs(cfg.KeyFile) && file != "<config>" {
		cfg.KeyFile = filepath.Join(filepath.Dir(file), cfg.KeyFile)
	}
	// Checks across keys (required keys, ...), reported at the key's line or
	// the file, together with the parse errors; a key that already failed to
	// parse is not reported twice.
	failed := map[string]bool{}
	for _, e := range p.errs {
		if ce, ok := e.(*ConfigError); ok {
			failed[baseKey(ce.Key)] = true
		}
	}
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			key, msg, _ := strings.Cut(e.Error(), ": ")
			base := baseKey(key)
			if !failed[base] {
				p.errs = append(p.errs, &ConfigError{File: file, Line: lines[base], Key: key, Msg: msg})
			}
		}
	}
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	return cfg, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// baseKey is the top-level key of a key path: "seeds" of "seeds[2]",
// "devices" of "devices[0].name".
func baseKey(key string) string {
	if i := strings.IndexAny(key, "[."); i >= 0 {
		return key[:i]
	}
	return key
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
// find expected key") into a ConfigError with its line.
func yamlError(file string, err error) *ConfigError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if yamlParserErrors[msg] {
		line++
	}
	return &ConfigError{File: file, Line: line, Msg: msg}
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errf(n *yaml.Node, key, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// mapping calls fn for every key of a mapping node, in order, refusing
// duplicate and non-scalar keys.
func (p *parser) mapping(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, path, "keys must be plain words")
			continue
		}
		name := k.Value
		full := name
		if path != "" {
			full = path + "." + name
		}
		if line, dup := seen[name]; dup {
			p.errf(k, full, "duplicate key (first at line %d)", line)
			continue
		}
		seen[name] = k.Line
		fn(name, k, v)
	}
}

func (p *parser) str(n *yaml.Node, key string) string {
	if n.Kind != yaml.ScalarNode {
		p.errf(n, key, "want a string, got %s", kindName(n))
		return ""
	}
	if n.Tag == "!!null" {
		p.errf(n, key, "want a string, got nothing")
		return ""
	}
	return n.Value
}

func (p *parser) intIn(n *yaml.Node, key string, lo, hi int) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errf(n, key, "want an integer %d-%d, got %s", lo, hi, describe(n))
		return 0
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.errf(n, key, "must be %d-%d, got %s", lo, hi, n.Value)
		return 0
	}
	return int(v)
}

func (p *parser) enum(n *yaml.Node, key string, allowed []string) string {
	s := p.str(n, key)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if n.Kind == yaml.ScalarNode {
		p.errf(n, key, "must be one of %s, got %q", strings.Join(allowed, "|"), s)
	}
	return ""
}

func (p *parser) seq(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, key, "want a list, got %s", kindName(n))
		return nil
	}
	return n.Content
}

func (p *parser) devices(n *yaml.Node, key string) []DeviceConfig {
	var out []DeviceConfig
	names := map[string]int{}
	for i, item := range p.seq(n, key) {
		path := fmt.Sprintf("%s[%d]", key, i)
		if item.Kind != yaml.MappingNode {
			p.errf(item, path, "want a mapping (name:, driver:, ...), got %s", kindName(item))
			continue
		}
		var d DeviceConfig
		p.mapping(item, path, func(k string, kn, v *yaml.Node) {
			full := path + "." + k
			switch k {
			case "name":
				d.Name = p.str(v, full)
			case "driver":
				d.Driver = p.str(v, full)
			case "port":
				d.Port = p.str(v, full)
			case "link":
				d.Link = p.str(v, full)
			case "profile":
				d.Profile = p.str(v, full)
			default:
				p.errf(kn, full, "unknown key")
			}
		})
		switch {
		case d.Name == "":
			p.errf(item, path+".name", "required")
		case !nameRE.MatchString(d.Name):
			p.errf(item, path+".name", "%q is not a valid device name", d.Name)
		default:
			if line, dup := names[d.Name]; dup {
				p.errf(item, path+".name", "device %q already listed at line %d", d.Name, line)
			}
			names[d.Name] = item.Line
		}
		if d.Driver == "" {
			p.errf(item, path+".driver", "required")
		}
		out = append(out, d)
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return describe(n)
}

func describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if host == "" {
		return fmt.Errorf("want host:port, got %q (no host)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be 1-65535 in %q", s)
	}
	return nil
}

// LoadKey reads a gossip key file: the base64 of 32 random bytes, the format
// `edgectl keygen` and `serf keygen` print.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", path, err)
	}
	if len(buf) > maxKeyFileSize {
		return nil, fmt.Errorf("key_file %s: too large for a key", path)
	}
	return ParseKey(path, string(buf))
}

// ParseKey decodes a base64 gossip key; src names its origin in errors.
func ParseKey(src, text string) ([]byte, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fmt.Errorf("key_file %s: empty (create one with `edgectl keygen`)", src)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key_file %s: not base64: %w", src, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key_file %s: want a 32-byte key, got %d bytes (create one with `edgectl keygen`)", src, len(key))
	}
	return key, nil
}
