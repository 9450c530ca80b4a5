package transport

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"edge/internal/pki"
)

// issue makes a certificate for name signed by the CA in caDir, and returns
// the certificate and key files.
func issue(t *testing.T, caDir, name string) (certFile, keyFile string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if _, err := pki.CreateNodeCert(caDir, out, name, loopback, 0); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, name+".crt"), filepath.Join(out, name+".key")
}

// caBundle writes the CA certificates of caDirs into one file.
func caBundle(t *testing.T, caDirs ...string) string {
	t.Helper()
	var b []byte
	for _, d := range caDirs {
		pem, err := os.ReadFile(filepath.Join(d, pki.CACertFile))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem...)
	}
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, caFile, certFile, keyFile string) *pki.Credentials {
	t.Helper()
	c, err := pki.Load(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialSerial dials server's raft side from client, lets the server accept
// it, and returns the serial of the certificate the server showed and the
// node the server saw; the connection is returned open.
func dialSerial(t *testing.T, client, server *Mux) (serial, seen string, conn, accepted net.Conn, err error) {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := server.Raft().Accept()
		if err != nil {
			got <- nil
			return
		}
		got <- c
	}()
	conn, err = client.Raft().Dial(raft.ServerAddress(server.Addr().String()), wait)
	if err != nil {
		// The Accept above ends when the Mux closes.
		return "", "", nil, nil, err
	}
	accepted = <-got
	if accepted == nil {
		t.Fatal("server: accept failed")
	}
	cs := conn.(*tls.Conn).ConnectionState()
	return cs.PeerCertificates[0].SerialNumber.Text(16), pki.PeerNode(accepted.(*tls.Conn).ConnectionState()), conn, accepted, nil
}

// TestSetCredentials renews a node's certificate and replaces the site CA
// on running Muxes over loopback: new handshakes use the new credentials,
// connections already set up keep working, and a certificate of a dropped
// CA is refused.
func TestSetCredentials(t *testing.T) {
	oldCA, newCA := newSite(t), newSite(t)
	onlyOld := filepath.Join(oldCA, pki.CACertFile)
	onlyNew := filepath.Join(newCA, pki.CACertFile)
	both := caBundle(t, oldCA, newCA)
	n1Cert, n1Key := issue(t, oldCA, "n1")
	n2Cert, n2Key := issue(t, oldCA, "n2")
	n1 := load(t, onlyOld, n1Cert, n1Key)
	server := listen(t, DefaultConfig(), n1)
	client := listen(t, DefaultConfig(), load(t, onlyOld, n2Cert, n2Key))

	serial, seen, conn, accepted, err := dialSerial(t, client, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer accepted.Close()
	if serial != n1.Serial() || seen != "n2" {
		t.Fatalf("server showed %s (want %s) and saw %q", serial, n1.Serial(), seen)
	}

	// Renewal: the next handshake shows the new certificate; the
	// connection set up before goes on.
	c1, k1 := issue(t, oldCA, "n1")
	renewed := load(t, onlyOld, c1, k1)
	if err := server.SetCredentials(renewed); err != nil {
		t.Fatal(err)
	}
	if server.Credentials() != renewed {
		t.Error("Credentials does not return the new ones")
	}
	serial, _, c2, a2, err := dialSerial(t, client, server)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	a2.Close()
	if serial != renewed.Serial() {
		t.Errorf("after the renewal the server showed %s, want %s", serial, renewed.Serial())
	}
	if _, err := conn.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(accepted, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("the connection made before the renewal: %q, %v", buf, err)
	}

	// Another node's certificate is refused: a Mux keeps its node name.
	if err := server.SetCredentials(load(t, onlyOld, n2Cert, n2Key)); err == nil || !strings.Contains(err.Error(), `issued for node "n2", this node is "n1"`) {
		t.Errorf("another node's certificate: %v", err)
	}
	if err := server.SetCredentials(nil); err == nil {
		t.Error("nil credentials taken")
	}

	// CA replacement, step by step.
	steps := []struct {
		name           string
		server, client *pki.Credentials
		want           string // "" when the handshake works, else the client's error
	}{
		{"1. both trust both CAs", load(t, both, c1, k1), load(t, both, n2Cert, n2Key), ""},
		{"2. n1 re-issued by the new CA", reissue(t, both, newCA, "n1"), load(t, both, n2Cert, n2Key), ""},
		{"3. n2 re-issued by the new CA", nil, reissue(t, both, newCA, "n2"), ""},
		{"4. old CA dropped", reissue(t, onlyNew, newCA, "n1"), reissue(t, onlyNew, newCA, "n2"), ""},
		{"a certificate of the dropped CA is refused", nil, load(t, both, n2Cert, n2Key), "the peer refused this node's certificate"},
	}
	for _, s := range steps {
		if s.server != nil {
			if err := server.SetCredentials(s.server); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if err := client.SetCredentials(s.client); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		serial, _, c, a, err := dialSerial(t, client, server)
		if s.want != "" {
			if err == nil || !strings.Contains(err.Error(), s.want) {
				t.Errorf("%s: dial: %v, want an error with %q", s.name, err, s.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		c.Close()
		a.Close()
		if serial != server.Credentials().Serial() {
			t.Errorf("%s: server showed %s, want %s", s.name, serial, server.Credentials().Serial())
		}
	}
}

// reissue makes a new certificate for name from the CA in caDir and loads
// it with the tls_ca file caFile.
func reissue(t *testing.T, caFile, caDir, name string) *pki.Credentials {
	t.Helper()
	cert, key := issue(t, caDir, name)
	return load(t, caFile, cert, key)
}

// TestRPCClientFor: a client for a named node checks that name whatever the
// address, with no NameOf.
func TestRPCClientFor(t *testing.T) {
	caDir := newSite(t)
	server := listen(t, DefaultConfig(), nodeCreds(t, caDir, "n1"))
	serveRPC(t, server, "n1")
	cfg := DefaultConfig()
	cfg.NameOf = func(string) (string, bool) { return "", false } // knows no one
	client := listen(t, cfg, nodeCreds(t, caDir, "n2"))
	url := "https://" + server.Addr().String() + "/whoami"
	for _, tt := range []struct{ node, want string }{
		{"n1", "n1 n2"},
		{"", "n1 n2"},
		{"n7", "certificate is valid for n1, not n7"},
	} {
		c := client.RPCClientFor(tt.node)
		got, err := get(c, url)
		c.Transport.(*http.Transport).CloseIdleConnections()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("RPCClientFor(%q): %q, want %q", tt.node, got, tt.want)
		}
	}
	if _, err := get(client.RPCClient(), url); err == nil || !strings.Contains(err.Error(), ErrUnknownPeer.Error()) {
		t.Errorf("RPCClient with a NameOf that knows no one: %v", err)
	}
}
