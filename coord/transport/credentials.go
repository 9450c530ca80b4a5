package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"edge/internal/pki"
)

// Credentials are the credentials new connections use now.
func (m *Mux) Credentials() *pki.Credentials { return m.creds.Load() }

// SetCredentials replaces this node's credentials (a renewed certificate, a
// CA bundle with a CA added or dropped) without closing anything: every
// handshake after it, accepted or dialled, shows the new certificate and
// checks the peer against the new CAs; connections already set up keep
// going. The new certificate must be issued for the same node name as the
// current one: a Mux keeps its identity.
func (m *Mux) SetCredentials(c *pki.Credentials) error {
	if c == nil {
		return errors.New("transport: no TLS credentials")
	}
	if cur := m.creds.Load(); c.Node() != cur.Node() {
		return fmt.Errorf("transport: the new certificate is issued for node %q, this node is %q", c.Node(), cur.Node())
	}
	m.creds.Store(c)
	return nil
}

// RPCClientFor is an HTTP client of other nodes' RPC side, like RPCClient,
// whose dials check that the peer's certificate names node ("" accepts any
// node of the site) whatever the address: for a peer known from elsewhere
// than Config.NameOf, such as an mDNS sighting. Each call makes a new
// client: call CloseIdleConnections on its Transport when done.
func (m *Mux) RPCClientFor(node string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return m.dialAs(ctx, addr, node, protoRPC, m.cfg.HandshakeTimeout)
		},
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("transport: node RPC is only over TLS: use an https:// URL")
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     10 * time.Second,
	}}
}
