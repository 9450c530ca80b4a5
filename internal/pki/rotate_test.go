package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bundle writes the CA certificates of caDirs, one after the other, into
// one tls_ca file and returns its path.
func bundle(t *testing.T, caDirs ...string) string {
	t.Helper()
	var b []byte
	for _, d := range caDirs {
		pem, err := os.ReadFile(filepath.Join(d, CACertFile))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem...)
	}
	p := filepath.Join(t.TempDir(), "bundle.crt")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, caFile, certFile, keyFile string) *Credentials {
	t.Helper()
	c, err := Load(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRotation walks a site through a certificate renewal and a CA
// replacement with real handshakes: the CA bundle lets nodes of the old
// and the new CA talk while the node certificates are re-issued one by
// one, and dropping the old CA shuts its certificates out.
func TestRotation(t *testing.T) {
	oldCA, newCA := site(t, "mast-17"), site(t, "mast-17")
	_, n1Cert, n1Key := node(t, oldCA, "n1")
	_, n2Cert, n2Key := node(t, oldCA, "n2")
	onlyOld := filepath.Join(oldCA, CACertFile)
	onlyNew := filepath.Join(newCA, CACertFile)
	both := bundle(t, oldCA, newCA)

	n1 := mustLoad(t, onlyOld, n1Cert, n1Key)
	if got := len(n1.CAs()); got != 1 {
		t.Fatalf("CAs: %d, want 1", got)
	}
	// A renewed certificate: another serial, other credentials.
	_, n1Cert2, n1Key2 := node(t, oldCA, "n1")
	renewed := mustLoad(t, onlyOld, n1Cert2, n1Key2)
	if renewed.Serial() == n1.Serial() || renewed.Equal(n1) || !n1.Equal(mustLoad(t, onlyOld, n1Cert, n1Key)) {
		t.Errorf("serials %s %s; Equal does not tell renewed credentials from the same ones", n1.Serial(), renewed.Serial())
	}
	if n1.Equal(mustLoad(t, both, n1Cert, n1Key)) {
		t.Error("Equal ignores a change of the CA bundle")
	}

	n1b := mustLoad(t, both, n1Cert, n1Key)
	if got := len(n1b.CAs()); got != 2 {
		t.Fatalf("bundle: %d CAs, want 2", got)
	}
	_, n2NewCert, n2NewKey := node(t, newCA, "n2")
	tests := []struct {
		name           string
		server, client *Credentials
		clientErrorHas string // "" for a handshake that works
	}{
		{"renewed server certificate", renewed, mustLoad(t, onlyOld, n2Cert, n2Key), ""},
		{"both trust both CAs, old certificates", n1b, mustLoad(t, both, n2Cert, n2Key), ""},
		{"new certificate meets an old one", n1b, mustLoad(t, both, n2NewCert, n2NewKey), ""},
		{"old certificate meets a new one", mustLoad(t, both, n2NewCert, n2NewKey), n1b, ""},
		{"a node that trusts the old CA only", mustLoad(t, both, n2NewCert, n2NewKey), n1, "unknown authority"},
		{"old CA dropped: its certificate is refused", mustLoad(t, onlyNew, n2NewCert, n2NewKey), n1b, "unknown certificate authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverName := tt.server.Node()
			_, cs, serr, cerr := handshake(t, tt.server.ServerConfig(), tt.client.ClientConfig(serverName))
			if tt.clientErrorHas == "" {
				if serr != nil || cerr != nil {
					t.Fatalf("server: %v; client: %v", serr, cerr)
				}
				if got := cs.PeerCertificates[0].SerialNumber.Text(16); got != tt.server.Serial() {
					t.Errorf("server showed serial %s, want %s", got, tt.server.Serial())
				}
				return
			}
			if serr == nil {
				t.Error("server accepted the connection")
			}
			if cerr == nil || !strings.Contains(cerr.Error(), tt.clientErrorHas) {
				t.Errorf("client error %v, want one containing %q", cerr, tt.clientErrorHas)
			}
		})
	}

	// A certificate of the old CA with the new CA alone is refused at load,
	// naming both files: the reload that would cut the node off.
	if _, err := Load(onlyNew, n1Cert, n1Key); err == nil || !strings.Contains(err.Error(), "not signed by tls_ca "+onlyNew) ||
		!strings.Contains(err.Error(), n1Cert) {
		t.Errorf("old certificate with the new CA alone: %v", err)
	}
}
