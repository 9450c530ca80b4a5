package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// keyringOnDisk is a node's data_dir/gossip.keyring.
type keyringOnDisk struct {
	Keys    []string `json:"keys"`
	Retired []string `json:"retired"`
}

func keyringFile(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	return filepath.Join(mustNode(t, l, node).Dir, "data", "gossip.keyring")
}

// savedKeyring reads a node's keyring file and returns its keys (base64)
// and their ids, primary first.
func savedKeyring(t *testing.T, l *lab.Lab, node string) (keys, ids []string) {
	t.Helper()
	p := keyringFile(t, l, node)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", node, err)
	}
	var kf keyringOnDisk
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
	}
	for _, k := range kf.Keys {
		ids = append(ids, keyID(t, k))
	}
	return kf.Keys, ids
}

// keyID is the id edged shows for a base64 key: the first 4 bytes of its
// SHA-256, in hex.
func keyID(t *testing.T, b64 string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// keysOn is `edgectl keys list --json` on a node.
func keysOn(t *testing.T, l *lab.Lab, node string) api.Keyring {
	t.Helper()
	out, stderr, code := edgectlOn(t, l, node, "keys", "list", "--json")
	if code != 0 {
		t.Fatalf("%s: keys list: exit %d: %s", node, code, stderr)
	}
	return decode[api.Keyring](t, "keys list --json", out)
}

// onlyKey checks that kr lists exactly one key, id, installed and primary
// on exactly nodes.
func onlyKey(t *testing.T, who string, kr api.Keyring, id string, nodes []string) {
	t.Helper()
	if len(kr.Keys) != 1 || kr.Keys[0].ID != id || !slices.Equal(kr.Keys[0].Nodes, nodes) ||
		!slices.Equal(kr.Keys[0].Primary, nodes) || !slices.Equal(kr.Nodes, nodes) || len(kr.Failed) > 0 {
		t.Errorf("%s: keys %+v (nodes %v, failed %v), want only %s on and primary on %v", who, kr.Keys, kr.Nodes, kr.Failed, id, nodes)
	}
}

// logSize is the length of a node's log now, to look only at what follows.
func logSize(t *testing.T, l *lab.Lab, node string) int64 {
	t.Helper()
	fi, err := os.Stat(mustNode(t, l, node).Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitLogFrom waits for a line holding every one of parts in a node's log
// after offset, and returns it.
func waitLogFrom(t *testing.T, l *lab.Lab, node string, offset int64, timeout time.Duration, parts ...string) string {
	t.Helper()
	path := mustNode(t, l, node).Log
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if int64(len(b)) > offset {
			b = b[offset:]
		} else {
			b = nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no line with %q in its log within %s; log:\n%s", node, parts, timeout, tail(string(b), 30))
		}
		time.Sleep(50 * time.Millisecond) // a log file has no change event to wait on
	}
}

// TestGossipKeyRotation: `edgectl keys` lists and rotates the site's gossip
// key on every node; a node that was down during a rotation, with site TLS
// credentials, takes the new keyring from a peer over mutual TLS and is back
// within a bounded time; a node without credentials stays out and says why,
// until the key is installed on it by hand; a restarted node keeps the
// rotated keyring; a stock serf agent with the old key is refused.
func TestGossipKeyRotation(t *testing.T) {
	l := newLab(t, 4, nil)
	keepLogs(t, l)
	tlsNodes := names(l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := l.AddNode(ctx, lab.NodeSpec{Name: "notls", NoTLS: true}); err != nil {
		t.Fatal(err)
	}
	everyone := append(slices.Clone(tlsNodes), "notls")
	waitAll(t, l, everyone, 20*time.Second, "all 5 alive", exactly(everyone...))
	waitLog(t, mustNode(t, l, "notls").Log, 5*time.Second, "gossip keyring recovery is off: no TLS credentials")
	k0 := keyID(t, l.Key())
	if st := waitStatus(t, l, "node3"); st.Node.KeyID != k0 {
		t.Fatalf("node3's key id %s, want %s", st.Node.KeyID, k0)
	}
	onlyKey(t, "before any rotation", keysOn(t, l, "node1"), k0, everyone)
	table, _, code := edgectlOn(t, l, "notls", "keys", "list")
	if code != 0 || !strings.Contains(table, "KEY ID") || !strings.Contains(table, k0+"  *") {
		t.Errorf("keys list (exit %d) does not show %s as the primary key:\n%s", code, k0, table)
	}

	// A first rotation, everyone up: the new key is primary everywhere, the
	// old one stays installed and is saved in every data_dir.
	out, stderr, code := edgectlOn(t, l, "node2", "keys", "rotate")
	if code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, stderr)
	}
	var k1 string
	if _, err := fmt.Sscanf(out, "new key %s installed on 5 nodes and primary on all of them", &k1); err != nil {
		t.Fatalf("keys rotate printed:\n%s", out)
	}
	if !strings.Contains(out, "edgectl keys remove "+k0) {
		t.Errorf("keys rotate does not say how to remove the old key:\n%s", out)
	}
	kr := keysOn(t, l, "node4")
	if len(kr.Keys) != 2 || kr.Keys[0].ID != k1 || len(kr.Keys[0].Primary) != 5 || kr.Keys[1].ID != k0 || len(kr.Keys[1].Nodes) != 5 || len(kr.Keys[1].Primary) != 0 {
		t.Fatalf("after a rotation: %+v", kr.Keys)
	}
	for _, n := range everyone {
		statusUntil(t, l, n, 10*time.Second, "primary key "+k1, func(s api.Status) bool { return s.Node.KeyID == k1 })
		waitSavedIDs(t, l, n, []string{k1, k0})
	}

	// node4 and notls go down; the site rotates again and drops the old keys.
	for _, n := range []string{"node4", "notls"} {
		if err := l.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	up := []string{"node1", "node2", "node3"}
	waitAll(t, l, up, 15*time.Second, "node4 and notls left", func(v view) bool {
		return allAlive(up...)(v) && v["node4"].Status == api.StatusLeft && v["notls"].Status == api.StatusLeft
	})
	out, stderr, code = edgectlOn(t, l, "node1", "keys", "rotate", "--remove-old", "--json")
	if code != 0 {
		t.Fatalf("keys rotate --remove-old: exit %d: %s", code, stderr)
	}
	res := decode[api.KeyResult](t, "keys rotate --json", out)
	k2 := res.ID
	if slices.Sort(res.Removed); !slices.Equal(res.Removed, sorted(k0, k1)) {
		t.Errorf("removed %v, want %s and %s", res.Removed, k0, k1)
	}
	for _, n := range up {
		onlyKey(t, n+" after rotate --remove-old", keysOn(t, l, n), k2, up)
		waitSavedIDs(t, l, n, []string{k2})
	}
	siteKeys, _ := savedKeyring(t, l, "node3")
	oldKeys, oldIDs := savedKeyring(t, l, "node4")
	if !slices.Equal(oldIDs, []string{k1, k0}) {
		t.Fatalf("node4's saved keyring: %v, want [%s %s]", oldIDs, k1, k0)
	}

	// The primary key cannot be removed.
	_, stderr, code = edgectlOn(t, l, "node3", "keys", "remove", k2)
	if code != 1 {
		t.Errorf("keys remove of the primary key: exit %d, want 1", code)
	}
	oneLine(t, "keys remove "+k2, stderr, "primary key", "edgectl keys use")

	// node4 comes back with only the old keys: it cannot read the site's
	// gossip, takes the keyring from a peer over TLS, and is alive for
	// everyone soon after.
	off := logSize(t, l, "node4")
	start := time.Now()
	if err := l.Start(ctx, "node4"); err != nil {
		t.Fatal(err)
	}
	withNode4 := []string{"node1", "node2", "node3", "node4"}
	waitAll(t, l, withNode4, 30*time.Second, "node4 back", allAlive(withNode4...))
	t.Logf("node4 alive for everyone %s after its start", time.Since(start).Round(time.Millisecond))
	line := waitLogFrom(t, l, "node4", off, 5*time.Second, "this node missed a gossip key rotation")
	if !strings.Contains(line, "primary_key_id="+k2) || !strings.Contains(line, "our_key_id="+k1) {
		t.Errorf("node4's log does not say which keys: %s", line)
	}
	waitAnyLog(t, l, up, 5*time.Second, "gossip keyring sent to a node of the site")
	if st := waitStatus(t, l, "node4"); st.Node.KeyID != k2 {
		t.Errorf("node4's primary key %s, want %s", st.Node.KeyID, k2)
	}
	waitSavedIDs(t, l, "node4", []string{k2})
	onlyKey(t, "with node4 back", keysOn(t, l, "node4"), k2, withNode4)

	// notls comes back with the old keys too, and no credentials: it stays
	// out, and its log says why.
	off = logSize(t, l, "notls")
	if err := l.Start(ctx, "notls"); err != nil {
		t.Fatal(err)
	}
	waitLogFrom(t, l, "notls", off, 10*time.Second, "gossip keyring recovery is off: no TLS credentials")
	line = waitLogFrom(t, l, "notls", off, 20*time.Second, "join failed: the peer advertises a different gossip key")
	if !strings.Contains(line, "our_key_id="+k1) || !strings.Contains(line, "peer_key_id="+k2) {
		t.Errorf("notls's log does not name both keys: %s", line)
	}
	// Its failed join is over: the site would have seen it by now.
	for _, n := range withNode4 {
		if s := waitStatus(t, l, n); memberStatus(s, "notls") == api.StatusAlive {
			t.Errorf("%s sees notls alive with the old key", n)
		}
	}
	// The documented remedy: install the site's key on it by hand.
	if _, stderr, code := edgectlOn(t, l, "notls", "keys", "install", siteKeys[0]); code != 0 {
		t.Fatalf("notls: keys install: exit %d: %s", code, stderr)
	}
	if _, stderr, code := edgectlOn(t, l, "notls", "keys", "use", k2); code != 0 {
		t.Fatalf("notls: keys use: exit %d: %s", code, stderr)
	}
	waitAll(t, l, everyone, 30*time.Second, "notls back with the key installed by hand", allAlive(everyone...))

	// A restarted node keeps the rotated keyring: data_dir wins over
	// key_file, which still holds the first key.
	if err := l.Stop(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	off = logSize(t, l, "node2")
	if err := l.Start(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	line = waitLogFrom(t, l, "node2", off, 5*time.Second, "gossip keyring from data_dir")
	if !strings.Contains(line, "primary_key_id="+k2) {
		t.Errorf("node2's start: %s", line)
	}
	waitLogFrom(t, l, "node2", off, 5*time.Second, "key_file holds a key the site no longer uses")
	waitAll(t, l, everyone, 20*time.Second, "node2 back", allAlive(everyone...))

	// Keys never reach a log.
	for _, n := range everyone {
		b, _ := os.ReadFile(mustNode(t, l, n).Log)
		for _, k := range append(append(slices.Clone(siteKeys), oldKeys...), l.Key()) {
			if strings.Contains(string(b), strings.TrimSpace(k)) {
				t.Errorf("%s's log shows a gossip key", n)
			}
		}
	}

	// A stock serf agent with the first key is refused.
	serf := tool(t, "serf")
	off1 := logSize(t, l, "node1")
	op, err := l.AddNode(ctx, lab.NodeSpec{
		Name: "operator",
		Argv: []string{serf, "agent", "-node", "operator", "-bind", "{addr}:7946",
			"-rpc-addr", "127.0.0.1:7373", "-encrypt", "{key}", "-join", mustNode(t, l, "node1").Gossip.String()},
		NoWait: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	line = waitLogFrom(t, l, "node1", off1, 20*time.Second, "gossip rejected: the peer does not use this site's gossip key", "peer="+op.Addr.String()+":")
	t.Log(line)
	b, _ := os.ReadFile(op.Log)
	if !strings.Contains(string(b), "decrypt") && !strings.Contains(string(b), "Failed to join") {
		t.Errorf("the stock agent's log does not show a refused join:\n%s", tail(string(b), 20))
	}
	for _, n := range everyone {
		if memberStatus(waitStatus(t, l, n), "operator") == api.StatusAlive {
			t.Errorf("%s lists the stock agent with the old key as alive", n)
		}
	}
}

func pemBlock(t *testing.T, b []byte) []byte {
	t.Helper()
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatal("no PEM block")
	}
	return p.Bytes
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func memberStatus(st api.Status, name string) string {
	for _, m := range st.Members {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

// waitSavedIDs waits until a node's keyring file holds exactly ids (edged
// saves a change a peer made within its check period, 500 ms).
func waitSavedIDs(t *testing.T, l *lab.Lab, node string, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(keyringFile(t, l, node)); err == nil {
			if _, ids := savedKeyring(t, l, node); slices.Equal(ids, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: keyring file does not hold %v", node, want)
		}
		time.Sleep(50 * time.Millisecond) // a file has no change event to wait on
	}
}

// TestCertificateRotationByReload: a node's certificate is renewed and the
// site CA replaced with `systemctl reload` (SIGHUP) only: the nodes stay in
// the raft group, show the new certificates to new connections, and a
// change still applies; a bad file on reload is refused and changes nothing.
func TestCertificateRotationByReload(t *testing.T) {
	l := newLab(t, 3, func(c *lab.Config) { c.Extra = lab.SimDevices })
	keepLogs(t, l)
	all := names(l)
	waitAll(t, l, all, 20*time.Second, "3 alive", exactly(all...))
	for _, n := range all {
		leaderOf(t, l, n)
	}
	labCA := filepath.Join(l.Dir(), "tls")
	work := t.TempDir()

	// hup re-reads a node's config and waits for the log line that follows.
	hup := func(node, want string) string {
		t.Helper()
		off := logSize(t, l, node)
		if err := syscall.Kill(mustNode(t, l, node).Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		return waitLogFrom(t, l, node, off, 10*time.Second, want)
	}
	// setConfig replaces a node config line that starts with key.
	setConfig := func(node, key, value string) {
		t.Helper()
		n := mustNode(t, l, node)
		b, err := os.ReadFile(n.Config)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		found := false
		for i, line := range lines {
			if strings.HasPrefix(line, key+":") {
				lines[i], found = key+": "+value, true
			}
		}
		if !found {
			t.Fatalf("%s: no %s in its config", node, key)
		}
		if err := os.WriteFile(n.Config, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// issue makes a node certificate with edgectl tls cert into a fresh
	// folder and returns the certificate and key paths.
	issue := func(caDir, node string) (string, string) {
		t.Helper()
		out := filepath.Join(work, fmt.Sprintf("%s-%d", node, time.Now().UnixNano()))
		n := mustNode(t, l, node)
		if _, stderr, code := edgectl(t, "tls", "cert", "--ca", caDir, "--node", node, "--ip", n.Addr.String(), "--out", out); code != 0 {
			t.Fatalf("tls cert %s: %s", node, stderr)
		}
		return filepath.Join(out, node+".crt"), filepath.Join(out, node+".key")
	}
	tlsFile := func(node, name string) string { return filepath.Join(mustNode(t, l, node).Dir, "tls", name) }
	// served returns the serial of the certificate a node shows on its raft
	// port to a client with creds (cert, key), or the error.
	served := func(node, from, certFile, keyFile string) (string, error) {
		t.Helper()
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		port := ""
		for _, m := range waitStatus(t, l, node).Members {
			if m.Name == node {
				port = m.Tags["raft_port"]
			}
		}
		var serial string
		var dialErr error
		err = l.Do(from, func() error {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
				MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
				InsecureSkipVerify: true, // the certificate shown is what is under test
			}}
			c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort(mustNode(t, l, node).Addr.String(), port))
			if err != nil {
				dialErr = err
				return nil
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			// The server checks the client certificate after its own
			// handshake half: the protocol byte's echo says it accepted.
			var b [1]byte
			if _, err = c.Write([]byte{'H'}); err == nil {
				_, err = c.Read(b[:])
			}
			if err != nil {
				dialErr = err
				return nil
			}
			serial = c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return serial, dialErr
	}
	serialOf := func(certFile string) string {
		t.Helper()
		b, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(pemBlock(t, b))
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber.Text(16)
	}
	apply := func(node string, power int) {
		t.Helper()
		doc := writeDoc(t, "site.yaml", siteDoc("confirm_timeout: 30s", fmt.Sprintf(`"*": {radio0: {power_dbm: %d}}`, power)))
		out, stderr, code := edgectlRetry(t, l, node, "apply", "-f", doc, "--auto-confirm", "--json")
		if code != 0 {
			t.Fatalf("apply on %s: exit %d: %s", node, code, stderr)
		}
		if ch := decode[api.Change](t, "apply --json", out); ch.State != "confirmed" || len(ch.Nodes) != 3 {
			t.Fatalf("apply on %s: %s", node, describeChange(ch))
		}
		for _, n := range all {
			waitRadio(t, l, n, 10*time.Second, radio{"power_dbm": float64(power)})
		}
	}
	inRaft := func(what string) {
		t.Helper()
		for _, n := range all {
			statusUntil(t, l, n, 20*time.Second, what+": a leader and 3 servers", func(s api.Status) bool {
				return hasQuorum(s) && len(s.Raft.Voters) == 3
			})
		}
	}
	n1Cert, n1Key := tlsFile("node1", "node1.crt"), tlsFile("node1", "node1.key")

	// node2: renewed at new paths.
	c2, k2 := issue(labCA, "node2")
	setConfig("node2", "tls_cert", c2)
	setConfig("node2", "tls_key", k2)
	line := hup("node2", "TLS credentials reloaded")
	if !strings.Contains(line, "serial="+serialOf(c2)) {
		t.Errorf("reload log: %s", line)
	}
	if got, err := served("node2", "node1", n1Cert, n1Key); err != nil || got != serialOf(c2) {
		t.Errorf("node2 shows serial %s (%v), want the renewed %s", got, err, serialOf(c2))
	}
	// node3: renewed in place, at the same paths.
	c3, k3 := issue(labCA, "node3")
	for _, f := range [][2]string{{c3, tlsFile("node3", "node3.crt")}, {k3, tlsFile("node3", "node3.key")}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hup("node3", "TLS credentials reloaded")
	if got, err := served("node3", "node1", n1Cert, n1Key); err != nil || got != serialOf(c3) {
		t.Errorf("node3 shows serial %s (%v), want the renewed %s", got, err, serialOf(c3))
	}
	inRaft("after the renewals")
	apply("node2", 21)

	// A bad file is refused with the key and file named; nothing changes.
	setConfig("node2", "tls_cert", c3)
	line = hup("node2", "reload refused; running config kept")
	if !strings.Contains(line, "tls_key") || !strings.Contains(line, c3) {
		t.Errorf("refusal does not name the key and the file: %s", line)
	}
	if got, err := served("node2", "node1", n1Cert, n1Key); err != nil || got != serialOf(c2) {
		t.Errorf("after a refused reload node2 shows %s (%v), want %s", got, err, serialOf(c2))
	}
	setConfig("node2", "tls_cert", c2)
	hup("node2", "reloaded")

	// The site CA replaced, node by node, reloads only.
	newCA := filepath.Join(work, "ca-2")
	if _, stderr, code := edgectl(t, "tls", "ca", "--dir", newCA, "--site", "lab"); code != 0 {
		t.Fatalf("tls ca: %s", stderr)
	}
	newPEM, err := os.ReadFile(filepath.Join(newCA, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// 1. Every node trusts both CAs.
	for _, n := range all {
		caFile := tlsFile(n, "ca.crt")
		old, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(caFile, append(old, newPEM...), 0o644); err != nil {
			t.Fatal(err)
		}
		if line := hup(n, "TLS credentials reloaded"); !strings.Contains(line, "cas=2") {
			t.Errorf("%s: %s", n, line)
		}
	}
	// 2. Every node gets a certificate of the new CA, one at a time.
	newCreds := map[string][2]string{}
	for _, n := range all {
		c, k := issue(newCA, n)
		newCreds[n] = [2]string{c, k}
		setConfig(n, "tls_cert", c)
		setConfig(n, "tls_key", k)
		hup(n, "TLS credentials reloaded")
		inRaft(n + " on the new CA")
	}
	// 3. The old CA goes.
	for _, n := range all {
		setConfig(n, "tls_ca", filepath.Join(newCA, "ca.crt"))
		if line := hup(n, "TLS credentials reloaded"); !strings.Contains(line, "cas=1") {
			t.Errorf("%s: %s", n, line)
		}
	}
	inRaft("on the new CA alone")
	apply("node3", 23)
	// New connections: a certificate of the new CA is served and accepted,
	// one of the old CA is refused.
	for _, n := range []string{"node2", "node3"} {
		if got, err := served(n, "node1", newCreds["node1"][0], newCreds["node1"][1]); err != nil || got != serialOf(newCreds[n][0]) {
			t.Errorf("%s shows %s (%v), want %s", n, got, err, serialOf(newCreds[n][0]))
		}
		if _, err := served(n, "node1", n1Cert, n1Key); err == nil {
			t.Errorf("%s accepted a certificate of the dropped CA", n)
		}
	}
}
