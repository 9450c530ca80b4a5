package lab

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"edge/internal/pki"
)

// Errors checked with errors.Is.
var (
	// ErrNotRoot: the lab needs root for network namespaces.
	ErrNotRoot = errors.New("lab: must run as root (network namespaces need CAP_SYS_ADMIN)")
	// ErrNoLab: the directory holds no lab state file.
	ErrNoLab = errors.New("no lab here (no " + stateFile + ")")
	// ErrDown: the lab was torn down.
	ErrDown = errors.New("lab: lab is down")
	// ErrNotRunning: the node's process is not running.
	ErrNotRunning = errors.New("not running")
	// ErrExitUnknown: the node's process is gone but was not started by this
	// Lab value, so its exit status is unknown.
	ErrExitUnknown = errors.New("exited, status unknown (not started by this process)")
)

// setupLimit bounds how many namespaces are built at once.
const setupLimit = 8

// killWait bounds the wait for a SIGKILLed process to be gone.
const killWait = 5 * time.Second

// tlsDirName is the lab's site CA folder inside its directory.
const tlsDirName = "tls"

// keySize is the gossip key length (AES-256, as serf agent -encrypt takes).
const keySize = 32

// Node describes one node of a lab.
type Node struct {
	Name      string
	Namespace string         // network namespace name, for "ip netns exec"
	Addr      netip.Addr     // eth0 address
	Gossip    netip.AddrPort // Addr and the gossip port, for seeds
	Dir       string         // node directory
	Config    string         // node config file
	Socket    string         // local API socket of the daemon
	Log       string         // stdout and stderr of the process
	Argv      []string       // the process's command line
	Pid       int            // last started process, 0 if never started
	Running   bool
}

// Lab is a running site lab. Its methods are safe for concurrent use. A Lab
// made by Up or Open in one process and the edgelab CLI in another can work
// on the same lab: every change goes through the state file under a lock.
type Lab struct {
	log          *slog.Logger
	dir          string
	prefix       string
	bridge       string
	key          string // base64 site key
	readyTimeout time.Duration

	mu       sync.Mutex
	st       state
	children map[string]*child // processes this value started
	down     bool
}

func checkRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// NewKey returns a new random gossip key (32 bytes), for NodeSpec.Key.
func NewKey() ([]byte, error) {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("lab: new key: %w", err)
	}
	return k, nil
}

// Up builds a lab: the bridge namespace, cfg.Nodes node namespaces, their
// configs and the site key; then it starts edged on every node and waits for
// READY=1 from each. On error it tears down what it made, so it either
// returns a lab whose every node is ready or leaves nothing behind.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab: dir: %w", err)
	}
	if cfg.Nodes > 0 {
		if err := validSocketPaths(dir, nodeName(cfg.Nodes)); err != nil {
			return nil, err
		}
	}
	var edged string
	if cfg.Nodes > 0 || cfg.Edged != "" {
		if edged, err = findEdged(cfg.Edged); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return nil, fmt.Errorf("lab: %s already holds a lab: take it down first", dir)
	}
	if names, err := listNetns(cfg.Prefix); err != nil {
		return nil, err
	} else if len(names) > 0 {
		return nil, fmt.Errorf("lab: namespaces with prefix %q already exist (%s): take that lab down first", cfg.Prefix, strings.Join(names, " "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	l := &Lab{
		log:          cfg.Logger,
		dir:          dir,
		prefix:       cfg.Prefix,
		bridge:       cfg.Prefix + "-br",
		key:          base64.StdEncoding.EncodeToString(key),
		readyTimeout: cfg.ReadyTimeout,
		children:     make(map[string]*child),
		st: state{
			Version:         stateVersion,
			Prefix:          cfg.Prefix,
			Dir:             dir,
			Bridge:          cfg.Prefix + "-br",
			Site:            cfg.Site,
			Subnet:          cfg.Subnet.String(),
			GossipPort:      cfg.GossipPort,
			Edged:           edged,
			LogLevel:        cfg.LogLevel,
			KeyFile:         filepath.Join(dir, keyFile),
			ReadyTimeout:    cfg.ReadyTimeout.String(),
			BootstrapExpect: cmp.Or(cfg.BootstrapExpect, min(3, max(cfg.Nodes, 1))),
			MetricsPort:     cfg.MetricsPort,
			Env:             cfg.Env,
		},
	}
	for i := 1; i <= cfg.Nodes; i++ {
		l.st.Nodes = append(l.st.Nodes, l.plan(nodeName(i), i, l.key, []string{edged, "--config", "{config}"}, nil, false))
	}
	// Write-ahead: every namespace and node is on disk before any is made.
	if err := saveState(dir, &l.st); err != nil {
		os.Remove(dir) // only if empty: it may have been there before
		return nil, err
	}
	start := time.Now()
	if err := l.build(ctx, cfg); err != nil {
		return nil, errors.Join(err, l.Down())
	}
	l.log.Info("lab up", "dir", dir, "prefix", cfg.Prefix, "nodes", cfg.Nodes, "took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// build makes the key, the bridge, the nodes, and starts them.
func (l *Lab) build(ctx context.Context, cfg Config) error {
	st := l.st // no other goroutine changes it yet
	if err := writeFileAtomic(st.KeyFile, []byte(l.key+"\n"), 0o600); err != nil {
		return fmt.Errorf("lab: key file: %w", err)
	}
	if !cfg.NoTLS {
		tlsDir := filepath.Join(st.Dir, tlsDirName)
		if _, err := pki.CreateCA(tlsDir, st.Site, 0); err != nil {
			return fmt.Errorf("lab: site CA: %w", err)
		}
		if err := l.update(func(s *state) error { s.TLSDir = tlsDir; return nil }); err != nil {
			return err
		}
		st.TLSDir = tlsDir
	}
	if err := makeBridge(ctx, st.Bridge); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupLimit)
	for _, n := range st.Nodes {
		g.Go(func() error {
			c := nodeConf{site: st.Site, keyFile: st.KeyFile, seeds: cfg.Seeds, extra: cfg.Extra, tlsDir: st.TLSDir, bootstrapExpect: st.BootstrapExpect}
			if err := l.writeNodeConfig(n, c); err != nil {
				return err
			}
			return makeNode(gctx, st, n)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	l.log.Debug("namespaces ready", "nodes", len(st.Nodes))

	ctx, cancel := context.WithTimeout(ctx, l.readyTimeout)
	defer cancel()
	g, gctx = errgroup.WithContext(ctx)
	for _, n := range st.Nodes {
		c, err := l.startNode(n.Name)
		if err != nil {
			cancel()
			_ = g.Wait() // the waits end with the cancel
			return err
		}
		g.Go(func() error { return l.waitReady(gctx, n, c) })
	}
	return g.Wait()
}

// Open returns the lab whose state is in dir, made by another process (the
// edgelab CLI) or by Up. log may be nil.
func Open(dir string, log *slog.Logger) (*Lab, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab: dir: %w", err)
	}
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(st.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("lab: key file: %w", err)
	}
	rt, err := time.ParseDuration(st.ReadyTimeout)
	if err != nil || rt <= 0 {
		rt = DefaultReadyTimeout
	}
	return &Lab{
		log:          log,
		dir:          dir,
		prefix:       st.Prefix,
		bridge:       st.Bridge,
		key:          strings.TrimSpace(string(key)),
		readyTimeout: rt,
		st:           st,
		children:     make(map[string]*child),
	}, nil
}

// Dir returns the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// Prefix returns the lab's namespace name prefix.
func (l *Lab) Prefix() string { return l.prefix }

// Bridge returns the name of the bridge namespace.
func (l *Lab) Bridge() string { return l.bridge }

// Key returns the site's gossip key in base64, the format of the key file and
// of "serf agent -encrypt".
func (l *Lab) Key() string { return l.key }

// KeyFile returns the path of the site key file.
func (l *Lab) KeyFile() string { return filepath.Join(l.dir, keyFile) }

// Nodes returns every node, in the order they were made.
func (l *Lab) Nodes() []Node {
	var nodes []Node
	_ = l.view(func(st *state) error {
		for _, n := range st.Nodes {
			nodes = append(nodes, toNode(st, n))
		}
		return nil
	})
	return nodes
}

// Node returns the named node.
func (l *Lab) Node(name string) (Node, error) {
	var node Node
	err := l.view(func(st *state) error {
		n, err := st.node(name)
		if err != nil {
			return err
		}
		node = toNode(st, *n)
		return nil
	})
	return node, err
}

func toNode(st *state, n nodeState) Node {
	addr, _ := netip.ParseAddr(n.Addr)
	return Node{
		Name:      n.Name,
		Namespace: n.Namespace,
		Addr:      addr,
		Gossip:    netip.AddrPortFrom(addr, uint16(st.GossipPort)),
		Dir:       n.Dir,
		Config:    n.Config,
		Socket:    n.Socket,
		Log:       n.Log,
		Argv:      n.Argv,
		Pid:       n.Pid,
		Running:   alive(n.Pid, n.StartTime),
	}
}

// view runs fn on a fresh copy of the state.
func (l *Lab) view(fn func(*state) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.reloadLocked(); err != nil {
		return err
	}
	return fn(&l.st)
}

// update runs fn on a fresh copy of the state under the lab's file lock and
// saves the result if fn succeeds.
func (l *Lab) update(fn func(*state) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return ErrDown
	}
	unlock, err := lockDir(l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.reloadLocked(); err != nil {
		return err
	}
	if err := fn(&l.st); err != nil {
		return err
	}
	return saveState(l.dir, &l.st)
}

func (l *Lab) reloadLocked() error {
	if l.down {
		return ErrDown
	}
	st, err := loadState(l.dir)
	if err != nil {
		return err
	}
	l.st = st
	return nil
}

// plan returns the state of a new node; nothing is made yet.
func (l *Lab) plan(name string, index int, key string, argv, env []string, noWait bool) nodeState {
	st := &l.st
	dir := filepath.Join(l.dir, name)
	subnet := netip.MustParsePrefix(st.Subnet)
	n := nodeState{
		Name:      name,
		Index:     index,
		Namespace: st.Prefix + "-" + name,
		Veth:      "veth" + strconv.Itoa(index),
		Addr:      hostAddr(subnet, index).String(),
		Dir:       dir,
		Config:    filepath.Join(dir, "edged.yaml"),
		Socket:    filepath.Join(dir, "edged.sock"),
		Log:       filepath.Join(dir, "edged.log"),
		Notify:    filepath.Join(dir, "notify.sock"),
		Env:       env,
		NoWait:    noWait,
	}
	kf := st.KeyFile
	if key != l.key {
		kf = filepath.Join(dir, keyFile)
	}
	r := strings.NewReplacer(
		"{name}", name,
		"{addr}", n.Addr,
		"{gossip_port}", strconv.Itoa(st.GossipPort),
		"{config}", n.Config,
		"{dir}", dir,
		"{socket}", n.Socket,
		"{key_file}", kf,
		"{key}", key,
	)
	for _, a := range argv {
		n.Argv = append(n.Argv, r.Replace(a))
	}
	return n
}

// findEdged resolves the edged binary: p if set, else "edged" next to the
// running executable, else "edged" in $PATH.
func findEdged(p string) (string, error) {
	if p == "" {
		if exe, err := os.Executable(); err == nil {
			c := filepath.Join(filepath.Dir(exe), "edged")
			if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return c, nil
			}
		}
		p = "edged"
	}
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("lab: edged: %w (build it, or give its path)", err)
		}
		p = lp
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("lab: edged: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("lab: edged: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("lab: edged: %s is not an executable file", p)
	}
	return p, nil
}

// startNode starts a node's process, records its pid and returns it as our
// child. It does not wait for READY.
func (l *Lab) startNode(name string) (*child, error) {
	var n nodeState
	var envAll []string
	err := l.view(func(st *state) error {
		p, err := st.node(name)
		if err != nil {
			return err
		}
		if alive(p.Pid, p.StartTime) {
			return fmt.Errorf("lab: node %s: already running (pid %d)", name, p.Pid)
		}
		n, envAll = *p, st.Env
		return nil
	})
	if err != nil {
		return nil, err
	}
	log := l.log.With("node", name)

	l.mu.Lock()
	if old := l.children[name]; old != nil {
		old.notify.close() // its process is gone (checked above)
		delete(l.children, name)
	}
	l.mu.Unlock()

	notify, err := listenNotify(n.Notify, log)
	if err != nil {
		return nil, fmt.Errorf("lab: node %s: %w", name, err)
	}
	logf, err := os.OpenFile(n.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		notify.close()
		return nil, fmt.Errorf("lab: node %s: %w", name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Namespace}, n.Argv...)...)
	cmd.Dir = n.Dir
	cmd.Env = nodeEnv(n, envAll)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		notify.close()
		return nil, fmt.Errorf("lab: node %s: start %s: %w", name, n.Argv[0], err)
	}
	pid := cmd.Process.Pid
	start, _ := procStart(pid)
	c := &child{pid: pid, start: start, notify: notify, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	l.mu.Lock()
	l.children[name] = c
	l.mu.Unlock()
	log.Debug("started", "pid", pid, "argv", n.Argv)

	err = l.update(func(st *state) error {
		p, err := st.node(name)
		if err != nil {
			return err
		}
		p.Pid, p.StartTime = pid, start
		return nil
	})
	if err != nil {
		_ = signalProc(pid, start, syscall.SIGKILL, true)
		return nil, err
	}
	return c, nil
}

// inheritedEnv are variables of our own environment a node must not see.
var inheritedEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}

func nodeEnv(n nodeState, labEnv []string) []string {
	var env []string
outer:
	for _, e := range os.Environ() {
		for _, k := range inheritedEnv {
			if strings.HasPrefix(e, k+"=") {
				continue outer
			}
		}
		env = append(env, e)
	}
	env = append(env,
		"NOTIFY_SOCKET="+n.Notify,
		"EDGELAB_NODE="+n.Name,
		"EDGELAB_ADDR="+n.Addr,
		"EDGELAB_CONFIG="+n.Config,
	)
	env = append(env, labEnv...)
	return append(env, n.Env...) // later entries win
}

// waitReady waits for READY=1 from c, or its exit, or the end of ctx.
func (l *Lab) waitReady(ctx context.Context, n nodeState, c *child) error {
	select {
	case <-c.notify.ready:
		l.log.Debug("ready", "node", n.Name, "pid", c.pid)
		return nil
	case <-c.done:
		return fmt.Errorf("lab: node %s: exited before READY=1 (%s); %s: %s", n.Name, exitText(c.err), n.Log, logTail(n.Log))
	case <-ctx.Done():
		return fmt.Errorf("lab: node %s: no READY=1 on NOTIFY_SOCKET: %w; %s: %s", n.Name, ctx.Err(), n.Log, logTail(n.Log))
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lookup returns a node's state and, if this value started its current
// process, that child.
func (l *Lab) lookup(name string) (nodeState, *child, error) {
	var n nodeState
	err := l.view(func(st *state) error {
		p, err := st.node(name)
		if err != nil {
			return err
		}
		n = *p
		return nil
	})
	if err != nil {
		return n, nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.children[name]
	if c != nil && c.pid != n.Pid {
		c = nil // restarted by another process
	}
	return n, c, nil
}

// waitExit waits until the node's process is gone.
func waitExit(ctx context.Context, n nodeState, c *child) error {
	if c == nil {
		return waitGone(ctx, n.Pid, n.StartTime)
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lab: wait for pid %d: %w", c.pid, ctx.Err())
	}
}

// Kill sends SIGKILL to the node's process (and its process group) and waits
// until it is gone: a crash, as seen by the other nodes.
func (l *Lab) Kill(name string) error {
	n, c, err := l.lookup(name)
	if err != nil {
		return err
	}
	if !alive(n.Pid, n.StartTime) {
		return fmt.Errorf("lab: node %s: %w", name, ErrNotRunning)
	}
	if err := signalProc(n.Pid, n.StartTime, syscall.SIGKILL, true); err != nil {
		return fmt.Errorf("lab: node %s: kill: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), killWait)
	defer cancel()
	if err := waitExit(ctx, n, c); err != nil {
		return fmt.Errorf("lab: node %s: kill: %w", name, err)
	}
	l.log.Info("killed", "node", name, "pid", n.Pid)
	return nil
}

// Stop sends SIGTERM to the node's process and waits for it to exit: a
// graceful leave. If ctx ends first, the process is killed and Stop returns
// an error.
func (l *Lab) Stop(ctx context.Context, name string) error {
	n, c, err := l.lookup(name)
	if err != nil {
		return err
	}
	if !alive(n.Pid, n.StartTime) {
		return fmt.Errorf("lab: node %s: %w", name, ErrNotRunning)
	}
	if err := signalProc(n.Pid, n.StartTime, syscall.SIGTERM, false); err != nil {
		return fmt.Errorf("lab: node %s: stop: %w", name, err)
	}
	if werr := waitExit(ctx, n, c); werr != nil {
		_ = signalProc(n.Pid, n.StartTime, syscall.SIGKILL, true)
		kctx, cancel := context.WithTimeout(context.Background(), killWait)
		defer cancel()
		return errors.Join(fmt.Errorf("lab: node %s: no exit after SIGTERM, killed: %w", name, werr), waitExit(kctx, n, c))
	}
	l.log.Info("stopped", "node", name, "pid", n.Pid)
	return nil
}

// Start starts the node's process again with the same config and, unless the
// node was added with NoWait, waits for READY=1 (at most the lab's ready
// timeout). A node that does not get ready is killed.
func (l *Lab) Start(ctx context.Context, name string) error {
	c, err := l.startNode(name)
	if err != nil {
		return err
	}
	n, _, err := l.lookup(name)
	if err != nil {
		return err
	}
	if n.NoWait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.readyTimeout)
	defer cancel()
	if err := l.waitReady(ctx, n, c); err != nil {
		_ = signalProc(c.pid, c.start, syscall.SIGKILL, true)
		<-c.done
		return err
	}
	return nil
}

// Wait blocks until the node's process exits and returns how it ended: nil
// for exit status 0, else an error wrapping *exec.ExitError. For a process
// this Lab value did not start (a lab from Open), it returns an error
// wrapping ErrExitUnknown once the process is gone.
func (l *Lab) Wait(ctx context.Context, name string) error {
	n, c, err := l.lookup(name)
	if err != nil {
		return err
	}
	if c == nil {
		if n.Pid == 0 {
			return fmt.Errorf("lab: node %s: never started", name)
		}
		if err := waitGone(ctx, n.Pid, n.StartTime); err != nil {
			return fmt.Errorf("lab: node %s: %w", name, err)
		}
		return fmt.Errorf("lab: node %s: %w", name, ErrExitUnknown)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("lab: node %s: wait: %w", name, ctx.Err())
	}
	if c.err != nil {
		return fmt.Errorf("lab: node %s: %w", name, c.err)
	}
	return nil
}

// AddNode adds a node on the same bridge, with the next free address. It gets
// the lab's site, key and log level unless spec overrides them, and only the
// seeds and extra lines of spec (not those of the Config given to Up). Unless
// spec.NoWait, AddNode waits for READY=1. On error the node is removed again.
// A node added while the lab is partitioned joins the group of unlisted nodes.
func (l *Lab) AddNode(ctx context.Context, spec NodeSpec) (Node, error) {
	if err := spec.validate(); err != nil {
		return Node{}, err
	}
	if err := validSocketPaths(l.dir, spec.Name); err != nil {
		return Node{}, err
	}
	key := l.key
	if spec.Key != nil {
		key = base64.StdEncoding.EncodeToString(spec.Key)
	}
	var n nodeState
	var st state
	err := l.update(func(s *state) error {
		if _, err := s.node(spec.Name); err == nil {
			return fmt.Errorf("lab: node %s already exists", spec.Name)
		}
		idx := 0
		for _, o := range s.Nodes {
			idx = max(idx, o.Index)
		}
		idx++
		if spec.Index > 0 {
			if i := slices.IndexFunc(s.Nodes, func(o nodeState) bool { return o.Index == spec.Index }); i >= 0 {
				return fmt.Errorf("lab: node %s: index %d is taken by node %s", spec.Name, spec.Index, s.Nodes[i].Name)
			}
			idx = spec.Index
		}
		if subnet := netip.MustParsePrefix(s.Subnet); idx > maxNodes(subnet) {
			return fmt.Errorf("lab: node %s: no address left in %s", spec.Name, subnet)
		}
		argv := spec.Argv
		if spec.Edged != "" {
			e, err := findEdged(spec.Edged)
			if err != nil {
				return err
			}
			argv = []string{e, "--config", "{config}"}
		}
		if argv == nil {
			if s.Edged == "" {
				e, err := findEdged("")
				if err != nil {
					return err
				}
				s.Edged = e
			}
			argv = []string{s.Edged, "--config", "{config}"}
		}
		n = l.plan(spec.Name, idx, key, argv, spec.Env, spec.NoWait)
		s.Nodes = append(s.Nodes, n)
		st = *s
		return nil
	})
	if err != nil {
		return Node{}, err
	}
	node, err := l.addNode(ctx, spec, st, n, key)
	if err != nil {
		return Node{}, errors.Join(err, l.removeNode(n))
	}
	return node, nil
}

func (l *Lab) addNode(ctx context.Context, spec NodeSpec, st state, n nodeState, key string) (Node, error) {
	c := nodeConf{site: st.Site, keyFile: st.KeyFile, seeds: spec.Seeds, extra: spec.Extra, tlsDir: st.TLSDir, bootstrapExpect: st.BootstrapExpect}
	if spec.Site != "" {
		c.site = spec.Site
	}
	if spec.NoTLS || c.site != st.Site {
		c.tlsDir = ""
	}
	if key != l.key {
		c.keyFile = filepath.Join(n.Dir, keyFile)
	}
	if err := l.writeNodeConfig(n, c); err != nil {
		return Node{}, err
	}
	if key != l.key {
		if err := writeFileAtomic(c.keyFile, []byte(key+"\n"), 0o600); err != nil {
			return Node{}, fmt.Errorf("lab: node %s: key file: %w", n.Name, err)
		}
	}
	if err := makeNode(ctx, st, n); err != nil {
		return Node{}, err
	}
	if len(st.Partition) > 0 || st.Loss > 0 {
		if err := l.update(func(s *state) error { return applyFilter(ctx, s) }); err != nil {
			return Node{}, err
		}
	}
	ch, err := l.startNode(n.Name)
	if err != nil {
		return Node{}, err
	}
	if !n.NoWait {
		rctx, cancel := context.WithTimeout(ctx, l.readyTimeout)
		defer cancel()
		if err := l.waitReady(rctx, n, ch); err != nil {
			return Node{}, err
		}
	}
	return l.Node(n.Name)
}

// removeNode undoes a failed AddNode.
func (l *Lab) removeNode(n nodeState) error {
	var errs []error
	if cur, c, err := l.lookup(n.Name); err == nil && cur.Pid != 0 {
		_ = signalProc(cur.Pid, cur.StartTime, syscall.SIGKILL, true)
		ctx, cancel := context.WithTimeout(context.Background(), killWait)
		errs = append(errs, waitExit(ctx, cur, c))
		cancel()
	}
	l.mu.Lock()
	if c := l.children[n.Name]; c != nil {
		c.notify.close()
		delete(l.children, n.Name)
	}
	l.mu.Unlock()
	// Delete the veth pair first: a deleted namespace dies asynchronously, and
	// its eth0 would keep the bridge-side name taken for a while.
	if err := ip(context.Background(), "-n", l.bridge, "link", "del", n.Veth); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, fmt.Errorf("lab: netns %s: link del %s: %w", l.bridge, n.Veth, err))
	}
	if _, err := os.Stat(filepath.Join(netnsDir, n.Namespace)); err == nil {
		errs = append(errs, deleteNetns(context.Background(), []string{n.Namespace}))
	}
	errs = append(errs, os.RemoveAll(n.Dir))
	errs = append(errs, l.update(func(s *state) error {
		for i := range s.Nodes {
			if s.Nodes[i].Name == n.Name {
				s.Nodes = append(s.Nodes[:i], s.Nodes[i+1:]...)
				break
			}
		}
		if len(s.Partition) > 0 || s.Loss > 0 {
			return applyFilter(context.Background(), s)
		}
		return nil
	}))
	return errors.Join(errs...)
}

// Command returns a command that runs argv inside the node's namespace (with
// "ip netns exec"). For an unknown node, the command's Start returns the error.
func (l *Lab) Command(ctx context.Context, name string, argv ...string) *exec.Cmd {
	n, err := l.Node(name)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Namespace}, argv...)...)
	if err == nil && len(argv) == 0 {
		err = errors.New("lab: command: empty argv")
	}
	if err != nil {
		cmd.Err = err
	}
	return cmd
}

// Do runs fn on an OS thread inside the node's network namespace. Sockets fn
// opens belong to that namespace for their whole life, so a test can dial
// from a node. Goroutines fn starts run outside the namespace.
func (l *Lab) Do(name string, fn func() error) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	return inNetns(n.Namespace, fn)
}

// Down kills every process of the lab, deletes its namespaces and removes the
// files it made. It is idempotent and also catches stragglers: every process
// in a namespace named "PREFIX-...", and those namespaces.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	children := l.children
	l.children = nil
	prefix := l.prefix
	l.mu.Unlock()

	err := clean(l.dir, prefix, l.log)
	for name, c := range children {
		select {
		case <-c.done:
		case <-time.After(killWait):
			err = errors.Join(err, fmt.Errorf("lab: node %s: pid %d still running", name, c.pid))
		}
		c.notify.close()
	}
	if err == nil {
		l.log.Info("lab down", "dir", l.dir, "prefix", prefix)
	}
	return err
}

// WriteStatus writes a table of the nodes to w: node, namespace, addr, pid,
// running, socket.
func (l *Lab) WriteStatus(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tADDR\tPID\tRUNNING\tSOCKET")
	for _, n := range l.Nodes() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\n", n.Name, n.Namespace, n.Addr, n.Pid, n.Running, n.Socket)
	}
	return tw.Flush()
}
