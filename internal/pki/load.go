package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// maxFileSize bounds every file Load reads: a CA bundle or a certificate is a
// few kilobytes.
const maxFileSize = 1 << 20

// Credentials are a node's loaded and checked TLS identity: its certificate
// and key, and the site CA that every peer must be signed by.
type Credentials struct {
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool
	cas   []*x509.Certificate // the certificates of tls_ca, in file order
	node  string
	site  string
}

// Load reads a node's credentials: the site CA (tls_ca; one PEM certificate,
// or several while the CA is being replaced), the node's certificate
// (tls_cert) and its private key (tls_key). It checks that the key matches the
// certificate, that the certificate is valid now, is signed by the CA and is
// good for both server and client authentication. Errors name the config key
// and the file, for example
// "tls_cert /etc/edged/tls/n1.crt: not signed by tls_ca /etc/edged/tls/ca.crt".
func Load(caFile, certFile, keyFile string) (*Credentials, error) {
	return load(caFile, certFile, keyFile, time.Now())
}

func load(caFile, certFile, keyFile string, now time.Time) (*Credentials, error) {
	caPEM, err := readFile("tls_ca", caFile)
	if err != nil {
		return nil, err
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_ca %s: %w", caFile, err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, fmt.Errorf("tls_ca %s: %q is not a CA certificate", caFile, c.Subject.CommonName)
		}
		roots.AddCert(c)
	}

	certPEM, err := readFile("tls_cert", certFile)
	if err != nil {
		return nil, err
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_cert %s: %w", certFile, err)
	}
	leaf := chain[0]
	keyPEM, err := readFile("tls_key", keyFile)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_key %s: %w", keyFile, err)
	}
	if !samePublicKey(leaf.PublicKey, key.Public()) {
		return nil, fmt.Errorf("tls_key %s: does not match tls_cert %s", keyFile, certFile)
	}

	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls_cert %s: not valid before %s (check this node's clock)",
			certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls_cert %s: expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if !hasUsage(leaf, x509.ExtKeyUsageServerAuth) || !hasUsage(leaf, x509.ExtKeyUsageClientAuth) {
		return nil, fmt.Errorf("tls_cert %s: not a node certificate (needs both server and client authentication; make it with `edgectl tls cert`)", certFile)
	}
	node := nodeName(leaf)
	if node == "" {
		return nil, fmt.Errorf("tls_cert %s: names no node (no DNS name, no common name)", certFile)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, // both checked above
	})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("tls_cert %s: not signed by tls_ca %s", certFile, caFile)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		// The node certificate is valid now (checked above): its CA is not.
		return nil, fmt.Errorf("tls_ca %s: expired or not yet valid (%v)", caFile, err)
	default:
		return nil, fmt.Errorf("tls_cert %s: %w", certFile, err)
	}

	site := ""
	if len(leaf.Subject.Organization) > 0 {
		site = leaf.Subject.Organization[0]
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	return &Credentials{
		cert:  tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf},
		leaf:  leaf,
		roots: roots,
		cas:   cas,
		node:  node,
		site:  site,
	}, nil
}

// Node is the node name the certificate was issued for. The daemon should
// check that it is its configured node name.
func (c *Credentials) Node() string { return c.node }

// Site is the site named by the certificate ("" for a certificate not made by
// this package).
func (c *Credentials) Site() string { return c.site }

// NotAfter is when the node's certificate expires.
func (c *Credentials) NotAfter() time.Time { return c.leaf.NotAfter }

// ServerConfig is the TLS config of a node accepting connections: TLS 1.3,
// this node's certificate, and a client certificate signed by the site CA
// required from every peer. Session tickets are off, so every connection
// authenticates its peer in full.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{c.cert},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              c.roots,
		SessionTicketsDisabled: true,
	}
}

// ClientConfig is the TLS config of a node connecting to the node named
// serverName: TLS 1.3, this node's certificate as the client certificate, and
// the server's certificate verified against the site CA and serverName (a
// node name, or an IP address the certificate lists).
//
// With serverName "" the server may be any node of the site: its certificate
// must be signed by the site CA for server authentication, but its name is not
// checked. That is weaker (a node could pretend to be another); use it only
// where the caller cannot know whom it dials, and then PeerNode reports ""
// on this side of the connection.
func (c *Credentials) ClientConfig(serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		RootCAs:      c.roots,
		ServerName:   serverName,
	}
	if serverName == "" {
		roots := c.roots
		// The standard check would also compare a host name; do the rest of
		// it by hand. VerifyConnection runs on every handshake.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, cert := range cs.PeerCertificates[1:] {
				inter.AddCert(cert)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		}
	}
	return cfg
}

// PeerNode is the node name of the peer of a connection, taken from its
// verified certificate; "" when the peer's certificate was not verified
// against the site CA by the standard check (no handshake yet, or a client
// config made with serverName "").
func PeerNode(state tls.ConnectionState) string {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return nodeName(state.VerifiedChains[0][0])
}

// nodeName is the node a certificate was issued for: its first DNS name, or
// its common name.
func nodeName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	return slices.Contains(c.ExtKeyUsage, u) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// readFile reads a credentials file, at most maxFileSize bytes; errors name
// the config key.
func readFile(what, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: no file given", what)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s %s: larger than %d bytes, not a credentials file", what, path, maxFileSize)
	}
	return b, nil
}

// parseCerts decodes every CERTIFICATE block of PEM data; anything else in
// it is an error, and so is no certificate at all.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return certs, nil
}

// parseKey decodes a PEM private key (PKCS#8, or SEC 1 "EC PRIVATE KEY").
func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key in it")
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("holds a %q PEM block, want PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return s, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
