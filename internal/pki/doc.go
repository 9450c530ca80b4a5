// Package pki makes and loads a site's credentials for mutual TLS between
// nodes (raft and node-to-node RPC): one site CA, and one certificate per node
// that is both a TLS server and a TLS client.
//
// A site CA is ca.crt + ca.key in one folder (CreateCA); a node's credentials
// are <node>.crt + <node>.key + a copy of ca.crt (CreateNodeCert). Keys are
// ECDSA P-256. The node name is the certificate's DNS name (and common name),
// the site its organization. Files are written atomically
// (github.com/google/renameio/v2) and their folder fsynced; existing files are
// never overwritten.
//
// Load reads a node's three files (the tls_ca, tls_cert and tls_key keys of
// edged.yaml) and checks them with errors that name the key and the file;
// Credentials.ServerConfig and Credentials.ClientConfig build the tls.Config of
// each side: TLS 1.3 only, every connection authenticated both ways by the
// site CA. tls_ca may hold several CA certificates (a bundle, while the site
// CA is replaced). Credentials are immutable: a renewal loads new ones, and
// Serial, CAs and Equal tell them apart (the transport swaps them in on a
// reload). The package is a leaf: it imports no other edge package, so the
// CLI can use it without linking the engine.
package pki
