package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"edge/internal/pki"
)

// nodeConf is what a node config holds besides what its nodeState fixes.
type nodeConf struct {
	site    string
	keyFile string
	seeds   []string
	extra   []string
	// tlsDir is the site CA folder; "" for no credentials.
	tlsDir          string
	bootstrapExpect int
	// metricsPort, when set, gives the node a metrics_address on its own
	// address.
	metricsPort int
}

// writeNodeConfig makes the node directory, its data directory and its
// config file.
func (l *Lab) writeNodeConfig(n nodeState, c nodeConf) error {
	if err := os.MkdirAll(filepath.Join(n.Dir, "data"), 0o700); err != nil {
		return fmt.Errorf("lab: node %s: %w", n.Name, err)
	}
	if c.tlsDir != "" {
		ip := net.ParseIP(n.Addr)
		if _, err := pki.CreateNodeCert(c.tlsDir, filepath.Join(n.Dir, "tls"), n.Name, []net.IP{ip}, 0); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lab: node %s: credentials: %w", n.Name, err)
		}
	}
	c.metricsPort = l.metricsPort()
	if err := writeFileAtomic(n.Config, nodeYAML(n, c, l.gossipPort(), l.logLevel()), 0o644); err != nil {
		return fmt.Errorf("lab: node %s: config: %w", n.Name, err)
	}
	return nil
}

func (l *Lab) gossipPort() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.GossipPort
}

func (l *Lab) logLevel() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.LogLevel
}

func (l *Lab) metricsPort() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.MetricsPort
}

// nodeYAML renders a node config.
func nodeYAML(n nodeState, c nodeConf, gossipPort int, logLevel string) []byte {
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	kv("node", yamlString(n.Name))
	kv("site", yamlString(c.site))
	kv("interface", "eth0")
	kv("gossip_port", strconv.Itoa(gossipPort))
	kv("key_file", yamlString(c.keyFile))
	kv("data_dir", yamlString(filepath.Join(n.Dir, "data")))
	kv("socket", yamlString(n.Socket))
	if logLevel != "" {
		kv("log_level", yamlString(logLevel))
	}
	if c.tlsDir != "" {
		dir := filepath.Join(n.Dir, "tls")
		kv("tls_ca", yamlString(filepath.Join(dir, "ca.crt")))
		kv("tls_cert", yamlString(filepath.Join(dir, n.Name+".crt")))
		kv("tls_key", yamlString(filepath.Join(dir, n.Name+".key")))
		kv("bootstrap_expect", strconv.Itoa(max(c.bootstrapExpect, 1)))
	}
	if c.metricsPort != 0 {
		kv("metrics_address", yamlString(net.JoinHostPort(n.Addr, strconv.Itoa(c.metricsPort))))
	}
	if len(c.seeds) > 0 {
		b.WriteString("seeds:\n")
		for _, s := range c.seeds {
			fmt.Fprintf(&b, "  - %s\n", yamlString(s))
		}
	}
	for _, e := range c.extra {
		b.WriteString(strings.TrimRight(e, "\n"))
		b.WriteString("\n")
	}
	return []byte(b.String())
}

var plainRE = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./-]*$`)

// yamlString returns s as a YAML scalar that parses back as the string s:
// plain when that is unambiguous, else double-quoted (Go's quoting is valid
// YAML double-quoted syntax).
func yamlString(s string) string {
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return strconv.Quote(s)
	}
	if plainRE.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// SimDevices are node config lines giving a node two simulated devices (a
// radio and a rectifier, in memory) with desired settings, so a lab shows
// real device state. Pass them as Config.Extra.
var SimDevices = []string{
	"devices:",
	"  - name: radio0",
	"    driver: sim",
	"    options: {model: radio}",
	"    settings: {frequency_mhz: 3550, power_dbm: 20, enabled: true, mode: auto}",
	"  - name: rect0",
	"    driver: sim",
	"    on_drift: report",
	"    options: {model: rectifier}",
	"    settings: {float_voltage: 54.0, current_limit: 50, equalize: false}",
}
