package daemon

import (
	"fmt"
	"io"
	"strings"
	"unicode"
)

// The configuration reference: every key of the node config and of the site
// document, with its type, default, allowed values, when a change takes
// effect and what it does. docs/config-reference.md is rendered from these
// tables (RenderConfigReference); configdoc_test.go checks them against the
// parsers: every key a parser knows is here and nothing else, every example
// parses, and the ranges, enums, defaults and reload behaviour agree with
// the code.

// Effect says when a changed key takes effect.
type Effect int

// Effects of a changed key.
const (
	// OnRestart: `systemctl restart edged`; a reload keeps the running value
	// and logs that the key waits for a restart.
	OnRestart Effect = iota
	// OnReload: `systemctl reload edged` (SIGHUP) applies it in the running
	// daemon.
	OnReload
	// OnApply: a site document key, in effect once `edgectl apply` commits
	// the document.
	OnApply
)

func (e Effect) String() string {
	switch e {
	case OnRestart:
		return "restart"
	case OnReload:
		return "reload"
	case OnApply:
		return "apply"
	}
	return fmt.Sprintf("Effect(%d)", int(e))
}

// ConfigKey documents one key of a config file.
type ConfigKey struct {
	// Key is the key's path: "gossip_port", "devices[].baud",
	// "policy.strategy", "constraints[].min".
	Key string
	// Type is the kind of value, in words: "integer", "path", "duration".
	Type string
	// Default is the value the parser uses when the key is absent, as it
	// would be written in YAML ("7946"); the tests check that writing it
	// out changes nothing. DefaultText is used instead when the default is
	// not one literal value ("the hostname", "gossip_port+1").
	Default     string
	DefaultText string
	// Required: the file is refused without the key.
	Required bool
	// Min and Max bound an integer or a duration, as written in YAML
	// ("1", "65535"; "10ms", "1m"). Values lists the words an enum takes.
	// Allowed describes any other rule, in words.
	Min, Max string
	Values   []string
	Allowed  string
	// Effect says when a change takes effect; EffectNote names an
	// exception ("turning TLS on or off: restart").
	Effect     Effect
	EffectNote string
	// Example is a value that parses, in YAML flow style ("7946",
	// "[198.51.100.20:7946]"). With lists the sibling keys the example
	// needs to parse ("strategy: rolling" for max_unavailable).
	Example string
	With    []string
	// Doc says what the key does, in one paragraph of Markdown.
	Doc string
}

// tlsEffect: a reload puts renewed or replaced credentials in use; turning
// raft on or off does not.
const tlsEffect = "adding or removing the three: restart"

// NodeConfigKeys are the top-level keys of the node config
// (/etc/edged/edged.yaml), in the order the reference lists them.
var NodeConfigKeys = []ConfigKey{
	{
		Key: "node", Type: "string", DefaultText: "the hostname",
		Allowed: "a name: letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 63",
		Effect:  OnRestart, Example: "rru-3",
		Doc: "The node's name, unique within the site. Other nodes, `edgectl members`, the site document's `nodes:` selectors " +
			"and the node's TLS certificate all use it: the certificate must be issued for exactly this name " +
			"(`edgectl tls cert --node`), so renaming a node needs a new certificate. A node that takes a name another " +
			"live node of the site already has is refused and stops with exit code 78.",
	},
	{
		Key: "site", Type: "string", Required: true,
		Allowed: "a name, as for `node`",
		Effect:  OnRestart, Example: "mast-17",
		Doc: "The site's name. Nodes only cluster with nodes of the same site: mDNS sightings of other sites are ignored. " +
			"It must match the site of the TLS CA (`edgectl tls ca --site`) and the `site:` of every site document applied.",
	},
	{
		Key: "data_dir", Type: "path", Default: DefaultDataDir,
		Allowed: "not empty",
		Effect:  OnRestart, Example: "/var/lib/edged",
		Doc: "Local state: `serf.snapshot` (the members last known, to rejoin after a reboot before mDNS answers), " +
			"`raft/` (this node's replica of the site state; [recovery.md](recovery.md) when quorum is lost), `journal.json` " +
			"(what the node last put on its hardware, and the confirm deadline of a tentative change) and, once the gossip " +
			"keys were rotated, `gossip.keyring`. Keep it on persistent storage, and keep it when edged is upgraded or reinstalled. The unit's " +
			"`StateDirectory=edged` creates `/var/lib/edged` owned by user edged, mode 0700; another folder must be " +
			"writable by edged and allowed by the unit (`ReadWritePaths=`).",
	},
	{
		Key: "socket", Type: "path", Default: DefaultSocket,
		Allowed: "not empty",
		Effect:  OnRestart, Example: "/run/edged/edged.sock",
		Doc: "The local API's unix socket, for `edgectl` (`edgectl --socket PATH` for another one). Mode 0660, group " +
			"`edged` when the group exists: members of the group use `edgectl` without root. Nothing listens on TCP for the API.",
	},
	{
		Key: "interface", Type: "string", DefaultText: "every interface that is up, multicast-capable and not loopback",
		Allowed: "a network interface name",
		Effect:  OnRestart, Example: "eth0",
		Doc: "The interface to advertise on over mDNS, browse, and gossip from. Without it edged uses every interface " +
			"that is up and multicast-capable, and advertises the first non-loopback IPv4 address it finds (else a global " +
			"IPv6 one). Set it on a node with more than one network, so the others get an address they can reach; " +
			"with it set, gossip and raft bind to that interface's address only.",
	},
	{
		Key: "advertise_addr", Type: "IP address", DefaultText: "the first IPv4 address of `interface`",
		Allowed: "an IPv4 or IPv6 address of this node",
		Effect:  OnRestart, Example: "192.0.2.13",
		Doc: "The address the other nodes use for this node, for gossip and raft (both bind to it). Needed only when " +
			"`interface` alone does not pick the right one (several addresses on one interface).",
	},
	{
		Key: "gossip_port", Type: "integer", Default: "7946", Min: "1", Max: "65535",
		Effect: OnRestart, Example: "7946",
		Doc: "The serf gossip port, TCP and UDP, announced to the others over mDNS. Open it between the nodes in both protocols. " +
			"All nodes of a site normally use the same one; `seeds` name it per node.",
	},
	{
		Key: "raft_port", Type: "integer", DefaultText: "`gossip_port`+1 (7947)", Min: "1", Max: "65535",
		Allowed: "not `gossip_port`",
		Effect:  OnRestart, Example: "7947",
		Doc: "The TCP port for raft and every other node-to-node call (mutual TLS only). Announced to the others in gossip; " +
			"open it between the nodes. Set it when `gossip_port` is 65535 (the default would be out of range).",
	},
	{
		Key: "key_file", Type: "path", Required: true,
		Allowed: "a file holding the base64 of 32 bytes (`edgectl keygen`)",
		Effect:  OnRestart, Example: "/etc/edged/gossip.key",
		Doc: "The site's gossip encryption key: the base64 of 32 random bytes, the format of `edgectl keygen` and " +
			"`serf keygen`. The same key on every node: a node with another key cannot join, and the log says so on both " +
			"sides. Under the shipped unit edged runs as user edged: install the file `root:edged` mode 0640 in a " +
			"`root:edged` 0750 `/etc/edged` ([install.md](install.md)). Once the site's keys were rotated with `edgectl keys` " +
			"([keys.md](keys.md)), the keyring edged keeps in `data_dir` (`gossip.keyring`) wins over this file at start; the " +
			"file must still hold a valid key, and a new node should get the site's current one.",
	},
	{
		Key: "tls_ca", Type: "path", DefaultText: "none: raft off",
		Allowed: "PEM certificates; with `tls_cert` and `tls_key`",
		Effect:  OnReload, EffectNote: tlsEffect, Example: "/etc/edged/tls/ca.crt",
		With: []string{"tls_cert: /etc/edged/tls/rru-3.crt", "tls_key: /etc/edged/tls/rru-3.key"},
		Doc: "The site CA's certificate (`edgectl tls ca`), the same file on every node; it may hold several CA " +
			"certificates while the site moves to a new CA. `tls_ca`, `tls_cert` and `tls_key` go together: all three " +
			"or none. Without them the node gossips and drives its devices from its own `settings`, but raft is off: it " +
			"holds no replica of the site config and takes no part in site changes ([tls.md](tls.md)).",
	},
	{
		Key: "tls_cert", Type: "path", DefaultText: "none: raft off",
		Allowed: "a PEM certificate issued for `node` by the CA of `site`",
		Effect:  OnReload, EffectNote: tlsEffect, Example: "/etc/edged/tls/rru-3.crt",
		With: []string{"tls_ca: /etc/edged/tls/ca.crt", "tls_key: /etc/edged/tls/rru-3.key"},
		Doc: "This node's certificate (`edgectl tls cert --node NAME`). edged checks at start that it is valid now, " +
			"signed by `tls_ca`, issued for this `node` and for this `site`, and stops with exit code 78 naming the file " +
			"and the problem otherwise. A reload reads the three files again and checks them the same way: renewed or " +
			"replaced credentials are used for new connections without a restart, and a problem refuses the reload.",
	},
	{
		Key: "tls_key", Type: "path", DefaultText: "none: raft off",
		Allowed: "the PEM private key of `tls_cert`",
		Effect:  OnReload, EffectNote: tlsEffect, Example: "/etc/edged/tls/rru-3.key",
		With: []string{"tls_ca: /etc/edged/tls/ca.crt", "tls_cert: /etc/edged/tls/rru-3.crt"},
		Doc:  "This node's private key, matching `tls_cert`. Install it `root:edged` mode 0640; it belongs to this node alone (a copy of it lets another box pass as this node).",
	},
	{
		Key: "bootstrap_expect", Type: "integer", Default: "3", Min: "1", Max: "7",
		Effect: OnRestart, Example: "3",
		Doc: "Only for a new site: how many nodes with TLS credentials must see each other before raft starts; the " +
			"lowest node names become the first voters. Use the same value on every node. Ignored once the node belongs " +
			"to a raft cluster (a node added later joins the existing one). `1` only for a one-node site: a node that " +
			"sees no other then starts a cluster of its own.",
	},
	{
		Key: "seeds", Type: "list of `host:port`", DefaultText: "none",
		Allowed: "gossip addresses of other nodes",
		Effect:  OnRestart, Example: "[198.51.100.20:7946, 198.51.100.21:7946]",
		Doc: "Nodes to join directly at their gossip port, besides those mDNS finds. Only needed where multicast does " +
			"not reach every node (a routed site); one or two per node are enough, since gossip spreads the rest.",
	},
	{
		Key: "log_level", Type: "word", Default: "info", Values: logLevels,
		Effect: OnReload, Example: "debug",
		Doc: "The lowest level edged logs. Under systemd every line carries its level as a journal priority " +
			"(`journalctl -u edged -p warning`). `debug` adds refused connections, ignored mDNS sightings and each " +
			"device exchange.",
	},
	{
		Key: "metrics_address", Type: "`host:port`", DefaultText: "none: off",
		Allowed: "`host:port` with a host: an address of this node",
		Effect:  OnRestart, Example: "127.0.0.1:9464",
		Doc: "Where edged serves Prometheus metrics (`GET /metrics`, plain HTTP); off unless set. It is not " +
			"authenticated: listen on loopback or a management network, and open the port only to the scraper. " +
			"Under the shipped unit use a port above 1023 (edged has no `CAP_NET_BIND_SERVICE`). The metrics: " +
			"[operations.md](operations.md#metrics).",
	},
	{
		Key: "devices", Type: "list of devices", DefaultText: "none",
		Allowed: "entries with the keys below; names unique",
		Effect:  OnReload, Example: "[{name: radio0, driver: sim, options: {model: radio}}]",
		Doc: "The node's device inventory: what is plugged in where and the node's own desired settings. A reload " +
			"starts added devices, closes removed ones and reopens changed ones; a change of `settings` or `on_drift` " +
			"alone goes to the running device. An unknown `driver` refuses the whole file ([devices.md](devices.md)).",
	},
}

// DeviceConfigKeys are the keys of one `devices:` entry.
var DeviceConfigKeys = []ConfigKey{
	{
		Key: "devices[].name", Type: "string", Required: true,
		Allowed: "a name, as for `node`; unique on the node",
		Effect:  OnReload, Example: "radio0", With: []string{"driver: sim"},
		Doc: "The device's name: `edgectl devices` shows it, and site documents set its values by it (`nodes: {\"*\": {radio0: {...}}}`).",
	},
	{
		Key: "devices[].driver", Type: "word", Required: true,
		Allowed: "`line`, `modbus`, `netlink`, `sim`",
		Effect:  OnReload, Example: "line", With: []string{"name: radio0"},
		Doc: "How edged talks to the device: `line` (serial line protocols: SCPI, 3GPP AT commands, vendor CLIs), " +
			"`modbus` (Modbus RTU over a serial port), `netlink` (a Linux network link), `sim` (a simulated device, in " +
			"memory). Checked when edged starts or reloads: an unknown driver refuses the file.",
	},
	{
		Key: "devices[].port", Type: "path", DefaultText: "none",
		Allowed: "a serial device",
		Effect:  OnReload, Example: "/dev/ttyUSB0", With: []string{"name: radio0", "driver: line"},
		Doc: "The serial port, for `line` and `modbus`. Prefer `/dev/serial/by-id/...`: it names the adapter, not the " +
			"order it was plugged in. The shipped unit lets edged open `ttyS*`, `ttyUSB*`, `ttyACM*` and `ttyAMA*` " +
			"(group `dialout`); another kind needs a drop-in with `DeviceAllow=`.",
	},
	{
		Key: "devices[].link", Type: "string", DefaultText: "none",
		Allowed: "a network interface name",
		Effect:  OnReload, Example: "eth1", With: []string{"name: uplink", "driver: netlink"},
		Doc: "The network interface, for `netlink`.",
	},
	{
		Key: "devices[].profile", Type: "path", DefaultText: "none",
		Allowed: "a profile file",
		Effect:  OnReload, Example: "/etc/edged/profiles/scpi-instrument.yaml", With: []string{"name: radio0", "driver: line"},
		Doc: "The profile that describes the device model, for `line` and `modbus` ([profiles-line.md](profiles-line.md), " +
			"[profiles-modbus.md](profiles-modbus.md)). Keep profiles in `/etc/edged/profiles/`; a relative path is " +
			"taken from the config file's folder.",
	},
	{
		Key: "devices[].baud", Type: "integer", DefaultText: "the profile's `baud`, else 9600", Min: "50", Max: "4000000",
		Effect: OnReload, Example: "19200", With: []string{"name: rect0", "driver: modbus"},
		Doc: "The serial line's speed in bits per second; it must be the device's.",
	},
	{
		Key: "devices[].framing", Type: "word", DefaultText: "the profile's `framing`, else `8N1`", Values: framings,
		Effect: OnReload, Example: "8E1", With: []string{"name: rect0", "driver: modbus"},
		Doc: "Data bits, parity (`N`one, `E`ven, `O`dd) and stop bits of the serial line; it must be the device's.",
	},
	{
		Key: "devices[].unit", Type: "integer", DefaultText: "`1`", Min: "1", Max: "247",
		Effect: OnReload, Example: "1", With: []string{"name: rect0", "driver: modbus"},
		Doc: "The Modbus unit (slave) id, for `modbus`.",
	},
	{
		Key: "devices[].timeout", Type: "duration", DefaultText: "the profile's `timeout`, else 2s (`line`) or 1s (`modbus`)",
		Min: "10ms", Max: "1m",
		Effect: OnReload, Example: "500ms", With: []string{"name: rect0", "driver: modbus"},
		Doc: "How long one exchange with the device (a command and its answer) may take before it counts as a timeout " +
			"and the device turns `degraded`.",
	},
	{
		Key: "devices[].on_drift", Type: "word", DefaultText: "`correct`", Values: []string{"correct", "report"},
		Effect: OnReload, Example: "report", With: []string{"name: rect0", "driver: sim"},
		Doc: "What to do with drift, a value changed behind edged's back (front panel, another tool): `correct` puts the " +
			"desired value back and logs it, `report` only shows it in `edgectl devices`.",
	},
	{
		Key: "devices[].settings", Type: "mapping", DefaultText: "none",
		Allowed: "`name: value`; values are numbers, `true`/`false`, text or lists of text",
		Effect:  OnReload, Example: "{frequency_mhz: 3550, power_dbm: 20, enabled: true}", With: []string{"name: radio0", "driver: sim"},
		Doc: "The node's own desired values for the device. The site config's values for the device are laid on top, " +
			"setting by setting; a setting the site config stops giving goes back to the value here. The profile (or " +
			"the driver) says which names exist and what they accept.",
	},
	{
		Key: "devices[].options", Type: "mapping of text", DefaultText: "none",
		Allowed: "driver-specific `key: value`",
		Effect:  OnReload, Example: "{model: rectifier}", With: []string{"name: rect0", "driver: sim"},
		Doc: "Driver-specific options. For `sim`: `model` (`radio`, `rectifier`, `gnss`, `switch`), `reject_apply: " +
			"\"true\"` (a device that refuses every write, to rehearse a failed change) and `latency` (a duration added to " +
			"every operation).",
	},
}

// SiteDocumentKeys are the keys of the site document (`edgectl apply -f
// site.yaml`), checked against package edge/coord/site.
var SiteDocumentKeys = []ConfigKey{
	{
		Key: "version", Type: "integer", Required: true, Values: []string{"1"},
		Effect: OnApply, Example: "1",
		Doc: "The schema version of the document; only `1` exists.",
	},
	{
		Key: "site", Type: "string", Required: true,
		Allowed: "the cluster's `site`",
		Effect:  OnApply, Example: "lab",
		Doc: "The site the document is for. A document for another site is refused, so a file cannot land on the wrong site.",
	},
	{
		Key: "policy", Type: "mapping", DefaultText: "parallel, atomic, confirm within 5m by hand",
		Allowed: "the `policy.` keys below",
		Effect:  OnApply, Example: "{strategy: parallel, confirm_timeout: 5m}",
		Doc: "How a change made with this document rolls out and is confirmed.",
	},
	{
		Key: "policy.strategy", Type: "word", Default: "parallel", Values: []string{"parallel", "rolling"},
		Effect: OnApply, Example: "rolling",
		Doc: "`parallel`: every target node applies at once. `rolling`: `max_unavailable` nodes at a time, each batch applied and read back before the next.",
	},
	{
		Key: "policy.max_unavailable", Type: "integer or percentage", DefaultText: "1 with `rolling`",
		Min: "1", Max: "1000", Allowed: "or a percentage `\"1%\"`-`\"100%\"`; only with `rolling`",
		Effect: OnApply, Example: "2", With: []string{"strategy: rolling"},
		Doc: "How many target nodes a rolling change touches at once: a count, or a percentage of the target nodes " +
			"(rounded down, at least 1). An error with `strategy: parallel`.",
	},
	{
		Key: "policy.confirm_timeout", Type: "duration", Default: "5m", Min: "10s", Max: "24h",
		Effect: OnApply, Example: "10m",
		Doc: "A tentative change reverts on every node unless `edgectl confirm` (or `auto_confirm`) confirms it within " +
			"this. Each node keeps the deadline in its journal, so the revert happens even on a node that was cut off " +
			"or restarted meanwhile.",
	},
	{
		Key: "policy.atomic", Type: "boolean", Default: "true", Values: []string{"true", "false"},
		Effect: OnApply, Example: "false",
		Doc: "`true`: one node failing rolls every node back to the previous generation. `false`: the nodes that succeeded keep the change.",
	},
	{
		Key: "policy.auto_confirm", Type: "boolean", Default: "false", Values: []string{"true", "false"},
		Effect: OnApply, Example: "true",
		Doc: "Confirm by itself as soon as every target node has applied the change and read its settings back, instead of waiting for `edgectl confirm`.",
	},
	{
		Key: "groups", Type: "mapping of lists", DefaultText: "none",
		Allowed: "`NAME: [node names or globs]`",
		Effect:  OnApply, Example: "{radios: [ru-*, rru-3]}",
		Doc: "Named sets of nodes, for `nodes:` selectors written `\"@NAME\"`. A node is in a group when one entry " +
			"(a node name or a shell glob) matches its name; groups do not contain groups.",
	},
	{
		Key: "nodes", Type: "mapping", DefaultText: "none",
		Allowed: "`SELECTOR: {DEVICE: {SETTING: VALUE}}`",
		Effect:  OnApply, Example: "{\"*\": {rect0: {float_voltage: 54.0}}, ru-01: {radio0: {frequency_mhz: 3550}}}",
		Doc: "The desired device settings, by selector: `\"*\"` (every node), `\"@group\"`, a glob (`ru-*`), or one node's " +
			"name; the more specific selector wins per setting ([site-config.md](site-config.md#nodes)). Quote selectors " +
			"that start with `*` or `@`.",
	},
	{
		Key: "constraints", Type: "list", DefaultText: "none",
		Allowed: "entries with one rule each, below",
		Effect:  OnApply, Example: "[{unique: radio0.frequency_mhz}]",
		Doc: "Rules over the resolved settings of every node of the site, checked before any node is touched; a " +
			"change that breaks one is refused, naming the rule and the nodes. A pattern that matches no setting " +
			"under `nodes:` is an error.",
	},
	{
		Key: "constraints[].unique", Type: "`DEVICE.SETTING` pattern", DefaultText: "one rule per entry: `unique`, `equal` or `range`",
		Allowed: "globs allowed in either part",
		Effect:  OnApply, Example: "radio0.frequency_mhz",
		Doc: "No two matching values are the same, across nodes (and across devices of one node when the device part is a glob).",
	},
	{
		Key: "constraints[].equal", Type: "`DEVICE.SETTING` pattern", DefaultText: "one rule per entry: `unique`, `equal` or `range`",
		Allowed: "globs allowed in either part",
		Effect:  OnApply, Example: "radio0.frequency_mhz",
		Doc: "Every matching value is the same.",
	},
	{
		Key: "constraints[].range", Type: "`DEVICE.SETTING` pattern", DefaultText: "one rule per entry: `unique`, `equal` or `range`",
		Allowed: "globs allowed; needs `min`, `max` or both",
		Effect:  OnApply, Example: "radio0.frequency_mhz", With: []string{"max: 3800"},
		Doc: "Every matching value is a number within `min` and `max` (inclusive).",
	},
	{
		Key: "constraints[].min", Type: "number", DefaultText: "no lower bound",
		Allowed: "only with `range`; not above `max`",
		Effect:  OnApply, Example: "3300", With: []string{"range: radio0.frequency_mhz"},
		Doc: "The lowest value a `range` rule allows.",
	},
	{
		Key: "constraints[].max", Type: "number", DefaultText: "no upper bound",
		Allowed: "only with `range`",
		Effect:  OnApply, Example: "3800", With: []string{"range: radio0.frequency_mhz"},
		Doc: "The highest value a `range` rule allows.",
	},
}

// RenderConfigReference writes docs/config-reference.md: the node config
// and site document keys as tables, then one paragraph per key.
func RenderConfigReference(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from daemon/configdoc.go: edit the tables there, then run
     EDGE_UPDATE_DOCS=1 go test ./daemon -run TestConfigReference -->

Every key of the node config (` + "`/etc/edged/edged.yaml`" + `) and of the site
document (` + "`edgectl apply -f site.yaml`" + `), generated from the code; a test
checks this page against the parsers. How to use them, with examples:
[config.md](config.md) (node config), [site-config.md](site-config.md) (site
document).

Both files are parsed strictly: an unknown key, a duplicate key, a wrong type
or a value out of range is an error naming the file, the line and the key, and
a refused file changes nothing. Relative paths (` + "`key_file`, `tls_*`, a device's `profile`" + `)
are taken from the folder of the node config.

**Takes effect**: *reload*: ` + "`systemctl reload edged`" + ` applies it in the
running daemon; *restart*: it needs ` + "`systemctl restart edged`" + ` (a reload keeps
the running value and logs ` + "`reloaded; these changes take effect after a restart`" + `
with the key); *apply*: with the next ` + "`edgectl apply`" + ` of the site document.
`)
	slugs := map[string]int{}
	sections := []struct {
		title, intro string
		keys         []ConfigKey
		snippet      func(ConfigKey) string
	}{
		{"Node config: `/etc/edged/edged.yaml`", "One file per node: who it is, how it reaches the site, its credentials and its devices.", NodeConfigKeys, NodeSnippet},
		{"Node config: each entry of `devices`", "", DeviceConfigKeys, NodeSnippet},
		{"Site document: `site.yaml`", "One document for the whole site, replicated to every node and versioned by generation.", SiteDocumentKeys, SiteSnippet},
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		effect := s.keys[0].Effect != OnApply
		if effect {
			b.WriteString("| key | type | default | allowed | takes effect |\n| --- | --- | --- | --- | --- |\n")
		} else {
			b.WriteString("| key | type | default | allowed |\n| --- | --- | --- | --- |\n")
		}
		var body strings.Builder
		for _, k := range s.keys {
			heading := "`" + k.Key + "`"
			anchor := slug(heading, slugs)
			fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s | %s |", k.Key, anchor, k.Type, k.defaultCell(), cell(k.AllowedText()))
			if effect {
				e := k.Effect.String()
				if k.EffectNote != "" {
					e += " (" + k.EffectNote + ")"
				}
				fmt.Fprintf(&b, " %s |", e)
			}
			b.WriteString("\n")
			fmt.Fprintf(&body, "\n### %s\n\n%s\n\n```yaml\n%s```\n", heading, k.Doc, s.snippet(k))
		}
		b.WriteString(body.String())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (k ConfigKey) defaultCell() string {
	switch {
	case k.Required:
		return "(required)"
	case k.Default != "":
		return "`" + k.Default + "`"
	}
	return k.DefaultText
}

// AllowedText describes the values the key takes, in words: the range or
// the enum, then any other rule.
func (k ConfigKey) AllowedText() string {
	var parts []string
	switch {
	case k.Min != "" || k.Max != "":
		parts = append(parts, k.Min+"-"+k.Max)
	case len(k.Values) > 0:
		vs := make([]string, len(k.Values))
		for i, v := range k.Values {
			vs[i] = "`" + v + "`"
		}
		parts = append(parts, strings.Join(vs, ", "))
	}
	if k.Allowed != "" {
		parts = append(parts, k.Allowed)
	}
	return strings.Join(parts, "; ")
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// NodeSnippet is the key's example as a node config fragment, with the
// sibling keys it needs first.
func NodeSnippet(k ConfigKey) string {
	var b strings.Builder
	if dev, ok := strings.CutPrefix(k.Key, "devices[]."); ok {
		b.WriteString("devices:\n")
		lines := append(append([]string{}, k.With...), dev+": "+k.Example)
		for i, l := range lines {
			prefix := "    "
			if i == 0 {
				prefix = "  - "
			}
			b.WriteString(prefix + l + "\n")
		}
		return b.String()
	}
	for _, l := range k.With {
		b.WriteString(l + "\n")
	}
	b.WriteString(k.Key + ": " + k.Example + "\n")
	return b.String()
}

// SiteSnippet is the key's example as a site document fragment.
func SiteSnippet(k ConfigKey) string {
	var b strings.Builder
	switch {
	case strings.HasPrefix(k.Key, "policy."):
		b.WriteString("policy:\n")
		for _, l := range k.With {
			b.WriteString("  " + l + "\n")
		}
		b.WriteString("  " + strings.TrimPrefix(k.Key, "policy.") + ": " + k.Example + "\n")
	case strings.HasPrefix(k.Key, "constraints[]."):
		b.WriteString("constraints:\n")
		lines := append([]string{strings.TrimPrefix(k.Key, "constraints[].") + ": " + k.Example}, k.With...)
		if strings.HasSuffix(k.Key, ".min") || strings.HasSuffix(k.Key, ".max") {
			lines = append(append([]string{}, k.With...), lines[0])
		}
		for i, l := range lines {
			prefix := "    "
			if i == 0 {
				prefix = "  - "
			}
			b.WriteString(prefix + l + "\n")
		}
	default:
		for _, l := range k.With {
			b.WriteString(l + "\n")
		}
		b.WriteString(k.Key + ": " + k.Example + "\n")
	}
	return b.String()
}

// slug is the anchor GitHub gives a heading: lower case, punctuation other
// than '-' and '_' dropped, spaces as '-', "-1", "-2"... on repeats.
func slug(heading string, seen map[string]int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	s := b.String()
	n := seen[s]
	seen[s] = n + 1
	if n > 0 {
		s = fmt.Sprintf("%s-%d", s, n)
	}
	return s
}
