package lab

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults used by DefaultConfig and for zero fields of a Config.
const (
	DefaultDir          = "/run/edgelab"
	DefaultPrefix       = "edgelab"
	DefaultSite         = "lab"
	DefaultGossipPort   = 7946
	DefaultReadyTimeout = 20 * time.Second
)

// DefaultSubnet is the lab's default subnet (TEST-NET-1, RFC 5737).
var DefaultSubnet = netip.MustParsePrefix("192.0.2.0/24")

// firstHost is the host number of node index 0: node i gets subnet+firstHost+i.
const firstHost = 10

// maxSocketPath is the longest unix socket path the kernel accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// Config describes a lab. Zero fields other than Nodes take their defaults.
type Config struct {
	// Nodes is the number of edged nodes, named node1..nodeN. Zero is allowed:
	// the lab then has only its bridge and nodes come from AddNode.
	Nodes int
	// Dir is the state directory; default /run/edgelab.
	Dir string
	// Prefix starts every namespace name ("PREFIX-br", "PREFIX-node1"); default
	// "edgelab". Letters, digits and '_' only (no '-', so that one lab's
	// prefix is never the start of another's names); at most 15 characters.
	Prefix string
	// Edged is the edged binary. Default: "edged" next to the running
	// executable, else found in $PATH. A name without '/' is looked up in $PATH.
	Edged string
	// Site is the site name written in every node config; default "lab".
	Site string
	// LogLevel, when set, is written as log_level in every node config.
	LogLevel string
	// GossipPort is written as gossip_port; default 7946.
	GossipPort int
	// Seeds, when set, are written as seeds ("host:port") in every node config.
	Seeds []string
	// Extra holds raw YAML lines appended to every node config.
	Extra []string
	// Env holds extra "KEY=value" environment entries for every node process.
	Env []string
	// Subnet is the IPv4 subnet of the bridge; default 192.0.2.0/24. Node i
	// (1-based) gets the address subnet+10+i.
	Subnet netip.Prefix
	// ReadyTimeout bounds the wait for READY=1 from a node; default 20s.
	ReadyTimeout time.Duration
	// NoTLS leaves site credentials out: raft stays off on every node.
	NoTLS bool
	// BootstrapExpect is written as bootstrap_expect in every node config
	// with credentials, also in nodes added later; default min(3, Nodes), at
	// least 1. A lab made with no nodes that AddNode fills should set it.
	BootstrapExpect int
	// MetricsPort, when set, gives every node (also those added later) a
	// metrics_address on its own eth0 address and this port. Off by
	// default: a previous release does not know the key.
	MetricsPort int
	// Logger receives the lab's progress; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a three-node lab with every default filled in.
func DefaultConfig() Config {
	return Config{
		Nodes:        3,
		Dir:          DefaultDir,
		Prefix:       DefaultPrefix,
		Site:         DefaultSite,
		GossipPort:   DefaultGossipPort,
		Subnet:       DefaultSubnet,
		ReadyTimeout: DefaultReadyTimeout,
	}
}

// withDefaults returns c with zero fields (other than Nodes) set to defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Dir == "" {
		c.Dir = d.Dir
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.Site == "" {
		c.Site = d.Site
	}
	if c.GossipPort == 0 {
		c.GossipPort = d.GossipPort
	}
	if !c.Subnet.IsValid() {
		c.Subnet = d.Subnet
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = d.ReadyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

var (
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,15}$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
)

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("lab: config: prefix %q: want 1-15 letters, digits or '_'", c.Prefix)
	}
	if err := validName("site", c.Site); err != nil {
		return err
	}
	if err := validSubnet(c.Subnet); err != nil {
		return err
	}
	if c.Nodes < 0 || c.Nodes > maxNodes(c.Subnet) {
		return fmt.Errorf("lab: config: nodes %d: want 0 to %d in subnet %s", c.Nodes, maxNodes(c.Subnet), c.Subnet)
	}
	if c.GossipPort < 1 || c.GossipPort > 65535 {
		return fmt.Errorf("lab: config: gossip port %d out of range 1-65535", c.GossipPort)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("lab: config: log level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("lab: config: bootstrap expect %d is negative", c.BootstrapExpect)
	}
	if c.MetricsPort < 0 || c.MetricsPort > 65535 {
		return fmt.Errorf("lab: config: metrics port %d out of range 1-65535", c.MetricsPort)
	}
	if c.ReadyTimeout < 0 {
		return fmt.Errorf("lab: config: ready timeout %v is negative", c.ReadyTimeout)
	}
	if err := validEnv(c.Env); err != nil {
		return err
	}
	if c.Nodes > 0 {
		if err := validSocketPaths(c.Dir, nodeName(c.Nodes)); err != nil {
			return err
		}
	}
	return nil
}

// NodeAddr returns the address node i (1-based) of a lab made from c gets,
// for example to build Seeds before Up.
func (c Config) NodeAddr(i int) netip.Addr {
	return hostAddr(c.withDefaults().Subnet, i)
}

// NodeSpec describes a node added with AddNode.
type NodeSpec struct {
	// Name is the node name, required: letters, digits, '_', '.', '-'.
	Name string
	// Site overrides the lab's site in this node's config.
	Site string
	// Key, when set, is this node's gossip key (32 bytes), written to its own
	// key file; nil uses the lab's site key. See NewKey.
	Key []byte
	// Seeds are written as seeds ("host:port").
	Seeds []string
	// Extra holds raw YAML lines appended to the node config.
	Extra []string
	// Argv replaces "EDGED --config CONFIG" as the node's command, for
	// example a stock serf agent. These placeholders are replaced in every
	// argument: {name}, {addr}, {gossip_port}, {config}, {dir}, {socket},
	// {key_file}, {key} (the base64 key).
	Argv []string
	// Edged, when set, is the edged binary this node runs instead of the
	// lab's (Config.Edged), resolved the same way; not with Argv. See also
	// Lab.SetEdged.
	Edged string
	// Env holds extra "KEY=value" environment entries for the process.
	Env []string
	// NoWait starts the process without waiting for READY=1: for commands that
	// never send it and for nodes expected to fail (see Lab.Wait).
	NoWait bool
	// NoTLS gives the node no site credentials (raft stays off on it). A
	// node of another site never gets this site's credentials.
	NoTLS bool
	// Index, when set, is the node's address index (its address is
	// Config.NodeAddr(Index)); it must be free. Default: one past the
	// highest in use.
	Index int
}

func (s NodeSpec) validate() error {
	if err := validNodeName(s.Name); err != nil {
		return err
	}
	if s.Site != "" {
		if err := validName("site", s.Site); err != nil {
			return err
		}
	}
	if s.Key != nil && len(s.Key) != keySize {
		return fmt.Errorf("lab: node %s: key is %d bytes, want %d", s.Name, len(s.Key), keySize)
	}
	if s.Argv != nil && len(s.Argv) == 0 {
		return fmt.Errorf("lab: node %s: empty argv", s.Name)
	}
	if s.Index < 0 {
		return fmt.Errorf("lab: node %s: index %d is negative", s.Name, s.Index)
	}
	if s.Argv != nil && s.Edged != "" {
		return fmt.Errorf("lab: node %s: give argv or edged, not both", s.Name)
	}
	return validEnv(s.Env)
}

func validName(what, v string) error {
	if !nameRE.MatchString(v) {
		return fmt.Errorf("lab: config: %s %q: want 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit", what, v)
	}
	return nil
}

func validNodeName(name string) error {
	if err := validName("node name", name); err != nil {
		return err
	}
	if name == "br" {
		return errors.New(`lab: config: node name "br" is reserved for the bridge namespace`)
	}
	return nil
}

func validEnv(env []string) error {
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("lab: config: env entry %q: want KEY=value", e)
		}
	}
	return nil
}

func validSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("lab: config: subnet %s: want an IPv4 prefix", p)
	}
	if p != p.Masked() {
		return fmt.Errorf("lab: config: subnet %s: host bits set (want %s)", p, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 27 {
		return fmt.Errorf("lab: config: subnet %s: want a length from /8 to /27", p)
	}
	return nil
}

// validSocketPaths checks that the longest socket path of a node fits in
// sun_path.
func validSocketPaths(dir, name string) error {
	p := filepath.Join(dir, name, "notify.sock") // longer than edged.sock
	if len(p) > maxSocketPath {
		return fmt.Errorf("lab: config: socket path %s is %d bytes, the kernel takes at most %d: use a shorter dir", p, len(p), maxSocketPath)
	}
	return nil
}

// maxNodes is the highest node index that fits in p (leaving the broadcast
// address alone).
func maxNodes(p netip.Prefix) int {
	return 1<<(32-p.Bits()) - 2 - firstHost
}

func hostAddr(p netip.Prefix, i int) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += uint32(firstHost + i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i) }
