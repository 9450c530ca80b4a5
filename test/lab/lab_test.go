package lab

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"zero fields take defaults", func(c *Config) { *c = Config{Nodes: 2} }, ""},
		{"no nodes", func(c *Config) { c.Nodes = 0 }, ""},
		{"negative nodes", func(c *Config) { c.Nodes = -1 }, "nodes -1"},
		{"too many nodes", func(c *Config) { c.Nodes = 245 }, "nodes 245"},
		{"max nodes", func(c *Config) { c.Nodes = 244 }, ""},
		{"prefix with dash", func(c *Config) { c.Prefix = "a-b" }, "prefix"},
		{"long prefix", func(c *Config) { c.Prefix = "abcdefghijklmnop" }, "prefix"},
		{"bad site", func(c *Config) { c.Site = "a b" }, "site"},
		{"ipv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("2001:db8::/64") }, "IPv4"},
		{"host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.0.2.1/24") }, "host bits"},
		{"small subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.0.2.0/28") }, "length"},
		{"small subnet fits", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.0.2.0/27"); c.Nodes = 20 }, ""},
		{"small subnet full", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.0.2.0/27"); c.Nodes = 21 }, "nodes 21"},
		{"gossip port", func(c *Config) { c.GossipPort = 70000 }, "gossip port"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log level"},
		{"bootstrap expect", func(c *Config) { c.BootstrapExpect = -1 }, "bootstrap expect -1"},
		{"env", func(c *Config) { c.Env = []string{"NOEQUALS"} }, "env"},
		{"long dir", func(c *Config) { c.Dir = "/" + strings.Repeat("d", 100) }, "socket path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNodeAddr(t *testing.T) {
	c := DefaultConfig()
	for i, want := range map[int]string{1: "192.0.2.11", 30: "192.0.2.40", 244: "192.0.2.254"} {
		if got := c.NodeAddr(i).String(); got != want {
			t.Errorf("NodeAddr(%d) = %s, want %s", i, got, want)
		}
	}
	c.Subnet = netip.MustParsePrefix("10.1.0.0/16")
	if got := c.NodeAddr(300).String(); got != "10.1.1.54" {
		t.Errorf("NodeAddr(300) in /16 = %s", got)
	}
}

func TestYAMLString(t *testing.T) {
	tests := map[string]string{
		"node1":           "node1",
		"/run/edgelab/x":  "/run/edgelab/x",
		"1":               `"1"`,
		"yes":             `"yes"`,
		"Off":             `"Off"`,
		"192.0.2.11:7946": `"192.0.2.11:7946"`,
		"a b":             `"a b"`,
		"":                `""`,
		"x#y":             `"x#y"`,
	}
	for in, want := range tests {
		if got := yamlString(in); got != want {
			t.Errorf("yamlString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFilterScript(t *testing.T) {
	st := &state{Nodes: []nodeState{{Name: "a", Veth: "veth1"}, {Name: "b", Veth: "veth2"}, {Name: "c", Veth: "veth3"}}}
	if got, want := filterScript(st), "table bridge edgelab {}\ndelete table bridge edgelab\n"; got != want {
		t.Errorf("healed script:\n%s\nwant:\n%s", got, want)
	}
	st.Partition = [][]string{{"a"}}
	st.Loss = 10
	want := `table bridge edgelab {}
delete table bridge edgelab
table bridge edgelab {
	chain partition {
		type filter hook forward priority 0; policy accept;
		iifname { "veth1" } oifname != { "veth1" } counter drop
		iifname { "veth2", "veth3" } oifname != { "veth2", "veth3" } counter drop
	}
	chain loss {
		type filter hook forward priority 10; policy accept;
		numgen random mod 100 < 10 counter drop
	}
}
`
	if got := filterScript(st); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}

func TestUpDown(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 3)
	cfg.Seeds = []string{cfg.NodeAddr(1).String() + ":7946"}
	cfg.Extra = []string{"fake_marker: 1"}
	start := time.Now()
	l, err := Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("up -n 3 took %v", time.Since(start))
	downed := false
	t.Cleanup(func() {
		if !downed {
			l.Down()
		}
	})

	nodes := l.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("Nodes() = %d nodes, want 3", len(nodes))
	}
	var pids []int
	for i, n := range nodes {
		if want := "node" + strconv.Itoa(i+1); n.Name != want {
			t.Errorf("node %d named %s, want %s", i, n.Name, want)
		}
		if want := cfg.Prefix + "-" + n.Name; n.Namespace != want {
			t.Errorf("%s: namespace %s, want %s", n.Name, n.Namespace, want)
		}
		if want := cfg.NodeAddr(i + 1); n.Addr != want {
			t.Errorf("%s: addr %s, want %s", n.Name, n.Addr, want)
		}
		if !n.Running || n.Pid == 0 {
			t.Errorf("%s: running %v pid %d", n.Name, n.Running, n.Pid)
		}
		if fi, err := os.Stat(n.Socket); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("%s: socket %s: %v", n.Name, n.Socket, err)
		}
		pids = append(pids, n.Pid)
	}

	// The node config, exactly.
	n1 := nodes[0]
	b, err := os.ReadFile(n1.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(`node: node1
site: lab
interface: eth0
gossip_port: 7946
key_file: DIR/site.key
data_dir: DIR/node1/data
socket: DIR/node1/edged.sock
log_level: debug
tls_ca: DIR/node1/tls/ca.crt
tls_cert: DIR/node1/tls/node1.crt
tls_key: DIR/node1/tls/node1.key
bootstrap_expect: 3
seeds:
  - "192.0.2.11:7946"
fake_marker: 1
`, "DIR", cfg.Dir)
	if string(b) != want {
		t.Errorf("node1 config:\n%s\nwant:\n%s", b, want)
	}

	// The key file: base64 of 32 bytes, newline-terminated, mode 0600.
	kf := filepath.Join(cfg.Dir, "site.key")
	fi, err := os.Stat(kf)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	kb, _ := os.ReadFile(kf)
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(kb), "\n")); err != nil || len(k) != 32 || !strings.HasSuffix(string(kb), "\n") {
		t.Errorf("key file %q: want base64 of 32 bytes and a newline (err %v)", kb, err)
	}
	if l.Key()+"\n" != string(kb) {
		t.Errorf("Key() = %q, file holds %q", l.Key(), kb)
	}

	// The nodes reach each other, and the node's view of itself is right.
	if got := probe(t, l, "node1", netip.AddrPortFrom(nodes[1].Addr, 7946), "node2"); !slices.Equal(got, []string{"node2"}) {
		t.Errorf("node1 -> node2 unicast: answers %v, want [node2]", got)
	}
	out, err := l.Command(context.Background(), "node3", "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), nodes[2].Addr.String()+"/24") {
		t.Errorf("ip addr in node3: %v: %s", err, out)
	}

	// Another process's view (the CLI's) is the same.
	o, err := Open(cfg.Dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := o.Nodes(); !slices.EqualFunc(got, nodes, func(a, b Node) bool { return a.Name == b.Name && a.Pid == b.Pid && a.Running == b.Running }) {
		t.Errorf("Open().Nodes() = %+v, want %+v", got, nodes)
	}
	if _, err := Up(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already holds a lab") {
		t.Errorf("second Up in the same dir: %v, want 'already holds a lab'", err)
	}

	downStart := time.Now()
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	downed = true
	t.Logf("down took %v", time.Since(downStart))
	assertGone(t, cfg.Dir, cfg.Prefix, pids)
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if err := o.Down(); err != nil {
		t.Errorf("Down of the opened lab after the first Down: %v", err)
	}
	if err := Clean(cfg.Dir, cfg.Prefix, nil); err != nil {
		t.Errorf("Clean with nothing up: %v", err)
	}
	if err := l.Kill("node1"); !errors.Is(err, ErrDown) {
		t.Errorf("Kill after Down: %v, want ErrDown", err)
	}
	if _, err := Open(cfg.Dir, nil); !errors.Is(err, ErrNoLab) {
		t.Errorf("Open after Down: %v, want ErrNoLab", err)
	}
}

func TestKillStopStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	l := upLab(t, cfg)
	ctx := context.Background()

	n1, _ := l.Node("node1")
	if err := l.Kill("node1"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if n, _ := l.Node("node1"); n.Running || alive(n1.Pid, 0) {
		t.Errorf("node1 still running after Kill")
	}
	if err := l.Kill("node1"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Kill: %v, want ErrNotRunning", err)
	}
	if err := l.Wait(ctx, "node1"); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Kill: %v, want signal: killed", err)
	}
	if err := l.Start(ctx, "node1"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if n, _ := l.Node("node1"); !n.Running || n.Pid == n1.Pid {
		t.Errorf("after Start: running %v pid %d (old %d)", n.Running, n.Pid, n1.Pid)
	}
	if err := l.Start(ctx, "node1"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Start of a running node: %v", err)
	}

	if err := l.Stop(ctx, "node2"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := l.Wait(ctx, "node2"); err != nil {
		t.Errorf("Wait after Stop: %v, want a clean exit", err)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Dir, "node2", "edged.log")); !strings.Contains(string(b), "node2 stopping") {
		t.Errorf("node2 log has no graceful stop:\n%s", b)
	}

	// The same through another Lab value, as the CLI does: not our children.
	o, err := Open(cfg.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Down() })
	if err := o.Start(ctx, "node2"); err != nil {
		t.Fatalf("Start via Open: %v", err)
	}
	if err := o.Kill("node1"); err != nil {
		t.Fatalf("Kill via Open: %v", err)
	}
	if err := o.Wait(ctx, "node1"); !errors.Is(err, ErrExitUnknown) {
		t.Errorf("Wait via Open: %v, want ErrExitUnknown", err)
	}
	for _, n := range l.Nodes() {
		if want := n.Name == "node2"; n.Running != want {
			t.Errorf("%s running %v, want %v", n.Name, n.Running, want)
		}
	}
	if err := l.Stop(ctx, "node2"); err != nil {
		t.Errorf("Stop of a node another Lab value started: %v", err)
	}
	if err := l.Kill("nodeX"); err == nil || !strings.Contains(err.Error(), `unknown node "nodeX"`) {
		t.Errorf("Kill of an unknown node: %v", err)
	}
	if err := l.Command(ctx, "nodeX", "true").Run(); err == nil {
		t.Errorf("Command in an unknown node ran")
	}
}

func TestPartitionLoss(t *testing.T) {
	t.Parallel()
	requireTool(t, "nft", "nftables")
	l := upLab(t, testConfig(t, 4))
	all := []string{"node1", "node2", "node3", "node4"}

	// check probes, all at once, IPv4 and IPv6 multicast and unicast to
	// every other node from node from; want is who must answer.
	check := func(what string, from string, want []string) {
		t.Helper()
		var wg sync.WaitGroup
		for _, dst := range []netip.AddrPort{
			netip.MustParseAddrPort("224.0.0.251:5353"),
			netip.MustParseAddrPort("[ff02::fb]:5353"),
		} {
			wg.Go(func() {
				if got := probe(t, l, from, dst, want...); !slices.Equal(got, want) {
					t.Errorf("%s: %s multicast from %s answered by %v, want %v", what, dst.Addr(), from, got, want)
				}
			})
		}
		for _, to := range all {
			if to == from {
				continue
			}
			n, _ := l.Node(to)
			wg.Go(func() {
				reach := slices.Contains(want, to)
				var w []string
				if reach {
					w = []string{to}
				}
				got := probe(t, l, from, netip.AddrPortFrom(n.Addr, 7946), w...)
				if reach != (len(got) == 1) {
					t.Errorf("%s: unicast %s -> %s answered by %v, want reachable=%v", what, from, to, got, reach)
				}
			})
		}
		wg.Wait()
	}

	check("before", "node1", all)
	if err := l.Partition([]string{"node1", "node2"}, []string{"node3", "node4"}); err != nil {
		t.Fatalf("Partition: %v", err)
	}
	check("partitioned", "node1", []string{"node1", "node2"})
	check("partitioned", "node4", []string{"node3", "node4"})
	if err := l.Heal(); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	check("healed", "node3", all)

	// Unlisted nodes form a group of their own.
	if err := l.Partition([]string{"node4"}); err != nil {
		t.Fatal(err)
	}
	check("node4 isolated", "node1", []string{"node1", "node2", "node3"})
	check("node4 isolated", "node4", []string{"node4"})

	// Loss coexists with the partition: 100% loss cuts everything, 0 restores
	// the partition alone.
	if err := l.Loss(100); err != nil {
		t.Fatalf("Loss: %v", err)
	}
	check("loss 100", "node1", []string{"node1"})
	if p, loss := l.Faults(); len(p) != 1 || loss != 100 {
		t.Errorf("Faults() = %v, %d", p, loss)
	}
	if err := l.Loss(0); err != nil {
		t.Fatal(err)
	}
	check("loss 0, still partitioned", "node1", []string{"node1", "node2", "node3"})
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed again", "node4", all)
	if err := l.Loss(100); err != nil {
		t.Fatal(err)
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	check("heal keeps loss", "node2", []string{"node2"})
	if err := l.Loss(0); err != nil {
		t.Fatal(err)
	}
	check("clean", "node2", all)

	for _, bad := range [][][]string{
		{{"node1"}, {"nodeX"}},
		{{"node1", "node2"}, {"node2"}},
		{{"node1"}, {}},
		{},
	} {
		if err := l.Partition(bad...); err == nil {
			t.Errorf("Partition(%v) succeeded", bad)
		}
	}
	if err := l.Loss(101); err == nil {
		t.Errorf("Loss(101) succeeded")
	}
}

func TestAddNode(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	l := upLab(t, cfg)
	ctx := context.Background()

	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := l.Node("node1")
	x, err := l.AddNode(ctx, NodeSpec{
		Name:  "radio-7",
		Site:  "other",
		Key:   key,
		Seeds: []string{n1.Gossip.String()},
		Extra: []string{"fake_marker: 2"},
	})
	if err != nil {
		t.Fatalf("AddNode: %v", err)
	}
	if !x.Running || x.Addr != cfg.NodeAddr(2) || x.Namespace != cfg.Prefix+"-radio-7" {
		t.Errorf("added node: %+v", x)
	}
	b, _ := os.ReadFile(x.Config)
	want := strings.ReplaceAll(`node: radio-7
site: other
interface: eth0
gossip_port: 7946
key_file: DIR/radio-7/site.key
data_dir: DIR/radio-7/data
socket: DIR/radio-7/edged.sock
log_level: debug
seeds:
  - "192.0.2.11:7946"
fake_marker: 2
`, "DIR", cfg.Dir)
	if string(b) != want {
		t.Errorf("config:\n%s\nwant:\n%s", b, want)
	}
	kb, _ := os.ReadFile(filepath.Join(x.Dir, "site.key"))
	if string(kb) != base64.StdEncoding.EncodeToString(key)+"\n" {
		t.Errorf("own key file holds %q", kb)
	}
	if got := probe(t, l, "radio-7", netip.AddrPortFrom(n1.Addr, 7946), "node1"); !slices.Equal(got, []string{"node1"}) {
		t.Errorf("radio-7 -> node1: %v", got)
	}
	if _, err := l.AddNode(ctx, NodeSpec{Name: "radio-7"}); err == nil {
		t.Errorf("AddNode of an existing name succeeded")
	}

	// A custom command that never sends READY=1, with placeholders.
	c, err := l.AddNode(ctx, NodeSpec{
		Name:   "custom",
		Argv:   []string{"/bin/sh", "-c", "echo custom {name} {addr} {gossip_port} {key}; exec sleep 1000"},
		NoWait: true,
	})
	if err != nil {
		t.Fatalf("AddNode custom: %v", err)
	}
	if c.Addr != cfg.NodeAddr(3) {
		t.Errorf("custom addr %s", c.Addr)
	}
	waitFor(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(c.Log)
		return strings.Contains(string(b), "custom custom "+c.Addr.String()+" 7946 "+l.Key())
	})
	if err := l.Kill("custom"); err != nil {
		t.Errorf("Kill custom: %v", err)
	}

	// A node expected to fail: its exit is reported.
	if _, err := l.AddNode(ctx, NodeSpec{Name: "bad", Argv: []string{fakeEdged, "--config", "{config}", "--fail"}, NoWait: true}); err != nil {
		t.Fatalf("AddNode bad: %v", err)
	}
	err = l.Wait(ctx, "bad")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait(bad) = %v, want exit status 3", err)
	}

	// A node that fails while AddNode waits for READY is removed again.
	_, err = l.AddNode(ctx, NodeSpec{Name: "worse", Extra: []string{"fake_fail: true"}})
	if err == nil || !strings.Contains(err.Error(), "exited before READY=1") || !strings.Contains(err.Error(), "failing as asked") {
		t.Errorf("AddNode worse: %v, want exit before READY with the log", err)
	}
	if _, err := l.Node("worse"); err == nil {
		t.Errorf("failed node still listed")
	}
	if _, err := os.Stat(filepath.Join("/run/netns", cfg.Prefix+"-worse")); err == nil {
		t.Errorf("failed node's namespace left")
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "worse")); err == nil {
		t.Errorf("failed node's dir left")
	}

	// A node added while partitioned joins the unlisted group.
	requireTool(t, "nft", "nftables")
	if err := l.Partition([]string{"node1"}); err != nil {
		t.Fatal(err)
	}
	late, err := l.AddNode(ctx, NodeSpec{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if got := probe(t, l, "late", netip.MustParseAddrPort("224.0.0.251:5353"), "late", "radio-7"); !slices.Equal(got, []string{"late", "radio-7"}) {
		t.Errorf("late multicast answered by %v, want [late radio-7]", got)
	}
	if got := probe(t, l, "node1", netip.AddrPortFrom(late.Addr, 7946)); len(got) != 0 {
		t.Errorf("node1 reached late across the partition: %v", got)
	}
}

func TestUpFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr []string
	}{
		{"exits", func(c *Config) { c.Extra = []string{"fake_fail: true"} }, []string{"exited before READY=1", "failing as asked"}},
		{"never ready", func(c *Config) {
			c.Extra = []string{"fake_no_ready: true"}
			c.ReadyTimeout = 300 * time.Millisecond
		}, []string{"no READY=1", "deadline exceeded", "ready pid="}},
		{"no edged", func(c *Config) { c.Edged = "/nonexistent/edged" }, []string{"edged"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, 2)
			tt.mod(&cfg)
			l, err := Up(context.Background(), cfg)
			if err == nil {
				l.Down()
				t.Fatal("Up succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Up: %v, want it to mention %q", err, w)
				}
			}
			assertGone(t, cfg.Dir, cfg.Prefix, nil)
		})
	}
}

func TestUp30(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Parallel()
	cfg := testConfig(t, 30)
	start := time.Now()
	l := upLab(t, cfg)
	t.Logf("up -n 30 took %v", time.Since(start))
	nodes := l.Nodes()
	if len(nodes) != 30 {
		t.Fatalf("%d nodes", len(nodes))
	}
	if got := probe(t, l, "node30", netip.AddrPortFrom(nodes[0].Addr, 7946), "node1"); !slices.Equal(got, []string{"node1"}) {
		t.Errorf("node30 -> node1: %v", got)
	}
	start = time.Now()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	t.Logf("down of 30 took %v", time.Since(start))
}

// probe sends datagrams from node from to dst and returns the sorted names
// of the nodes that answer (the fake daemon answers on its gossip port and in
// the mDNS groups). It resends until every node in want answered (at most 3 s,
// so a loaded machine gives no false "blocked"), and always listens at least
// 200 ms after a send, long enough for any answer across a bridge, so an
// answer from a node that should be cut off shows up. Any goroutine may call it.
func probe(t *testing.T, l *Lab, from string, dst netip.AddrPort, want ...string) []string {
	var conn *net.UDPConn
	var zone string
	err := l.Do(from, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		zone = strconv.Itoa(ifi.Index) // a name would be resolved outside the namespace
		network := "udp4"
		if dst.Addr().Is6() {
			network = "udp6"
		}
		conn, err = net.ListenUDP(network, nil)
		return err
	})
	if err != nil {
		t.Errorf("probe from %s: %v", from, err)
		return nil
	}
	defer conn.Close()
	if dst.Addr().Is6() && dst.Addr().IsLinkLocalMulticast() {
		dst = netip.AddrPortFrom(dst.Addr().WithZone(zone), dst.Port())
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	seen := map[string]bool{}
	buf := make([]byte, 1500)
	for end := time.Now().Add(3 * time.Second); ; {
		if _, err := conn.WriteToUDPAddrPort([]byte(nonce), dst); err != nil {
			t.Errorf("probe %s -> %s: %v", from, dst, err)
			return nil
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if name, got, ok := strings.Cut(string(buf[:n]), " "); ok && got == nonce {
				seen[name] = true
			}
		}
		if !slices.ContainsFunc(want, func(w string) bool { return !seen[w] }) || time.Now().After(end) {
			break
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseGroups(t *testing.T) {
	tests := map[string][][]string{
		"a,b/c,d,e": {{"a", "b"}, {"c", "d", "e"}},
		"a":         {{"a"}},
		"a,/b":      {{"a"}, {"b"}},
		"a//b":      {{"a"}, nil, {"b"}},
	}
	for in, want := range tests {
		got := ParseGroups(in)
		if !slices.EqualFunc(got, want, func(a, b []string) bool { return slices.Equal(a, b) }) {
			t.Errorf("ParseGroups(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSerfInterop runs stock serf agents as lab nodes (NodeSpec.Argv with
// placeholders, NoWait), checks they form a cluster across the bridge with
// the lab key, and that a partition makes them see each other fail.
func TestSerfInterop(t *testing.T) {
	t.Parallel()
	serf, err := exec.LookPath("serf")
	if err != nil {
		out, _ := exec.Command("go", "env", "GOPATH").Output()
		serf = filepath.Join(strings.TrimSpace(string(out)), "bin", "serf")
		if _, err := os.Stat(serf); err != nil {
			t.Skip("stock serf agent not installed (go install github.com/hashicorp/serf/cmd/serf@v0.10.2)")
		}
	}
	cfg := testConfig(t, 0)
	l := upLab(t, cfg)
	ctx := context.Background()
	seed := cfg.NodeAddr(1).String() + ":7946"
	for i, name := range []string{"s1", "s2", "s3"} {
		argv := []string{serf, "agent", "-node", "{name}", "-bind", "{addr}:{gossip_port}",
			"-encrypt", "{key}", "-rpc-addr", "127.0.0.1:7373"}
		if i > 0 {
			argv = append(argv, "-retry-join", seed, "-retry-interval", "200ms")
		}
		if _, err := l.AddNode(ctx, NodeSpec{Name: name, Argv: argv, NoWait: true}); err != nil {
			t.Fatalf("AddNode %s: %v", name, err)
		}
	}
	members := func(from string) map[string]string {
		out, err := l.Command(ctx, from, serf, "members", "-rpc-addr", "127.0.0.1:7373").Output()
		if err != nil {
			return nil // not listening yet
		}
		m := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				m[f[0]] = f[2]
			}
		}
		return m
	}
	waitFor(t, 20*time.Second, func() bool {
		m := members("s1")
		return m["s1"] == "alive" && m["s2"] == "alive" && m["s3"] == "alive"
	})
	if err := l.Partition([]string{"s3"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		m1, m3 := members("s1"), members("s3")
		return m1["s2"] == "alive" && m1["s3"] == "failed" && m3["s1"] == "failed" && m3["s2"] == "failed"
	})
}

// The bootstrap_expect line: the lab's figure with credentials, none without.
func TestNodeYAMLBootstrapExpect(t *testing.T) {
	n := nodeState{Name: "node4", Dir: "/l/node4", Socket: "/l/node4/edged.sock"}
	for _, tt := range []struct {
		c    nodeConf
		want string
	}{
		{nodeConf{site: "lab", tlsDir: "/l/ca", bootstrapExpect: 3}, "bootstrap_expect: 3\n"},
		{nodeConf{site: "lab", tlsDir: "/l/ca"}, "bootstrap_expect: 1\n"},
		{nodeConf{site: "lab"}, ""},
	} {
		got := string(nodeYAML(n, tt.c, 7946, ""))
		has := strings.Contains(got, "bootstrap_expect:")
		if tt.want == "" && has || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%+v: config\n%s\nwant %q", tt.c, got, tt.want)
		}
	}
}
