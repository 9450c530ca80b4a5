package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"edge/internal/pki"
)

// Protocol bytes, sent by the client right after the TLS handshake.
const (
	protoRaft byte = 'R'
	protoRPC  byte = 'H'
)

// ErrUnknownPeer is returned by a dial to an address that Config.NameOf does
// not know: the peer's name to verify is unknown, so it is not dialled.
var ErrUnknownPeer = errors.New("no node name known for this address")

// Config tunes a Mux.
type Config struct {
	// NameOf gives the node name expected at a peer's address, as dialled
	// ("host:port": a raft server address, or an RPC URL's host). The peer's
	// certificate must then be issued for that name, and an unknown address
	// is refused with ErrUnknownPeer. nil: any node certificate of the site
	// is accepted (see the package comment).
	NameOf func(addr string) (node string, ok bool)
	// HandshakeTimeout bounds the TLS handshake and the protocol byte of
	// every connection, accepted or dialled.
	HandshakeTimeout time.Duration
	// MaxPending bounds the accepted connections still in their handshake;
	// beyond it new ones are closed at once, so that a flood of connections
	// costs a bounded amount of memory.
	MaxPending int
	// Logger receives refused connections (debug) and accept failures
	// (warn); nil: discard.
	Logger *slog.Logger
}

// DefaultConfig is the configuration of Listen.
func DefaultConfig() Config {
	return Config{HandshakeTimeout: 5 * time.Second, MaxPending: 64}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.HandshakeTimeout <= 0 {
		return fmt.Errorf("transport: handshake timeout %v: must be positive", c.HandshakeTimeout)
	}
	if c.MaxPending < 1 {
		return fmt.Errorf("transport: max pending %d: must be at least 1", c.MaxPending)
	}
	return nil
}

// Mux is one TLS listener shared by raft and node RPC. Its accept loop runs
// from Listen until Close.
type Mux struct {
	cfg       Config
	log       *slog.Logger
	creds     atomic.Pointer[pki.Credentials] // current; SetCredentials swaps them
	server    *tls.Config                     // picks the current credentials per handshake
	ln        net.Listener
	advertise net.Addr
	raft      *streamLayer
	rpc       *listener
	client    *http.Client
	pending   chan struct{} // a token per accepted connection not yet handed on

	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the connections being set up

	closeOnce sync.Once
	closeErr  error
}

// Listen listens on addr (host:port) with the site credentials creds and the
// default configuration. advertise is the address peers reach this node at
// (raft's own address for this node); nil means the listener's address,
// which must then not be unspecified (0.0.0.0 or ::).
func Listen(addr string, creds *pki.Credentials, advertise net.Addr) (*Mux, error) {
	return DefaultConfig().Listen(addr, creds, advertise)
}

// Listen is the package's Listen with the configuration c.
func (c Config) Listen(addr string, creds *pki.Credentials, advertise net.Addr) (*Mux, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, errors.New("transport: no TLS credentials")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if tcp, ok := advertise.(*net.TCPAddr); !ok || tcp.IP == nil || tcp.IP.IsUnspecified() || tcp.Port == 0 {
		ln.Close()
		return nil, fmt.Errorf("transport: advertise address %v: need an IP address and port peers can reach", advertise)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:       c,
		log:       log,
		ln:        ln,
		advertise: advertise,
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(chan struct{}, c.MaxPending),
	}
	m.creds.Store(creds)
	m.server = &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return m.creds.Load().ServerConfig(), nil
		},
	}
	m.raft = &streamLayer{listener: newListener(advertise), m: m}
	m.rpc = newListener(advertise)
	m.client = &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return m.dial(ctx, addr, protoRPC, m.cfg.HandshakeTimeout)
		},
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("transport: node RPC is only over TLS: use an https:// URL")
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr is the address this node is reached at (the advertise address).
func (m *Mux) Addr() net.Addr { return m.advertise }

// Raft is the stream layer for raft.NewNetworkTransport. Its Accept returns
// the raft connections only; its Close (which the raft transport calls on
// shutdown) stops raft connections but not the Mux.
func (m *Mux) Raft() raft.StreamLayer { return m.raft }

// RPC is the listener of node RPC, for an http.Server. Its Close stops RPC
// connections but not the Mux.
func (m *Mux) RPC() net.Listener { return m.rpc }

// RPCClient is an HTTP client whose connections go over this Mux's TLS to
// other nodes' RPC side; use https://host:port/ URLs with the peer's
// transport address, and a context with a deadline on each request (the
// client itself has no overall timeout). It is shared: do not change it.
func (m *Mux) RPCClient() *http.Client { return m.client }

// Close stops listening, refuses connections still being set up, closes the
// raft and RPC listeners and the client's idle connections, and waits for
// the Mux's goroutines. Connections already handed out belong to their
// owners (raft, the http.Server) and stay open.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		err := m.ln.Close()
		m.raft.Close()
		m.rpc.Close()
		m.wg.Wait()
		m.client.CloseIdleConnections()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("transport: close: %w", err)
		}
	})
	return m.closeErr
}

// acceptLoop accepts TCP connections and handles each in its own goroutine,
// so that a slow peer never delays another.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "error", err, "retry_in", delay)
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		select {
		case m.pending <- struct{}{}:
		default:
			m.log.Debug("connection refused: too many in their handshake", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		m.wg.Add(1)
		go m.handle(conn)
	}
}

// handle sets up an accepted connection and hands it to the raft or RPC
// listener, or refuses it and then logs why.
func (m *Mux) handle(raw net.Conn) {
	defer m.wg.Done()
	// Close unblocks a handshake in progress, and the draining of a refused
	// connection.
	stop := context.AfterFunc(m.ctx, func() { raw.Close() })
	// The slot is freed before the ack: a peer that dials again as soon as
	// its first connection is set up must find it free. Waiting for Accept
	// does not count.
	release := sync.OnceFunc(func() { <-m.pending })
	conn, l, why := m.setup(raw, release)
	if why == nil {
		closing := !stop()
		release()
		if closing || !l.deliver(m.ctx, conn) {
			raw.Close()
		}
		return
	}
	m.refuse(raw)
	stop()
	release()
	m.log.Debug(why.msg, append([]any{"remote", raw.RemoteAddr().String()}, why.args...)...)
}

// refusal says why a connection was refused, for the log.
type refusal struct {
	msg  string
	args []any
}

// setup runs the TLS handshake of an accepted connection, reads its protocol
// byte and acknowledges it, within the handshake timeout; it calls release
// right before the acknowledgement.
func (m *Mux) setup(raw net.Conn, release func()) (*tls.Conn, *listener, *refusal) {
	conn := tls.Server(raw, m.server)
	raw.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if err := conn.HandshakeContext(m.ctx); err != nil {
		return nil, nil, &refusal{"connection refused: TLS handshake failed", []any{"error", err}}
	}
	peer := pki.PeerNode(conn.ConnectionState())
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return nil, nil, &refusal{"connection dropped before its protocol byte", []any{"peer", peer, "error", err}}
	}
	var l *listener
	switch b[0] {
	case protoRaft:
		l = m.raft.listener
	case protoRPC:
		l = m.rpc
	default:
		return nil, nil, &refusal{"connection refused: unknown protocol byte", []any{"peer", peer, "byte", fmt.Sprintf("%#02x", b[0])}}
	}
	if l.closed() {
		return nil, nil, &refusal{"connection refused: protocol closed", []any{"peer", peer, "protocol", string(b[0])}}
	}
	release()
	if _, err := conn.Write(b[:]); err != nil {
		return nil, nil, &refusal{"connection dropped before its protocol ack", []any{"peer", peer, "error", err}}
	}
	raw.SetDeadline(time.Time{})
	return conn, l, nil
}

// refuse closes a connection that is not handed on. When the Mux is still
// open it first lets the peer read what was sent (a TLS alert says why it
// was refused): closing a socket with unread input would reset the
// connection, and the peer could lose the alert.
func (m *Mux) refuse(raw net.Conn) {
	defer raw.Close()
	tcp, ok := raw.(*net.TCPConn)
	if !ok || m.ctx.Err() != nil {
		return
	}
	if tcp.CloseWrite() != nil {
		return
	}
	tcp.SetReadDeadline(time.Now().Add(min(m.cfg.HandshakeTimeout, lingerTime)))
	io.Copy(io.Discard, io.LimitReader(tcp, 64<<10))
}

// lingerTime bounds how long a refused connection is drained.
const lingerTime = 500 * time.Millisecond

// dial connects to addr over TLS and selects proto. timeout bounds the whole
// setup; 0 means the handshake timeout.
func (m *Mux) dial(ctx context.Context, addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	name := ""
	if m.cfg.NameOf != nil {
		var ok bool
		if name, ok = m.cfg.NameOf(addr); !ok {
			return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrUnknownPeer)
		}
	}
	return m.dialAs(ctx, addr, name, proto, timeout)
}

// dialAs is dial to the node name at addr ("" for any node of the site),
// with the credentials current at the time of the dial.
func (m *Mux) dialAs(ctx context.Context, addr, name string, proto byte, timeout time.Duration) (net.Conn, error) {
	cfg := m.creds.Load().ClientConfig(name)
	if timeout <= 0 {
		timeout = m.cfg.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel) // Close aborts dials in progress
	defer stop()

	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, dialError(addr, name, err)
	}
	conn := c.(*tls.Conn)
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Cancellation of ctx also ends the exchange below.
	unblock := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	var ack [1]byte
	_, err = conn.Write([]byte{proto})
	if err == nil {
		_, err = io.ReadFull(conn, ack[:])
	}
	unblocked := !unblock()
	if err == nil && ack[0] != proto {
		err = fmt.Errorf("answered %#02x to protocol %q: not an edged transport port", ack[0], proto)
	}
	if err == nil && unblocked {
		err = ctx.Err()
	}
	if err != nil {
		conn.NetConn().Close()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("connection closed after the TLS handshake (protocol %q refused): %w", proto, err)
		}
		return nil, dialError(addr, name, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// dialError says whom a failed dial was for, and who refused whom.
func dialError(addr, name string, err error) error {
	who := addr
	if name != "" {
		who = name + " at " + addr
	}
	var op *net.OpError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &op) && op.Op == "remote error":
		return fmt.Errorf("transport: dial %s: the peer refused this node's certificate: %w", who, err)
	case errors.As(err, &verify):
		return fmt.Errorf("transport: dial %s: the peer's certificate is refused: %w", who, err)
	}
	return fmt.Errorf("transport: dial %s: %w", who, err)
}

// listener is the net.Listener of one protocol, fed by the Mux.
type listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*listener)(nil)

func newListener(addr net.Addr) *listener {
	return &listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next connection of this protocol.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops this protocol's connections; the Mux goes on.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the Mux's advertise address.
func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// deliver hands c to Accept; false when the listener or the Mux closed first.
func (l *listener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
	case <-ctx.Done():
	}
	return false
}

// streamLayer is the raft side of a Mux.
type streamLayer struct {
	*listener
	m *Mux
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// Dial connects to another node's raft over TLS.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(context.Background(), string(address), protoRaft, timeout)
}
