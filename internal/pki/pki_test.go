package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// site makes a CA in a temporary folder and returns the folder.
func site(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := CreateCA(dir, name, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// node makes a node's credentials signed by the CA in caDir, in their own
// folder, and returns the paths of ca.crt, the certificate and the key.
func node(t *testing.T, caDir, name string, ips ...net.IP) (caFile, certFile, keyFile string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if _, err := CreateNodeCert(caDir, out, name, ips, 0); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, CACertFile), filepath.Join(out, name+".crt"), filepath.Join(out, name+".key")
}

func loadNode(t *testing.T, caDir, name string, ips ...net.IP) *Credentials {
	t.Helper()
	c, err := Load(node(t, caDir, name, ips...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "ca")
	cert, err := CreateCA(dir, "mast-17", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.Subject.CommonName, "edge site mast-17 CA"; got != want {
		t.Errorf("CN %q, want %q", got, want)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("IsCA %v, key usage %b: want a CA that signs certificates", cert.IsCA, cert.KeyUsage)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
	if d := time.Until(cert.NotAfter); d < DefaultCAValidity-time.Hour || d > DefaultCAValidity {
		t.Errorf("valid for %v more, want about %v", d, DefaultCAValidity)
	}
	if m := mode(t, filepath.Join(dir, CACertFile)); m != 0o644 {
		t.Errorf("ca.crt mode %o, want 644", m)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca.key mode %o, want 600", m)
	}
	if _, err := loadCA(dir, time.Now()); err != nil {
		t.Errorf("the new CA does not load: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("CA folder holds %d entries, want ca.crt and ca.key only", len(entries))
	}

	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	_, err = CreateCA(dir, "mast-17", 0)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateCA: %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); string(after) != string(before) {
		t.Error("second CreateCA changed ca.key")
	}

	for _, tt := range []struct {
		name, site string
		validity   time.Duration
		want       string
	}{
		{"empty site", "", 0, "not a valid site name"},
		{"site with a slash", "a/b", 0, "not a valid site name"},
		{"negative validity", "s", -time.Hour, "must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CreateCA(filepath.Join(t.TempDir(), "ca"), tt.site, tt.validity)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCreateNodeCert(t *testing.T) {
	caDir := site(t, "mast-17")
	out := filepath.Join(t.TempDir(), "rru-3")
	ips := []net.IP{net.ParseIP("192.0.2.13"), net.ParseIP("2001:db8::13")}
	cert, err := CreateNodeCert(caDir, out, "rru-3", ips, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.DNSNames, []string{"rru-3"}) || cert.Subject.CommonName != "rru-3" {
		t.Errorf("DNS names %v, CN %q: want rru-3", cert.DNSNames, cert.Subject.CommonName)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(ips[0]) || !cert.IPAddresses[1].Equal(ips[1]) {
		t.Errorf("IPs %v, want %v", cert.IPAddresses, ips)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ext key usage %v, want server and client auth", cert.ExtKeyUsage)
	}
	if cert.IsCA {
		t.Error("node certificate is a CA")
	}
	if !slices.Equal(cert.Subject.Organization, []string{"mast-17"}) {
		t.Errorf("organization %v, want the site", cert.Subject.Organization)
	}
	if d := time.Until(cert.NotAfter); d < 30*24*time.Hour-time.Hour || d > 30*24*time.Hour {
		t.Errorf("valid for %v more, want 30 days", d)
	}
	for name, want := range map[string]fs.FileMode{"rru-3.crt": 0o644, "rru-3.key": 0o600, CACertFile: 0o644} {
		if m := mode(t, filepath.Join(out, name)); m != want {
			t.Errorf("%s mode %o, want %o", name, m, want)
		}
	}
	caPEM, _ := os.ReadFile(filepath.Join(caDir, CACertFile))
	if copied, _ := os.ReadFile(filepath.Join(out, CACertFile)); string(copied) != string(caPEM) {
		t.Error("ca.crt next to the node's files differs from the CA's")
	}
	creds, err := Load(filepath.Join(out, CACertFile), filepath.Join(out, "rru-3.crt"), filepath.Join(out, "rru-3.key"))
	if err != nil {
		t.Fatal(err)
	}
	if creds.Node() != "rru-3" || creds.Site() != "mast-17" || !creds.NotAfter().Equal(cert.NotAfter) {
		t.Errorf("Node %q Site %q NotAfter %v", creds.Node(), creds.Site(), creds.NotAfter())
	}

	t.Run("refuses to overwrite", func(t *testing.T) {
		_, err := CreateNodeCert(caDir, out, "rru-3", nil, 0)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("got %v, want fs.ErrExist", err)
		}
	})
	t.Run("a second node in the same folder", func(t *testing.T) {
		if _, err := CreateNodeCert(caDir, out, "rru-4", nil, 0); err != nil {
			t.Error(err)
		}
	})
	t.Run("into the CA folder", func(t *testing.T) {
		if _, err := CreateNodeCert(caDir, caDir, "gnss-1", nil, 0); err != nil {
			t.Error(err)
		}
	})
	t.Run("ca.crt of another CA in the way", func(t *testing.T) {
		_, err := CreateNodeCert(site(t, "other"), out, "rru-5", nil, 0)
		if err == nil || !strings.Contains(err.Error(), "is not the CA of") {
			t.Errorf("got %v, want a refusal", err)
		}
	})
	t.Run("default validity ends with the CA", func(t *testing.T) {
		short := filepath.Join(t.TempDir(), "ca")
		ca, err := CreateCA(short, "s", 48*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := CreateNodeCert(short, t.TempDir(), "n1", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.NotAfter.Equal(ca.NotAfter) {
			t.Errorf("node cert ends %v, want the CA's end %v", cert.NotAfter, ca.NotAfter)
		}
		_, err = CreateNodeCert(short, t.TempDir(), "n2", nil, 72*time.Hour)
		if !errors.Is(err, ErrOutlivesCA) {
			t.Errorf("72h under a 48h CA: %v, want ErrOutlivesCA", err)
		}
	})
	for _, tt := range []struct {
		name, caDir, node string
		want              string
	}{
		{"bad node name", caDir, "a b", "not a valid node name"},
		{"node name too long", caDir, strings.Repeat("n", 64), "not a valid node name"},
		{"no CA", t.TempDir(), "n1", "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CreateNodeCert(tt.caDir, t.TempDir(), tt.node, nil, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	caDir := site(t, "mast-17")
	caFile, certFile, keyFile := node(t, caDir, "n1")
	_, _, otherKey := node(t, caDir, "n2")
	otherCA := site(t, "mast-17") // same site name, another CA
	_, foreignCert, foreignKey := node(t, otherCA, "n1")
	now := time.Now()

	past := t.TempDir()
	if _, err := createNodeCert(caDir, past, "old", nil, 24*time.Hour, now.Add(-72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	future := t.TempDir()
	if _, err := createNodeCert(caDir, future, "new", nil, 0, now.Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not PEM\n"), 0o600)
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, make([]byte, maxFileSize+1), 0o600)
	caCert, caKey := filepath.Join(caDir, CACertFile), filepath.Join(caDir, CAKeyFile)
	missing := filepath.Join(t.TempDir(), "missing.crt")

	tests := []struct {
		name          string
		ca, cert, key string
		want          string // exact error, when it starts with "="; else a part of it
	}{
		{"foreign cert", caFile, foreignCert, foreignKey, "=tls_cert " + foreignCert + ": not signed by tls_ca " + caFile},
		{"key of another node", caFile, certFile, otherKey, "=tls_key " + otherKey + ": does not match tls_cert " + certFile},
		{"expired", caFile, filepath.Join(past, "old.crt"), filepath.Join(past, "old.key"), "tls_cert " + filepath.Join(past, "old.crt") + ": expired on "},
		{"not yet valid", caFile, filepath.Join(future, "new.crt"), filepath.Join(future, "new.key"), "not valid before"},
		{"missing CA", missing, certFile, keyFile, "tls_ca: open " + missing + ": no such file"},
		{"missing cert", caFile, missing, keyFile, "tls_cert: open " + missing},
		{"missing key", caFile, certFile, missing, "tls_key: open " + missing},
		{"no CA file given", "", certFile, keyFile, "=tls_ca: no file given"},
		{"garbage CA", garbage, certFile, keyFile, "=tls_ca " + garbage + ": no PEM certificate in it"},
		{"garbage cert", caFile, garbage, keyFile, "=tls_cert " + garbage + ": no PEM certificate in it"},
		{"garbage key", caFile, certFile, garbage, "=tls_key " + garbage + ": no PEM private key in it"},
		{"huge CA", big, certFile, keyFile, "larger than"},
		{"key as cert", caFile, keyFile, keyFile, "holds a \"PRIVATE KEY\" PEM block"},
		{"node cert as CA", certFile, certFile, keyFile, "is not a CA certificate"},
		{"CA cert as node cert", caFile, caCert, caKey, "not a node certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.ca, tt.cert, tt.key)
			switch {
			case err == nil:
				t.Fatalf("loaded; want an error")
			case strings.HasPrefix(tt.want, "="):
				if err.Error() != tt.want[1:] {
					t.Errorf("error %q\n     want %q", err, tt.want[1:])
				}
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}

	t.Run("CA bundle", func(t *testing.T) {
		a, _ := os.ReadFile(caFile)
		b, _ := os.ReadFile(filepath.Join(otherCA, CACertFile))
		bundle := filepath.Join(t.TempDir(), "bundle.crt")
		os.WriteFile(bundle, append(b, a...), 0o644)
		if _, err := Load(bundle, certFile, keyFile); err != nil {
			t.Errorf("a cert signed by the second CA of a bundle: %v", err)
		}
	})
}

// handshake runs a TLS handshake over a pipe and a one-byte exchange after
// it, and returns what each side saw.
func handshake(t *testing.T, server, client *tls.Config) (ss, cs tls.ConnectionState, serr, cerr error) {
	t.Helper()
	sc, cc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(sc, server)
		defer s.Close()
		if serr = s.Handshake(); serr != nil {
			return
		}
		ss = s.ConnectionState()
		_, serr = s.Write([]byte{1})
	}()
	c := tls.Client(cc, client)
	if cerr = c.Handshake(); cerr == nil {
		cs = c.ConnectionState()
		_, cerr = c.Read(make([]byte, 1))
	}
	cc.Close() // not c.Close: both sides sending close_notify over a pipe would wait for each other
	<-done
	return ss, cs, serr, cerr
}

func TestConfigs(t *testing.T) {
	caDir := site(t, "mast-17")
	n1 := loadNode(t, caDir, "n1", net.ParseIP("192.0.2.11"))
	n2 := loadNode(t, caDir, "n2")
	foreign := loadNode(t, site(t, "mast-17"), "n3")

	noClientCert := n2.ClientConfig("n1")
	noClientCert.Certificates = nil
	trustsBoth := foreign.ClientConfig("n1") // a foreign cert that would accept n1
	trustsBoth.RootCAs = n1.roots

	tests := []struct {
		name           string
		server         *tls.Config
		client         *tls.Config
		ok             bool
		serverSees     string // PeerNode on the server side
		clientSees     string // PeerNode on the client side
		clientErrorHas string
	}{
		{name: "by node name", server: n1.ServerConfig(), client: n2.ClientConfig("n1"), ok: true, serverSees: "n2", clientSees: "n1"},
		{name: "by IP", server: n1.ServerConfig(), client: n2.ClientConfig("192.0.2.11"), ok: true, serverSees: "n2", clientSees: "n1"},
		{name: "any node of the site", server: n1.ServerConfig(), client: n2.ClientConfig(""), ok: true, serverSees: "n2", clientSees: ""},
		{name: "wrong node name", server: n1.ServerConfig(), client: n2.ClientConfig("n7"), clientErrorHas: "certificate is valid for n1, not n7"},
		{name: "server of another CA", server: foreign.ServerConfig(), client: n2.ClientConfig("n3"), clientErrorHas: "unknown authority"},
		{name: "server of another CA, any node", server: foreign.ServerConfig(), client: n2.ClientConfig(""), clientErrorHas: "unknown authority"},
		{name: "client of another CA", server: n1.ServerConfig(), client: trustsBoth, clientErrorHas: "unknown certificate authority"},
		{name: "client without a certificate", server: n1.ServerConfig(), client: noClientCert, clientErrorHas: "certificate required"},
		{name: "TLS 1.2 client", server: n1.ServerConfig(), client: func() *tls.Config {
			c := n2.ClientConfig("n1")
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}(), clientErrorHas: "protocol version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, cs, serr, cerr := handshake(t, tt.server, tt.client)
			if !tt.ok {
				if serr == nil {
					t.Error("server accepted the connection")
				}
				if cerr == nil || !strings.Contains(cerr.Error(), tt.clientErrorHas) {
					t.Errorf("client error %v, want one containing %q", cerr, tt.clientErrorHas)
				}
				return
			}
			if serr != nil || cerr != nil {
				t.Fatalf("server: %v; client: %v", serr, cerr)
			}
			if cs.Version != tls.VersionTLS13 {
				t.Errorf("TLS version %x, want 1.3", cs.Version)
			}
			if got := PeerNode(ss); got != tt.serverSees {
				t.Errorf("server's PeerNode %q, want %q", got, tt.serverSees)
			}
			if got := PeerNode(cs); got != tt.clientSees {
				t.Errorf("client's PeerNode %q, want %q", got, tt.clientSees)
			}
		})
	}
	if got := PeerNode(tls.ConnectionState{}); got != "" {
		t.Errorf("PeerNode before a handshake: %q", got)
	}
}
