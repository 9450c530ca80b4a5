package coord

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogBridge(t *testing.T) {
	var out bytes.Buffer
	b := newLogBridge(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Unix(0, 0)
	b.now = func() time.Time { return now }
	var conflict string
	b.onConflict = func(other string) { conflict = other }
	l := b.logger()

	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=192.0.2.9:4242")
	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=192.0.2.9:4243")
	if n := strings.Count(out.String(), "gossip rejected"); n != 1 {
		t.Errorf("want one plain warning per peer per minute, got %d:\n%s", n, out.String())
	}
	now = now.Add(2 * time.Minute)
	l.Printf("[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=192.0.2.9:4243")
	if n := strings.Count(out.String(), "gossip rejected"); n != 2 {
		t.Errorf("want the warning again after a minute, got %d", n)
	}
	if !strings.Contains(out.String(), "peer=192.0.2.9") {
		t.Errorf("warning does not name the peer:\n%s", out.String())
	}

	out.Reset()
	l.Printf("[INFO] serf: EventMemberJoin: n1 192.0.2.11")
	l.Printf("[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed")
	got := out.String()
	if !strings.Contains(got, "level=DEBUG msg=\"EventMemberJoin") || !strings.Contains(got, "component=serf") {
		t.Errorf("INFO line not mapped to DEBUG with component:\n%s", got)
	}
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "component=memberlist") {
		t.Errorf("WARN line not mapped:\n%s", got)
	}

	l.Printf("[ERR] serf: Node name conflicts with another node at 192.0.2.12:7946. Names must be unique! (Resolution enabled: true)")
	l.Printf("[WARN] serf: minority in name conflict resolution, quiting [0 / 2]")
	if conflict != "192.0.2.12:7946" {
		t.Errorf("conflict with %q, want 192.0.2.12:7946", conflict)
	}
}

func TestKeyID(t *testing.T) {
	a, b := KeyID(make([]byte, 32)), KeyID(append(make([]byte, 31), 1))
	if len(a) != 8 || a == b {
		t.Errorf("key ids %q %q", a, b)
	}
}
