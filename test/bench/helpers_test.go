package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edge/daemon/api"
)

// TestHelpers covers the pure parts of the benchmarks; it needs no root, so
// make test runs it.
func TestHelpers(t *testing.T) {
	t.Run("parseVmRSS", func(t *testing.T) {
		tests := []struct {
			name, in string
			want     int64
			wantErr  bool
		}{
			{"ok", "Name:\tedged\nVmPeak:\t  1 kB\nVmRSS:\t   17612 kB\nRssAnon:\t 1 kB\n", 17612, false},
			{"missing", "Name:\tkworker\nState:\tI (idle)\n", 0, true},
			{"bad unit", "VmRSS:\t 12 MB\n", 0, true},
			{"bad number", "VmRSS:\t x kB\n", 0, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := parseVmRSS([]byte(tt.in))
				if (err != nil) != tt.wantErr || got != tt.want {
					t.Errorf("parseVmRSS = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
				}
			})
		}
	})

	t.Run("parseCPUTicks", func(t *testing.T) {
		tests := []struct {
			name, in string
			want     uint64
			wantErr  bool
		}{
			{"plain", "4242 (serf) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 12 0 99 0 0", 42, false},
			{"name with spaces and parens", "7 (ed ged) (x)) R 1 7 7 0 -1 0 0 0 0 0 1000 234 0 0 20 0 1 0 5", 1234, false},
			{"short", "7 (edged) R 1 7", 0, true},
			{"no name", "7 edged R", 0, true},
			{"bad number", "7 (e) R 1 7 7 0 -1 0 0 0 0 0 x 1 0", 0, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := parseCPUTicks([]byte(tt.in))
				if (err != nil) != tt.wantErr || got != tt.want {
					t.Errorf("parseCPUTicks = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
				}
			})
		}
	})

	t.Run("cpuPercent", func(t *testing.T) {
		t0 := time.Unix(1000, 0)
		a := procSample{Ticks: 100, At: t0}
		if got := cpuPercent(a, procSample{Ticks: 110, At: t0.Add(20 * time.Second)}); got != 0.5 {
			t.Errorf("10 ticks in 20 s = %v %%, want 0.5", got)
		}
		if got := cpuPercent(a, procSample{Ticks: 90, At: t0.Add(time.Second)}); got != 0 {
			t.Errorf("ticks going back = %v, want 0", got)
		}
	})

	t.Run("readProc and findProc on this process", func(t *testing.T) {
		s, err := readProc(os.Getpid())
		if err != nil || s.RSSKiB <= 0 {
			t.Fatalf("readProc(self) = %+v, %v", s, err)
		}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		exe, _ = filepath.EvalSymlinks(exe)
		if pid, err := findProc(os.Getpid(), filepath.Base(exe)); err != nil || pid != os.Getpid() {
			t.Errorf("findProc(self) = %d, %v", pid, err)
		}
		if _, err := findProc(os.Getpid(), "no-such-program"); err == nil {
			t.Error("findProc found a program that does not run")
		}
	})

	t.Run("parseUnixTime", func(t *testing.T) {
		tests := []struct {
			in   string
			want time.Time
			ok   bool
		}{
			{"1700000000.123456789", time.Unix(1700000000, 123456789), true},
			{"1700000000.5", time.Unix(1700000000, 500000000), true},
			{"1700000000", time.Unix(1700000000, 0), true},
			{"1700000000.1234567891", time.Unix(1700000000, 123456789), true},
			{"17x", time.Time{}, false},
			{"-5.1", time.Time{}, false},
			{"", time.Time{}, false},
		}
		for _, tt := range tests {
			got, ok := parseUnixTime(tt.in)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("parseUnixTime(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		}
	})

	t.Run("parseHandlerLine", func(t *testing.T) {
		at := time.Unix(1700000000, 250000000)
		tests := []struct {
			in   string
			want event
			ok   bool
		}{
			{"1700000000.25 member-join node2\t192.0.2.12\t\t", event{at, api.StatusAlive, "node2"}, true},
			{"1700000000.25 member-failed node3\t192.0.2.13\trole\ta=b", event{at, api.StatusFailed, "node3"}, true},
			{"1700000000.25 member-leave node3\t192.0.2.13", event{at, api.StatusLeft, "node3"}, true},
			{"1700000000.25 member-reap node3\t192.0.2.13", event{at, kindReap, "node3"}, true},
			{"1700000000.25 start", event{At: at, Kind: kindStart}, true},
			{"1700000000.25 user deploy", event{}, false},
			{"1700000000.25 member-join", event{}, false},
			{"garbage", event{}, false},
			{"", event{}, false},
		}
		for _, tt := range tests {
			got, ok := parseHandlerLine(tt.in)
			if ok != tt.ok || !got.At.Equal(tt.want.At) || got.Kind != tt.want.Kind || got.Member != tt.want.Member {
				t.Errorf("parseHandlerLine(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		}
	})

	t.Run("parseSerfLogLine", func(t *testing.T) {
		at := time.Unix(1800000000, 0)
		tests := []struct {
			in   string
			want event
			ok   bool
		}{
			{"    2026/11/21 14:14:29 [INFO] serf: EventMemberJoin: node2 192.0.2.12", event{at, api.StatusAlive, "node2"}, true},
			{"    2026/11/21 14:14:44 [INFO] serf: EventMemberFailed: node3 192.0.2.13", event{at, api.StatusFailed, "node3"}, true},
			{"    2026/11/21 14:14:59 [INFO] serf: EventMemberLeave: node2 192.0.2.12", event{at, api.StatusLeft, "node2"}, true},
			{"    2026/11/21 14:14:59 [INFO] serf: EventMemberLeave (forced): node2 192.0.2.12", event{at, api.StatusLeft, "node2"}, true},
			{"    2026/11/21 14:14:59 [INFO] serf: EventMemberReap: node2", event{at, kindReap, "node2"}, true},
			{"bench: start 1700000000.5", event{time.Unix(1700000000, 500000000), kindStart, ""}, true},
			{"    2026/11/21 14:14:59 [INFO] serf: EventMemberUpdate: node2", event{}, false},
			{"    2026/11/21 14:14:59 [INFO] agent: Received event: member-join", event{}, false},
		}
		for _, tt := range tests {
			got, ok := parseSerfLogLine(tt.in, at)
			if ok != tt.ok || !got.At.Equal(tt.want.At) || got.Kind != tt.want.Kind || got.Member != tt.want.Member {
				t.Errorf("parseSerfLogLine(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		}
	})

	t.Run("replay and conditions", func(t *testing.T) {
		t0 := time.Unix(1000, 0)
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		names := []string{"node1", "node2", "node3"}
		evs := []event{
			{at(0), kindStart, ""},
			{at(1), api.StatusAlive, "node2"},
			{at(2), api.StatusAlive, "node3"}, // all alive at 2 (first incarnation)
			{at(10), kindStart, ""},           // restarted: forgets everything
			{at(11), api.StatusAlive, "node3"},
			{at(12), api.StatusAlive, "node2"},
			{at(20), api.StatusFailed, "node3"},
			{at(21), kindReap, "node2"},
		}
		v, ok := replay("node1", evs, allAlive(names))
		if !ok || !latest(map[string]view{"node1": v}, names).Equal(at(12)) {
			t.Errorf("all alive: %v %v, latest %v; want at %v", v, ok, latest(map[string]view{"node1": v}, names), at(12))
		}
		v, ok = replay("node1", evs, changedTo(api.StatusFailed, at(15), "node3"))
		if !ok || !v["node3"].Since.Equal(at(20)) || v["node2"].Status != api.StatusAlive {
			t.Errorf("node3 failed: %v %v", v, ok)
		}
		if _, ok := replay("node1", evs, changedTo(api.StatusFailed, at(25), "node3")); ok {
			t.Error("a change before the start of the window counted")
		}
		v, ok = replay("node1", evs, func(v view) bool { _, has := v["node2"]; return !has && v["node3"].Status == api.StatusFailed })
		if !ok || v.String() != "node1=alive node3=failed" {
			t.Errorf("after reap: %q %v", v, ok)
		}
		if _, ok := replay("node1", nil, allAlive([]string{"node1"})); ok {
			t.Error("an empty timeline satisfied a condition")
		}
		both := and(allAlive([]string{"node1"}), changedTo(api.StatusAlive, at(11), "node2"))
		if v, ok := replay("node1", evs, both); !ok || !v["node2"].Since.Equal(at(12)) {
			t.Errorf("and: %v %v", v, ok)
		}
	})

	t.Run("timelines.wait", func(t *testing.T) {
		tl := newTimelines()
		t0 := time.Unix(1000, 0)
		tl.add("node1", event{t0, kindStart, ""})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var got view
		var err error
		wg.Go(func() { got, err = tl.wait(ctx, "node1", allAlive([]string{"node1", "node2"})) })
		tl.add("node2", event{t0, api.StatusAlive, "node1"}) // another node's timeline
		tl.add("node1", event{t0.Add(time.Second), api.StatusAlive, "node2"})
		wg.Wait()
		if err != nil || !got["node2"].Since.Equal(t0.Add(time.Second)) {
			t.Fatalf("wait = %v, %v", got, err)
		}
		short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel2()
		if _, err := tl.wait(short, "node1", allAlive([]string{"node9"})); err == nil {
			t.Error("wait for what never happens returned no error")
		}
	})

	t.Run("tailer", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(path, []byte("one\ntw"), 0o644); err != nil {
			t.Fatal(err)
		}
		tl, err := newTailer()
		if err != nil {
			t.Fatal(err)
		}
		defer tl.close()
		lines := make(chan string, 10)
		if err := tl.follow(path, func(_ time.Time, l string) { lines <- l }); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("o\nthree\n"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"one", "two", "three"} {
			select {
			case got := <-lines:
				if got != want {
					t.Errorf("line %q, want %q", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no line %q within 5s", want)
			}
		}
	})

	t.Run("parseEdgedFailed", func(t *testing.T) {
		tests := []struct {
			in     string
			at     string
			member string
			ok     bool
		}{
			{`time=2026-11-21T14:00:00.123Z level=WARN msg="member failed" part=membership member=node3 addr=192.0.2.13:7946`, "2026-11-21T14:00:00.123Z", "node3", true},
			{`time=2026-11-21T14:00:03Z level=WARN msg="member failed" part=membership member="node 4" addr=192.0.2.14:7946`, "2026-11-21T14:00:03Z", "node 4", true},
			{`time=2026-11-21T14:00:01Z level=INFO msg=member-join part=membership member=node3 addr=192.0.2.13:7946`, "", "", false},
			{`time=yesterday level=WARN msg="member failed" member=node3`, "", "", false},
			{`bench: start 1700000000.1`, "", "", false},
		}
		for _, tt := range tests {
			at, member, ok := parseEdgedFailed(tt.in)
			if ok != tt.ok || member != tt.member || (ok && at.Format(time.RFC3339Nano) != tt.at) {
				t.Errorf("parseEdgedFailed(%q) = %v, %q, %v", tt.in, at, member, ok)
			}
		}
	})

	t.Run("incidents", func(t *testing.T) {
		t0 := time.Unix(1000, 0)
		at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
		fs := []failure{
			{at(0), "node1", "node5"}, {at(300), "node2", "node5"}, {at(900), "node3", "node5"}, // one, wide (3 of 4)
			{at(20000), "node1", "node5"}, // the same member again, later: another
			{at(100), "node2", "node7"},   // another member
		}
		if n, wide := incidents(fs, 5*time.Second, 4); n != 3 || wide != 1 {
			t.Errorf("incidents = %d, %d wide; want 3, 1", n, wide)
		}
		if n, wide := incidents(nil, time.Second, 4); n != 0 || wide != 0 {
			t.Errorf("incidents of nothing = %d, %d", n, wide)
		}
		tl := newTimelines()
		tl.add("node1", event{at(0), api.StatusFailed, "node2"})
		tl.add("node1", event{at(10), api.StatusAlive, "node2"})
		tl.add("node3", event{at(5000), api.StatusFailed, "node2"})
		if got := tl.failuresBetween(at(0), at(5000)); len(got) != 1 || got[0].Observer != "node1" {
			t.Errorf("failuresBetween = %+v", got)
		}
	})

	t.Run("lastLine", func(t *testing.T) {
		log := "==> Starting Serf agent...\n==> Joining cluster...(replay: false)\n==> 1 error occurred:\n\t* Failed to join 192.0.2.11:7946: connection refused\n\n"
		if got := lastLine(log, "==> "); got != "==> 1 error occurred: * Failed to join 192.0.2.11:7946: connection refused" {
			t.Errorf("lastLine = %q", got)
		}
		if got := lastLine("", "==> "); got != "no message" {
			t.Errorf("lastLine of nothing = %q", got)
		}
	})

	t.Run("table", func(t *testing.T) {
		runs := []run{
			{System: sysEdged, N: 3, Metrics: map[string]figure{
				mFull: ok(0.5),
				mFail: ok(4),
				mRSS:  {Value: 17, Max: ptr(21), Status: statusOK},
			}},
			{System: sysDiscover, N: 3, Metrics: map[string]figure{
				mFull: {Status: statusCap, Cap: 150},
				mFail: {Value: 8, Handler: ptr(9), Status: statusOK},
				mRSS:  {Value: 14, Max: ptr(15), Status: statusOK},
			}},
			{System: sysJoin, N: 3, Metrics: map[string]figure{
				mFull: ok(0.25),
			}},
		}
		got := table(runs)
		for _, want := range []string{
			"| cold start to full membership on every node | 3 | 0.50 s | <= 2 s | yes | >150 s | <0.003x | 0.25 s | 2x |",
			"| kill -9 seen as failed by all | 3 | 4 s | <= 3 s | NO | 8 s [handler 9] | 0.50x | - | - |",
			"| RSS per node (mean, max) | 3 | 17 (21) MB | <= 20 MB | NO | 14 (15) MB | 1.21x | - | - |",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("table lacks %q; got:\n%s", want, got)
			}
		}
		if strings.Contains(got, "leave") || strings.Contains(got, "raft off") {
			t.Errorf("table has a row or column for something nobody measured:\n%s", got)
		}
		runs = append(runs, run{System: sysEdgedNoRaft, N: 3, Metrics: map[string]figure{mFull: ok(3)}})
		if got := table(runs); !strings.Contains(got, "| cold start to full membership on every node | 3 | 0.50 s | <= 2 s | yes | 3 s | NO | >150 s | <0.003x | 0.25 s | 2x |") {
			t.Errorf("table with edged-noraft:\n%s", got)
		}
	})

	t.Run("loadSettings", func(t *testing.T) {
		t.Setenv("BENCH_N", "3, 10")
		t.Setenv("BENCH_SOAK", "30s")
		t.Setenv("BENCH_SYSTEMS", "edged-noraft")
		s, err := loadSettings()
		if err != nil || len(s.sizes) != 2 || s.sizes[1] != 10 || s.soak != 30*time.Second || len(s.systems) != 1 {
			t.Errorf("loadSettings = %+v, %v", s, err)
		}
		t.Setenv("BENCH_SOAK", "five minutes")
		if _, err := loadSettings(); err == nil {
			t.Error("a bad BENCH_SOAK was taken")
		}
		t.Setenv("BENCH_SOAK", "")
		t.Setenv("BENCH_SYSTEMS", "consul")
		if _, err := loadSettings(); err == nil {
			t.Error("an unknown system was taken")
		}
	})
}
