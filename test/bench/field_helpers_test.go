package bench

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFieldHelpers covers the parts of the traffic and start-to-ready
// figures that need no lab.
func TestFieldHelpers(t *testing.T) {
	t.Run("parseCounters", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"nftables": [{"metainfo": {"version": "1.0.6"}}`)
		for i, cl := range trafficClasses {
			for j, dir := range []string{"_tx", "_rx"} {
				b.WriteString(`, {"counter": {"family": "inet", "name": "` + cl + dir + `", "table": "edgebench", "packets": 1, "bytes": ` + string(rune('1'+i*2+j)) + `}}`)
			}
		}
		b.WriteString(`, {"counter": {"family": "inet", "name": "gossip_tx", "table": "other", "bytes": 99}}]}`)
		c, err := parseCounters([]byte(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if c["gossip_tx"] != 1 || c["raft_rx"] != 4 || c["other_rx"] != 8 {
			t.Errorf("counters = %v", c)
		}
		if _, err := parseCounters([]byte(`{"nftables": []}`)); err == nil || !strings.Contains(err.Error(), "no counter gossip_tx") {
			t.Errorf("empty table: err = %v", err)
		}
		if _, err := parseCounters([]byte(`not json`)); err == nil {
			t.Error("bad JSON: no error")
		}
		r := rates(counters{"a": 100, "b": 50}, counters{"a": 300, "b": 40}, 2)
		if r["a"] != 100 {
			t.Errorf("rate a = %v, want 100", r["a"])
		}
		if _, ok := r["b"]; ok {
			t.Errorf("a counter that went back (reset) gave a rate: %v", r["b"])
		}
	})

	t.Run("trafficTable loads", func(t *testing.T) {
		tbl := trafficTable(7946, 7947)
		for _, want := range []string{"th sport 7946", "tcp dport 7947", "udp dport 5353", `counter name "other_rx"`} {
			if !strings.Contains(tbl, want) {
				t.Errorf("table lacks %q:\n%s", want, tbl)
			}
		}
		nft, err := exec.LookPath("nft")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("nft not found: make deps installs nftables")
			}
			t.Skip("no nft (make deps installs it)")
		}
		// nft -c checks the table against the kernel without loading it.
		cmd := exec.Command(nft, "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(tbl)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("nft -c: %v: %s", err, out)
		}
	})

	t.Run("notify socket and readyFigure", func(t *testing.T) {
		log := newReadyLog()
		path := filepath.Join(t.TempDir(), "n.sock")
		got := make(chan time.Time, 4)
		ns, err := listenNotifySocket(path, func(at time.Time) { log.add("node1", at); got <- at })
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		start := time.Now()
		c, err := net.Dial("unixgram", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, msg := range []string{"STATUS=starting", "READY=1\nSTATUS=ready", "WATCHDOG=1"} {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("READY=1 not seen")
		}
		f, missing := readyFigure(map[string]time.Time{"node1": start, "node2": start}, log, time.Minute)
		if len(missing) != 1 || missing[0] != "node2" {
			t.Errorf("missing = %v, want [node2]", missing)
		}
		if f.Status != statusOK || f.Value < 0 || f.Value > 5 {
			t.Errorf("figure = %+v", f)
		}
		if _, ok := log.first("node1", time.Now().Add(time.Second)); ok {
			t.Error("a ready before t counted as after it")
		}
	})
}
