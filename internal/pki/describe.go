package pki

import (
	"crypto/x509"
	"slices"
)

// Serial is the node certificate's serial number in hex, to tell a renewed
// certificate from the one it replaces.
func (c *Credentials) Serial() string { return c.leaf.SerialNumber.Text(16) }

// CAs are the CA certificates of tls_ca (several while the site CA is being
// replaced), in file order.
func (c *Credentials) CAs() []*x509.Certificate { return slices.Clone(c.cas) }

// Equal reports whether c and o are the same credentials: the same
// certificate chain and the same CA certificates. (The key belongs to the
// certificate: Load checked that they match.)
func (c *Credentials) Equal(o *Credentials) bool {
	if c == nil || o == nil {
		return c == o
	}
	same := func(a, b []*x509.Certificate) bool {
		return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return x.Equal(y) })
	}
	return slices.EqualFunc(c.cert.Certificate, o.cert.Certificate, func(a, b []byte) bool { return string(a) == string(b) }) &&
		same(c.cas, o.cas)
}
