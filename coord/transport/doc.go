// Package transport carries all node-to-node TCP traffic of a site, raft and
// node RPC, on one port with mutual TLS.
//
// A Mux listens on one TCP address. Every connection starts with a TLS 1.3
// handshake in which both sides show a certificate signed by the site CA
// (package edge/internal/pki); a peer without one is refused at the
// handshake. The client then sends one byte that selects the protocol, 'R'
// for raft or 'H' for HTTP RPC, and the server echoes it back, so a dial
// fails at once, with the TLS alert, when the peer refused it. The handshake
// and this exchange are bounded by Config.HandshakeTimeout: a stalled peer
// never holds up others. A failed handshake or an unknown byte closes the
// connection and is logged at debug level.
//
// Mux.Raft is a raft.StreamLayer for raft.NewNetworkTransport; Mux.RPC is a
// net.Listener for an http.Server, whose requests carry the caller's TLS
// state (pki.PeerNode(*r.TLS) names the calling node); Mux.RPCClient is the
// matching client, for https://host:port/ URLs.
//
// Whom a dial verifies: with Config.NameOf set, the peer's certificate must
// name the node NameOf gives for the dialled address (and an address NameOf
// does not know is not dialled: ErrUnknownPeer). Without it, any node
// certificate signed by the site CA is accepted: every peer is still a
// member of the site, but one node could answer for another's address.
// The daemon should set NameOf from what it knows of the site's members.
// Mux.RPCClientFor checks a name given by the caller instead, for a peer
// known from elsewhere (an mDNS sighting).
//
// Mux.SetCredentials swaps the node's certificate and CA bundle on a running
// Mux (a renewal, a CA replacement): each handshake picks the credentials
// current at that moment, and connections already set up are left alone.
package transport
