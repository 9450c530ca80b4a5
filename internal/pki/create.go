package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/google/renameio/v2"
)

// File names in a CA folder and next to a node's credentials.
const (
	CACertFile = "ca.crt" // the site CA certificate, 0644; copied to every node
	CAKeyFile  = "ca.key" // the site CA private key, 0600; stays off the nodes
)

// Default lifetimes, used when a validity of 0 is asked for.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour // ten years
	DefaultNodeValidity = 5 * 365 * 24 * time.Hour  // five years, and never past the CA's end
)

// backdate is how far before "now" a new certificate becomes valid, so that a
// node whose clock lags a little still accepts it.
const backdate = time.Hour

// ErrOutlivesCA is returned when a node certificate would stay valid after
// the CA that signs it has expired.
var ErrOutlivesCA = errors.New("node certificate would outlive the CA")

// nameRE is the rule for node and site names, the same as edged.yaml's.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ca is a site CA loaded from its folder, able to sign node certificates.
type ca struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// CreateCA makes a new site CA in dir (created, mode 0700, if missing):
// ca.crt (0644) and ca.key (0600), ECDSA P-256, common name
// "edge site <site> CA". A validity of 0 means DefaultCAValidity. It refuses
// to overwrite an existing ca.crt or ca.key (the error wraps fs.ErrExist).
func CreateCA(dir, site string, validity time.Duration) (*x509.Certificate, error) {
	return createCA(dir, site, validity, time.Now())
}

func createCA(dir, site string, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if !nameRE.MatchString(site) {
		return nil, fmt.Errorf("site %q: not a valid site name (letters, digits, '.', '_', '-', at most 63)", site)
	}
	if validity < 0 {
		return nil, fmt.Errorf("validity %v: must not be negative", validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "edge site " + site + " CA", Organization: []string{site}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs node certificates only, no intermediate CAs
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA folder: %w", err)
	}
	// The key first: a crash in between leaves a key without a certificate,
	// which the next run refuses, rather than a certificate nobody can sign with.
	if err := writeFiles(dir,
		file{keyPath, keyPEM, 0o600},
		file{certPath, pemCert(der), 0o644},
	); err != nil {
		return nil, err
	}
	return cert, nil
}

// CreateNodeCert makes the credentials of one node, signed by the site CA in
// caDir: <node>.crt (0644) and <node>.key (0600) in outDir (created, mode
// 0755, if missing), plus a copy of ca.crt. The certificate names the node as
// its DNS name and common name, carries ips as IP addresses, and is valid for
// both server and client authentication: a node is both. A validity of 0
// means DefaultNodeValidity or until the CA expires, whichever comes first; a
// longer validity than the CA has left is ErrOutlivesCA. It refuses to
// overwrite the node's files (the error wraps fs.ErrExist), and a ca.crt in
// outDir that differs from the CA's.
func CreateNodeCert(caDir, outDir, node string, ips []net.IP, validity time.Duration) (*x509.Certificate, error) {
	return createNodeCert(caDir, outDir, node, ips, validity, time.Now())
}

func createNodeCert(caDir, outDir, node string, ips []net.IP, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if !nameRE.MatchString(node) {
		return nil, fmt.Errorf("node %q: not a valid node name (letters, digits, '.', '_', '-', at most 63)", node)
	}
	if validity < 0 {
		return nil, fmt.Errorf("validity %v: must not be negative", validity)
	}
	for _, ip := range ips {
		if ip == nil || ip.To16() == nil {
			return nil, fmt.Errorf("ip %v: not an IP address", ip)
		}
	}
	ca, err := loadCA(caDir, now)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	switch {
	case validity == 0:
		notAfter = now.Add(DefaultNodeValidity)
		if notAfter.After(ca.cert.NotAfter) {
			notAfter = ca.cert.NotAfter
		}
	case notAfter.After(ca.cert.NotAfter):
		return nil, fmt.Errorf("%w: the CA expires on %s, in %d days", ErrOutlivesCA,
			ca.cert.NotAfter.UTC().Format(time.DateOnly), int(ca.cert.NotAfter.Sub(now).Hours()/24))
	}
	certPath := filepath.Join(outDir, node+".crt")
	keyPath := filepath.Join(outDir, node+".key")
	caCopy := filepath.Join(outDir, CACertFile)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return nil, err
	}
	copyCA := true
	switch old, err := os.ReadFile(caCopy); {
	case err == nil && string(old) == string(ca.certPEM):
		copyCA = false // already there (outDir may be caDir)
	case err == nil:
		return nil, fmt.Errorf("%s: exists and is not the CA of %s; use another --out folder", caCopy, caDir)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: node, Organization: ca.cert.Subject.Organization},
		DNSNames:              []string{node},
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse node certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	files := []file{{keyPath, keyPEM, 0o600}, {certPath, pemCert(der), 0o644}}
	if copyCA {
		files = append(files, file{caCopy, ca.certPEM, 0o644})
	}
	if err := writeFiles(outDir, files...); err != nil {
		return nil, err
	}
	return cert, nil
}

// loadCA reads and checks the CA in dir.
func loadCA(dir string, now time.Time) (*ca, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", certPath, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("CA %s: holds %d certificates, want 1", certPath, len(certs))
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("CA %s: not a CA certificate", certPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("CA %s: expired on %s", certPath, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", keyPath, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("CA %s: does not match %s", keyPath, certPath)
	}
	return &ca{cert: cert, certPEM: certPEM, key: key}, nil
}

// file is one file to write.
type file struct {
	path string
	data []byte
	perm os.FileMode
}

// writeFiles writes each file atomically (exact permissions, no umask), then
// fsyncs dir so that the renames survive a power cut.
func writeFiles(dir string, files ...file) error {
	for _, f := range files {
		if err := renameio.WriteFile(f.path, f.data, f.perm, renameio.WithStaticPermissions(f.perm)); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return syncDir(dir)
}

// syncDir fsyncs a folder, making the entries written in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}

// refuseExisting fails, wrapping fs.ErrExist, when any of paths exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return fmt.Errorf("%s: %w; remove it first to make a new one", p, fs.ErrExist)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	return nil
}

// newSerial returns a random 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never 0
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
