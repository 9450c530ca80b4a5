package coord

import "edge/internal/pki"

// Credentials are the TLS credentials this node's transport uses now.
func (r *Raft) Credentials() *pki.Credentials { return r.mux.Credentials() }

// SetCredentials puts renewed TLS credentials (a new certificate for this
// node, a CA bundle with a CA added or dropped) in use for every new
// connection of raft and node RPC, without dropping those already set up.
func (r *Raft) SetCredentials(c *pki.Credentials) error { return r.mux.SetCredentials(c) }
