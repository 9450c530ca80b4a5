package daemon

import (
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
	"time"

	"gopkg.in/yaml.v3"

	"edge/hardware"
	"edge/internal/strictyaml"
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
	// RaftPort carries raft and node RPC (mutual TLS); 0 means GossipPort+1.
	RaftPort int
	// TLS credentials of the site: without them raft is off on this node.
	TLSCA, TLSCert, TLSKey string
	// BootstrapExpect is how many nodes a new site waits for before the
	// first raft voters start the cluster.
	BootstrapExpect int
	// MetricsAddress is the host:port GET /metrics listens on ("" is off).
	MetricsAddress string
	Devices        []DeviceConfig
}

// DeviceConfig is one entry of the device inventory: what is plugged in
// where, and the settings it should have.
type DeviceConfig = hardware.Config

// Device timeouts accepted in the node config.
const (
	minDeviceTimeout = 10 * time.Millisecond
	maxDeviceTimeout = time.Minute
)

// DefaultConfig returns a config with every default filled in; Site and
// KeyFile are left empty because they have none.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Node:            host,
		DataDir:         DefaultDataDir,
		Socket:          DefaultSocket,
		GossipPort:      DefaultGossipPort,
		LogLevel:        "info",
		BootstrapExpect: 3,
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
	if n := boolCount(c.TLSCA != "", c.TLSCert != "", c.TLSKey != ""); n != 0 && n != 3 {
		errs = append(errs, errors.New("tls_ca: tls_ca, tls_cert and tls_key go together (create them with `edgectl tls`)"))
	}
	if c.RaftPort == 0 && c.TLSCA != "" && c.GossipPort == 65535 {
		errs = append(errs, errors.New("raft_port: gossip_port+1 (the default) is out of range; set raft_port"))
	}
	if c.RaftPort != 0 && c.RaftPort == c.GossipPort {
		errs = append(errs, fmt.Errorf("raft_port: must differ from gossip_port %d", c.GossipPort))
	}
	for i, s := range c.Seeds {
		if err := checkHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("seeds[%d]: %w", i, err))
		}
	}
	if c.MetricsAddress != "" {
		if err := checkHostPort(c.MetricsAddress); err != nil {
			errs = append(errs, fmt.Errorf("metrics_address: %w", err))
		}
	}
	return errors.Join(errs...)
}

func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// RaftPortOrDefault is raft_port, or gossip_port+1 when unset.
func (c Config) RaftPortOrDefault() int {
	if c.RaftPort != 0 {
		return c.RaftPort
	}
	return c.GossipPort + 1
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
type ConfigError = strictyaml.Error

// ParseConfig parses a node config document. file names it in errors.
// Relative paths in it (key_file) are taken relative to the file's folder.
func ParseConfig(file string, data []byte) (Config, error) {
	if file == "" {
		file = "<config>"
	}
	cfg := DefaultConfig()
	cfg.Path = file
	p := &parser{Parser: strictyaml.Parser{File: file}}

	root, err := strictyaml.Decode(file, data, "node:, site:, ...")
	if err != nil {
		return Config{}, err
	}
	if root == nil {
		return Config{}, &ConfigError{File: file, Msg: "empty file: site and key_file are required"}
	}
	lines := map[string]int{}
	p.Mapping(root, "", func(key string, k, v *yaml.Node) {
		lines[key] = k.Line
		switch key {
		case "node":
			cfg.Node = p.Str(v, key)
		case "site":
			cfg.Site = p.Str(v, key)
		case "data_dir":
			cfg.DataDir = p.Str(v, key)
		case "socket":
			cfg.Socket = p.Str(v, key)
		case "interface":
			cfg.Interface = p.Str(v, key)
		case "advertise_addr":
			s := p.Str(v, key)
			a, err := netip.ParseAddr(s)
			if err != nil && s != "" {
				p.Errorf(v, key, "want an IP address, got %q", s)
			}
			cfg.AdvertiseAddr = a
		case "gossip_port":
			cfg.GossipPort = p.IntIn(v, key, 1, 65535)
		case "key_file":
			cfg.KeyFile = p.Str(v, key)
		case "raft_port":
			cfg.RaftPort = p.IntIn(v, key, 1, 65535)
		case "tls_ca":
			cfg.TLSCA = p.Str(v, key)
		case "tls_cert":
			cfg.TLSCert = p.Str(v, key)
		case "tls_key":
			cfg.TLSKey = p.Str(v, key)
		case "bootstrap_expect":
			cfg.BootstrapExpect = p.IntIn(v, key, 1, 7)
		case "log_level":
			cfg.LogLevel = p.Enum(v, key, logLevels)
		case "metrics_address":
			cfg.MetricsAddress = p.Str(v, key)
		case "seeds":
			cfg.Seeds = nil
			for i, s := range p.Seq(v, key) {
				k := fmt.Sprintf("%s[%d]", key, i)
				n := len(p.Errs)
				hp := p.Str(s, k)
				if err := checkHostPort(hp); err != nil && len(p.Errs) == n {
					p.Errorf(s, k, "%v", err)
				}
				cfg.Seeds = append(cfg.Seeds, hp)
			}
		case "devices":
			cfg.Devices = p.devices(v, key)
		default:
			p.Errorf(k, "", "unknown key %q", key)
		}
	})
	for _, f := range []*string{&cfg.KeyFile, &cfg.TLSCA, &cfg.TLSCert, &cfg.TLSKey} {
		if *f != "" && !filepath.IsAbs(*f) && file != "<config>" {
			*f = filepath.Join(filepath.Dir(file), *f)
		}
	}
	// Checks across keys (required keys, ...), reported at the key's line or
	// the file, together with the parse errors; a key that already failed to
	// parse is not reported twice.
	failed := p.Failed()
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			key, msg, _ := strings.Cut(e.Error(), ": ")
			base := strictyaml.BaseKey(key)
			if !failed[base] {
				p.Errs = append(p.Errs, &ConfigError{File: file, Line: lines[base], Key: key, Msg: msg})
			}
		}
	}
	if len(p.Errs) > 0 {
		return Config{}, errors.Join(p.Errs...)
	}
	return cfg, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// parser is the strict YAML parser with the node config's own readers.
type parser struct {
	strictyaml.Parser
}

func (p *parser) devices(n *yaml.Node, key string) []DeviceConfig {
	var out []DeviceConfig
	names := map[string]int{}
	for i, item := range p.Seq(n, key) {
		path := fmt.Sprintf("%s[%d]", key, i)
		if item.Kind != yaml.MappingNode {
			p.Errorf(item, path, "want a mapping (name:, driver:, ...), got %s", strictyaml.KindName(item))
			continue
		}
		var d DeviceConfig
		p.Mapping(item, path, func(k string, kn, v *yaml.Node) {
			full := path + "." + k
			switch k {
			case "name":
				d.Name = p.Str(v, full)
			case "driver":
				d.Driver = p.Str(v, full)
			case "port":
				d.Port = p.Str(v, full)
			case "link":
				d.Link = p.Str(v, full)
			case "profile":
				d.Profile = p.Str(v, full)
			case "baud":
				d.Baud = p.IntIn(v, full, 50, 4000000)
			case "framing":
				d.Framing = p.Enum(v, full, framings)
			case "unit":
				d.Unit = p.IntIn(v, full, 1, 247)
			case "timeout":
				d.Timeout = p.Duration(v, full, minDeviceTimeout, maxDeviceTimeout)
			case "on_drift":
				d.OnDrift = p.Enum(v, full, []string{"correct", "report"})
			case "settings":
				d.Settings = p.settings(v, full)
			case "options":
				d.Options = map[string]string{}
				p.Mapping(v, full, func(ok string, _, ov *yaml.Node) {
					d.Options[ok] = p.Str(ov, full+"."+ok)
				})
			default:
				p.Errorf(kn, full, "unknown key")
			}
		})
		if d.Profile != "" && !filepath.IsAbs(d.Profile) && p.File != "<config>" {
			d.Profile = filepath.Join(filepath.Dir(p.File), d.Profile)
		}
		switch {
		case d.Name == "":
			p.Errorf(item, path+".name", "required")
		case !nameRE.MatchString(d.Name):
			p.Errorf(item, path+".name", "%q is not a valid device name", d.Name)
		default:
			if line, dup := names[d.Name]; dup {
				p.Errorf(item, path+".name", "device %q already listed at line %d", d.Name, line)
			}
			names[d.Name] = item.Line
		}
		if d.Driver == "" {
			p.Errorf(item, path+".driver", "required")
		}
		out = append(out, d)
	}
	return out
}

var framings = []string{"8N1", "8E1", "8O1", "8N2", "7E1", "7O1", "7N2", "7E2", "7O2"}

// settings reads a device's desired settings: scalars become string, bool,
// int64 or float64, lists of scalars []string.
func (p *parser) settings(n *yaml.Node, path string) hardware.Settings {
	out := hardware.Settings{}
	p.Mapping(n, path, func(k string, _, v *yaml.Node) {
		full := path + "." + k
		switch v.Kind {
		case yaml.ScalarNode:
			switch v.Tag {
			case "!!int":
				i, err := strconv.ParseInt(v.Value, 0, 64)
				if err != nil {
					p.Errorf(v, full, "integer out of range: %s", v.Value)
					return
				}
				out[k] = i
			case "!!float":
				out[k] = p.Float(v, full)
			case "!!bool":
				out[k] = p.Bool(v, full)
			case "!!null":
				p.Errorf(v, full, "want a value, got nothing")
			default:
				out[k] = v.Value
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
