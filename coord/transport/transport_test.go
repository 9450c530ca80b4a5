package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"edge/internal/pki"
)

// wait bounds every wait for an event in these tests; it is a failure
// deadline, never a way to synchronise.
const wait = 20 * time.Second

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

// newSite makes a site CA and returns its folder.
func newSite(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := pki.CreateCA(dir, "mast-17", 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeCreds makes and loads the credentials of a node of the site in caDir.
func nodeCreds(t *testing.T, caDir, name string) *pki.Credentials {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if _, err := pki.CreateNodeCert(caDir, out, name, loopback, 0); err != nil {
		t.Fatal(err)
	}
	c, err := pki.Load(filepath.Join(out, pki.CACertFile), filepath.Join(out, name+".crt"), filepath.Join(out, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sitePool is the site CA of caDir as a pool, for hand-made TLS clients.
func sitePool(t *testing.T, caDir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no CA certificate")
	}
	return p
}

// logs is a slog handler that keeps every record, as one line, for waitLog.
type logs struct {
	*logBook
	attrs []slog.Attr
}

type logBook struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // a token after each new line
}

func newLogs() *logs { return &logs{logBook: &logBook{notify: make(chan struct{}, 1)}} }

func (h *logs) Enabled(context.Context, slog.Level) bool { return true }
func (h *logs) WithGroup(string) slog.Handler            { return h }
func (h *logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &logs{logBook: h.logBook, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return nil
}

// take removes and returns the first line that contains every one of parts.
func (b *logBook) take(parts []string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, l := range b.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			b.lines = append(b.lines[:i], b.lines[i+1:]...)
			return l, true
		}
	}
	return "", false
}

// waitLog waits for a line that contains every one of parts, and consumes it.
func (h *logs) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	timeout := time.After(wait)
	for {
		if l, ok := h.take(parts); ok {
			return l
		}
		select {
		case <-h.notify:
		case <-timeout:
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("no log line with %q; got:\n%s", parts, strings.Join(h.lines, "\n"))
		}
	}
}

// listen starts a Mux on loopback, closed at the end of the test.
func listen(t *testing.T, cfg Config, creds *pki.Credentials) *Mux {
	t.Helper()
	m, err := cfg.Listen("127.0.0.1:0", creds, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// serveRPC answers GET /whoami on m's RPC side with "<this node> <caller>".
func serveRPC(t *testing.T, m *Mux, name string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, pki.PeerNode(*r.TLS))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(m.RPC()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("RPC server of %s: %v", name, err)
		}
	})
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), err
}

// fsm is a trivial raft FSM that reports every applied command.
type fsm struct{ applied chan string }

func (f *fsm) Apply(l *raft.Log) any {
	f.applied <- string(l.Data)
	return nil
}
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return snapshot{}, nil }
func (f *fsm) Restore(rc io.ReadCloser) error      { return rc.Close() }

type snapshot struct{}

func (snapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (snapshot) Release()                          {}

type raftNode struct {
	name  string
	mux   *Mux
	trans *raft.NetworkTransport
	raft  *raft.Raft
	fsm   *fsm
}

func raftLog() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

// startRaft runs raft over n.mux, bootstrapped with servers.
func startRaft(t *testing.T, n *raftNode, servers []raft.Server) {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(n.name)
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 10 * time.Millisecond
	conf.LogOutput = raftLog()
	conf.LogLevel = "warn"
	n.trans = raft.NewNetworkTransport(n.mux.Raft(), 3, 5*time.Second, raftLog())
	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	if err := raft.BootstrapCluster(conf, store, store, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
		t.Fatal(err)
	}
	n.fsm = &fsm{applied: make(chan string, 16)}
	r, err := raft.NewRaft(conf, n.fsm, store, store, snaps, n.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("%s: raft shutdown: %v", n.name, err)
		}
		n.trans.CloseStreams()
		n.trans.Close()
	})
}

// TestRaftCluster runs three raft nodes over Muxes on loopback: they elect a
// leader and replicate a command, and the RPC side answers on the same port.
// A node with credentials of another CA, or without a client certificate,
// gets nowhere.
func TestRaftCluster(t *testing.T) {
	caDir := newSite(t)
	names := map[string]string{} // raft address -> node name, for NameOf
	nameOf := func(addr string) (string, bool) { n, ok := names[addr]; return n, ok }
	var nodes []*raftNode
	var servers []raft.Server
	logs1 := newLogs()
	for i, name := range []string{"n1", "n2", "n3"} {
		cfg := DefaultConfig()
		cfg.NameOf = nameOf
		if i == 0 {
			cfg.Logger = slog.New(logs1)
		}
		m := listen(t, cfg, nodeCreds(t, caDir, name))
		addr := m.Raft().Addr().String()
		names[addr] = name
		nodes = append(nodes, &raftNode{name: name, mux: m})
		servers = append(servers, raft.Server{ID: raft.ServerID(name), Address: raft.ServerAddress(addr)})
	}
	for _, n := range nodes {
		serveRPC(t, n.mux, n.name)
	}
	// Every raft goroutine starts after this point: names is read-only now.
	for _, n := range nodes {
		startRaft(t, n, servers)
	}

	// Leadership changes are events: forward each node's to one channel.
	leaders := make(chan *raft.Raft, 16)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() }) // runs before the raft shutdowns
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case leader := <-n.raft.LeaderCh():
					if leader {
						select {
						case leaders <- n.raft:
						case <-stop:
							return
						}
					}
				case <-stop:
					return
				}
			}
		}()
	}

	var leader *raft.Raft
	timeout := time.After(wait)
	for leader == nil {
		select {
		case r := <-leaders:
			err := r.Apply([]byte("frequency=3500"), wait).Error()
			switch {
			case err == nil:
				leader = r
			case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
				// Lost it at once: wait for the next leader.
			default:
				t.Fatalf("apply: %v", err)
			}
		case <-timeout:
			t.Fatal("no leader elected")
		}
	}
	for _, n := range nodes {
		select {
		case got := <-n.fsm.applied:
			if got != "frequency=3500" {
				t.Errorf("%s applied %q", n.name, got)
			}
		case <-time.After(wait):
			t.Fatalf("%s never applied the command", n.name)
		}
	}

	t.Run("RPC on the same port", func(t *testing.T) {
		url := "https://" + nodes[0].mux.Addr().String() + "/whoami"
		got, err := get(nodes[1].mux.RPCClient(), url)
		if err != nil {
			t.Fatal(err)
		}
		if got != "n1 n2" {
			t.Errorf("got %q, want n1 answering n2", got)
		}
		_, err = get(nodes[1].mux.RPCClient(), "http://"+nodes[0].mux.Addr().String()+"/whoami")
		if err == nil || !strings.Contains(err.Error(), "https://") {
			t.Errorf("plain http: %v, want a refusal asking for https", err)
		}
	})

	t.Run("node of another CA", func(t *testing.T) {
		rogueCA := newSite(t)
		cfg := DefaultConfig()
		cfg.NameOf = nameOf
		rogue := listen(t, cfg, nodeCreds(t, rogueCA, "n4"))
		trans := raft.NewNetworkTransport(rogue.Raft(), 1, 5*time.Second, raftLog())
		defer trans.Close()
		for _, n := range nodes {
			var resp raft.RequestVoteResponse
			err := trans.RequestVote(raft.ServerID(n.name), n.trans.LocalAddr(), &raft.RequestVoteRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n4"), Addr: []byte(trans.LocalAddr())}, Term: 1000, LastLogIndex: 1000, LastLogTerm: 1000,
			}, &resp)
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("vote request to %s: %v, want a TLS certificate error", n.name, err)
			}
			_, err = get(rogue.RPCClient(), "https://"+n.mux.Addr().String()+"/whoami")
			if !errors.As(err, &verr) {
				t.Errorf("RPC to %s: %v, want a TLS certificate error", n.name, err)
			}
		}

		// A rogue that trusts the site CA still shows a foreign certificate:
		// n1 refuses it at the handshake.
		foreign := nodeCreds(t, rogueCA, "n5").ClientConfig("n1")
		foreign.RootCAs = sitePool(t, caDir)
		_, err := rawDial(nodes[0].mux.Addr().String(), foreign, protoRaft)
		if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Errorf("foreign client certificate: %v, want it refused", err)
		}
		logs1.waitLog(t, "TLS handshake failed", "certificate signed by unknown authority")
	})

	t.Run("no client certificate", func(t *testing.T) {
		anon := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: sitePool(t, caDir), ServerName: "n1"}
		_, err := rawDial(nodes[0].mux.Addr().String(), anon, protoRaft)
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("no client certificate: %v, want it refused", err)
		}
		logs1.waitLog(t, "TLS handshake failed", "didn't provide a certificate")
	})

	t.Run("the cluster never lists them", func(t *testing.T) {
		for _, n := range nodes {
			f := n.raft.GetConfiguration()
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range f.Configuration().Servers {
				ids = append(ids, string(s.ID))
			}
			if strings.Join(ids, ",") != "n1,n2,n3" {
				t.Errorf("%s lists servers %v, want n1,n2,n3", n.name, ids)
			}
		}
	})
}

// rawDial is a client made by hand: TLS with cfg, then the protocol byte,
// and its echo.
func rawDial(addr string, cfg *tls.Config, proto byte) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: wait}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// acceptNode accepts one raft connection of m and returns the caller's name.
func acceptNode(t *testing.T, l net.Listener) string {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return pki.PeerNode(c.(*tls.Conn).ConnectionState())
}

// TestRefused: peers that are not nodes of the site, that speak an unknown
// protocol or that stall get nothing, and never hold up a real node.
func TestRefused(t *testing.T) {
	caDir := newSite(t)
	l := newLogs()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(l)
	cfg.HandshakeTimeout = 2 * time.Second // the stalled peer's wait; long enough for a real handshake on a busy machine
	server := listen(t, cfg, nodeCreds(t, caDir, "n1"))
	addr := server.Addr().String()
	n2 := nodeCreds(t, caDir, "n2")

	// A stalled peer, connected first, is set up in its own goroutine.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()

	foreign := nodeCreds(t, newSite(t), "n1").ClientConfig("n1")
	foreign.RootCAs = sitePool(t, caDir)
	tests := []struct {
		name      string
		dial      func() error
		clientErr string   // part of the client's error
		logged    []string // parts of n1's debug line
	}{
		{"another CA", func() error { _, err := rawDial(addr, foreign, protoRaft); return err },
			"unknown certificate authority", []string{"DEBUG connection refused: TLS handshake failed", "unknown authority"}},
		{"no client certificate", func() error {
			_, err := rawDial(addr, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: sitePool(t, caDir), ServerName: "n1"}, protoRaft)
			return err
		}, "certificate required", []string{"TLS handshake failed", "didn't provide a certificate"}},
		{"TLS 1.2", func() error {
			c := n2.ClientConfig("n1")
			c.MaxVersion = tls.VersionTLS12
			c.MinVersion = tls.VersionTLS12
			_, err := rawDial(addr, c, protoRaft)
			return err
		}, "protocol version", []string{"TLS handshake failed", "unsupported versions"}},
		{"plain HTTP", func() error {
			_, err := http.Get("http://" + addr + "/")
			return err
		}, "", []string{"TLS handshake failed", "does not look like a TLS handshake"}},
		{"unknown protocol byte", func() error { _, err := rawDial(addr, n2.ClientConfig("n1"), 'X'); return err },
			"EOF", []string{"DEBUG connection refused: unknown protocol byte", "byte=0x58", "peer=n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dial()
			if err == nil || !strings.Contains(err.Error(), tt.clientErr) {
				t.Errorf("client: %v, want an error containing %q", err, tt.clientErr)
			}
			l.waitLog(t, tt.logged...)
		})
	}

	// A real node gets through, past all of the above: the refused ones were
	// never handed to Accept, so this is the first connection it returns.
	m2 := listen(t, DefaultConfig(), n2)
	c, err := m2.Raft().Dial(raft.ServerAddress(addr), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := acceptNode(t, server.Raft()); got != "n2" {
		t.Errorf("accepted a connection from %q, want n2", got)
	}

	// The stalled peer is dropped after the handshake timeout.
	stalled.SetReadDeadline(time.Now().Add(wait))
	if _, err := stalled.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("stalled peer: read %v, want EOF", err)
	}
	l.waitLog(t, "TLS handshake failed", "i/o timeout")
}

// TestMaxPending: connections beyond MaxPending in their handshake are
// closed at once; a connection waiting for Accept no longer counts.
func TestMaxPending(t *testing.T) {
	caDir := newSite(t)
	l := newLogs()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(l)
	cfg.MaxPending = 1
	server := listen(t, cfg, nodeCreds(t, caDir, "n1"))
	addr := server.Addr().String()
	client := listen(t, DefaultConfig(), nodeCreds(t, caDir, "n2"))

	// The listener accepts in connection order: stalled takes the one slot.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(wait))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("second connection: read %v, want EOF", err)
	}
	l.waitLog(t, "DEBUG connection refused: too many in their handshake")

	stalled.Close()
	l.waitLog(t, "TLS handshake failed", "EOF")
	// Two nodes in turn: the first waits for Accept without holding the slot.
	for range 2 {
		c, err := client.Raft().Dial(raft.ServerAddress(addr), wait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for range 2 {
		if got := acceptNode(t, server.Raft()); got != "n2" {
			t.Errorf("accepted %q, want n2", got)
		}
	}
}

// TestNameOf: with NameOf, a dial checks the name in the peer's certificate.
func TestNameOf(t *testing.T) {
	caDir := newSite(t)
	server := listen(t, DefaultConfig(), nodeCreds(t, caDir, "n1"))
	addr := server.Addr().String()
	n2 := nodeCreds(t, caDir, "n2")
	tests := []struct {
		name   string
		nameOf func(string) (string, bool)
		want   string // "" means success
	}{
		{"right name", func(string) (string, bool) { return "n1", true }, ""},
		{"any site node", nil, ""},
		{"wrong name", func(string) (string, bool) { return "n3", true }, "certificate is valid for n1, not n3"},
		{"unknown address", func(string) (string, bool) { return "", false }, ErrUnknownPeer.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NameOf = tt.nameOf
			client := listen(t, cfg, n2)
			c, err := client.Raft().Dial(raft.ServerAddress(addr), wait)
			if tt.want != "" {
				if err == nil {
					c.Close()
					t.Fatal("dialled; want a refusal")
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), addr) {
					t.Errorf("error %q, want it to name %s and contain %q", err, addr, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := acceptNode(t, server.Raft()); got != "n2" {
				t.Errorf("server sees %q, want n2", got)
			}
			// The RPC client verifies the same way.
			serveOnce := make(chan error, 1)
			go func() {
				c, err := server.RPC().Accept()
				if err == nil {
					c.Close()
				}
				serveOnce <- err
			}()
			resp, err := client.RPCClient().Get("https://" + addr + "/")
			if err == nil {
				resp.Body.Close()
			}
			if err := <-serveOnce; err != nil {
				t.Errorf("RPC accept: %v", err)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	creds := nodeCreds(t, newSite(t), "n1")
	bad := DefaultConfig()
	bad.HandshakeTimeout = 0
	noPending := DefaultConfig()
	noPending.MaxPending = 0
	tests := []struct {
		name      string
		cfg       Config
		addr      string
		creds     *pki.Credentials
		advertise net.Addr
		want      string
	}{
		{"no credentials", DefaultConfig(), "127.0.0.1:0", nil, nil, "no TLS credentials"},
		{"no handshake timeout", bad, "127.0.0.1:0", creds, nil, "handshake timeout"},
		{"no pending connections", noPending, "127.0.0.1:0", creds, nil, "max pending 0"},
		{"wildcard without advertise", DefaultConfig(), "0.0.0.0:0", creds, nil, "advertise address"},
		{"bad address", DefaultConfig(), "127.0.0.1:99999", creds, nil, "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.cfg.Listen(tt.addr, tt.creds, tt.advertise)
			if err == nil {
				m.Close()
				t.Fatal("listening; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("wildcard with advertise", func(t *testing.T) {
		adv := &net.TCPAddr{IP: net.ParseIP("192.0.2.11"), Port: 7947}
		m, err := Listen("127.0.0.1:0", creds, adv)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Raft().Addr().String() != "192.0.2.11:7947" || m.RPC().Addr().String() != "192.0.2.11:7947" {
			t.Errorf("addresses %v %v, want the advertised one", m.Raft().Addr(), m.RPC().Addr())
		}
	})
}

// TestClose: closing one side leaves the other working; closing the Mux ends
// both Accepts.
func TestClose(t *testing.T) {
	caDir := newSite(t)
	m, err := Listen("127.0.0.1:0", nodeCreds(t, caDir, "n1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := listen(t, DefaultConfig(), nodeCreds(t, caDir, "n2"))
	addr := raft.ServerAddress(m.Addr().String())

	m.Raft().Close()
	if _, err := m.Raft().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("raft Accept after its Close: %v", err)
	}
	if _, err := client.Raft().Dial(addr, wait); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("raft dial to a closed raft side: %v, want a refusal", err)
	}
	errs := make(chan error, 1)
	go func() {
		c, err := m.RPC().Accept()
		if err == nil {
			c.Close()
		}
		errs <- err
	}()
	c, err := client.dial(context.Background(), string(addr), protoRPC, wait)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-errs; err != nil {
		t.Errorf("RPC Accept with raft closed: %v", err)
	}

	go func() {
		_, err := m.RPC().Accept()
		errs <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Errorf("RPC Accept across Close: %v, want net.ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := client.Raft().Dial(addr, wait); err == nil {
		t.Error("dialled a closed Mux")
	}
}
