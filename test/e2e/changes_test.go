package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// TestChangesOnASite walks site-wide config changes through their lifecycle
// on one 5-node lab with simulated radios and rectifiers (the radio takes
// 300 ms per operation, so a change lasts about a second on every node):
// apply and confirm, refusal at validation, failure during apply, the
// confirm timer (also on a node cut off from the leader), racing applies, a
// site-wide semaphore, then crashes of the leader and of a target in the
// middle of a change, a command caught by a partition, and a 2/3 partition.
// Every subtest starts from a site at rest (settle) and leaves one; set
// EDGE_E2E_KEEP=DIR to keep whole node logs of a failed run.
func TestChangesOnASite(t *testing.T) {
	l := newLab(t, 5, func(c *lab.Config) { c.Extra = slowRadio })
	keepLogs(t, l)
	all := names(l)
	waitAll(t, l, all, 20*time.Second, "all 5 alive", exactly(all...))
	for _, n := range all {
		leaderOf(t, l, n)
	}

	t.Run("apply reaches every node and is confirmed", func(t *testing.T) {
		b := settle(t, l)
		lines := []string{`"*": {radio0: {power_dbm: 25, mode: manual}}`}
		want := map[string]radio{}
		for i, n := range all {
			f := 3510 + 20*float64(i)
			lines = append(lines, fmt.Sprintf("%s: {radio0: {frequency_mhz: %g}}", n, f))
			want[n] = radio{"power_dbm": 25.0, "mode": "manual", "frequency_mhz": f, "enabled": true}
		}
		doc := siteDoc("confirm_timeout: 30s", lines...) + "constraints:\n  - unique: radio0.frequency_mhz\n"
		out, stderr, code := edgectlRetry(t, l, "node2", "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s%s", code, stderr, out)
		}
		ch := decode[api.Change](t, "apply --json", out)
		if ch.State != "confirmed" || ch.Gen <= b.gen || ch.Base != b.gen || len(ch.Nodes) != 5 || !ch.Final {
			t.Fatalf("apply: %s", describeChange(ch))
		}
		for _, p := range ch.Nodes {
			if p.Phase != "applied" {
				t.Errorf("%s: phase %s (%s), want applied", p.Node, p.Phase, p.Reason)
			}
		}
		for _, n := range all {
			waitRadio(t, l, n, 10*time.Second, want[n])
			statusUntil(t, l, n, 10*time.Second, fmt.Sprintf("generation %d confirmed and applied", ch.Gen), func(s api.Status) bool {
				return s.Config != nil && s.Config.Generation == ch.Gen && s.Config.Applied == ch.Gen && s.Config.State == "confirmed"
			})
		}
		out, stderr, code = edgectlOn(t, l, "node4", "history", "--json")
		if code != 0 {
			t.Fatalf("history --json: exit %d: %s", code, stderr)
		}
		h := decode[api.History](t, "history --json", out)
		if h.Confirmed != ch.Gen || len(h.Generations) == 0 {
			t.Fatalf("history: %+v, want generation %d confirmed", h, ch.Gen)
		}
		if g := h.Generations[0]; g.Gen != ch.Gen || g.ChangeID != ch.ID || g.State != "confirmed" || !g.Confirmed || g.Hash == "" {
			t.Errorf("history, newest: %+v", g)
		}
		table, _, code := edgectlOn(t, l, "node5", "history")
		if code != 0 || !strings.Contains(table, fmt.Sprintf("%d *", ch.Gen)) || !strings.Contains(table, ch.ID) {
			t.Errorf("history table (exit %d) does not mark generation %d confirmed:\n%s", code, ch.Gen, table)
		}
	})

	t.Run("back-to-back applies from different nodes each build on the last", func(t *testing.T) {
		b := settle(t, l)
		// Each apply starts right after the previous one, made on another
		// node, confirmed: the new one must take it as its base even when
		// this node's replica has not heard of the confirm yet.
		gen := b.gen
		for i := range 6 {
			node := all[i%len(all)]
			doc := siteDoc("confirm_timeout: 30s", fmt.Sprintf(`"*": {radio0: {power_dbm: %d}}`, 21+i))
			out, stderr, code := edgectlOn(t, l, node, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--json")
			if code != 0 {
				t.Fatalf("apply %d on %s, right after generation %d was confirmed elsewhere: exit %d: %s", i+1, node, gen, code, stderr)
			}
			ch := decode[api.Change](t, "apply --json", out)
			if ch.State != "confirmed" || ch.Base != gen {
				t.Fatalf("apply %d on %s: %s, want confirmed on base %d", i+1, node, describeChange(ch), gen)
			}
			gen = ch.Gen
		}
	})

	t.Run("a value one node's device refuses rejects the change, nothing moves", func(t *testing.T) {
		b := settle(t, l)
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 26}}`, `node3: {radio0: {power_dbm: 99}}`)
		out, stderr, code := edgectlRetry(t, l, "node1", "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm")
		if code != 1 {
			t.Fatalf("apply: exit %d, want 1; stdout:\n%s\nstderr: %s", code, out, stderr)
		}
		oneLine(t, "apply", stderr, "rejected", "node3", "power_dbm", "99")
		if strings.Contains(stderr, "node1:") || strings.Contains(stderr, "node5:") {
			t.Errorf("stderr blames nodes that took the value: %q", stderr)
		}
		out, _, code = edgectlOn(t, l, "node1", "changes", "--json")
		cs := decode[api.Changes](t, "changes --json", out)
		if code != 0 || len(cs.Changes) == 0 {
			t.Fatalf("changes --json: exit %d: %s", code, out)
		}
		ch := cs.Changes[0]
		if ch.State != "rejected" || !ch.Final || ch.Gen <= b.gen {
			t.Fatalf("newest change: %s", describeChange(ch))
		}
		for _, p := range ch.Nodes {
			if p.Phase != "validating" && p.Phase != "valid" && p.Phase != "invalid" {
				t.Errorf("%s: phase %s: a rejected change reached the hardware", p.Node, p.Phase)
			}
		}
		for _, tr := range ch.History {
			if tr.State != "proposed" && tr.State != "rejected" {
				t.Errorf("rejected change went through %s", tr.State)
			}
		}
		b.unchanged(t, l)
		out, _, _ = edgectlOn(t, l, "node3", "history", "--json")
		if h := decode[api.History](t, "history --json", out); h.Confirmed != b.gen {
			t.Errorf("confirmed generation %d after a rejected change, want %d", h.Confirmed, b.gen)
		}
	})

	t.Run("a device failing during apply rolls every node back", func(t *testing.T) {
		// node3 gets a second radio that passes every check but refuses
		// every apply (sim option reject_apply).
		n3 := mustNode(t, l, "node3")
		conf, err := os.ReadFile(n3.Config)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), "radio1") {
			conf = append(conf, "  - name: radio1\n    driver: sim\n    options: {model: radio, reject_apply: \"true\"}\n"...)
			if err := os.WriteFile(n3.Config, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(n3.Pid, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		waitDevices(t, l, "node3", 15*time.Second, "radio1 added", func(m map[string]api.Device) bool {
			return m["radio1"].State == api.DeviceOK
		})
		b := settle(t, l)
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 27}}`, `node3: {radio1: {power_dbm: 30}}`)
		out, stderr, code := edgectlRetry(t, l, "node1", "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--json")
		if code != 1 {
			t.Fatalf("apply: exit %d, want 1; stdout:\n%s\nstderr: %s", code, out, stderr)
		}
		oneLine(t, "apply", stderr, "rolled_back", "node3", "radio1")
		ch := decode[api.Change](t, "apply --json", out)
		if ch.State != "rolled_back" || !ch.Final || !strings.Contains(ch.Reason, "node3") {
			t.Fatalf("change: %s", describeChange(ch))
		}
		var states []string
		for _, tr := range ch.History {
			states = append(states, tr.State)
		}
		if !slices.Contains(states, "applying") || !slices.Contains(states, "rolling_back") || slices.Contains(states, "confirmed") {
			t.Errorf("transitions %v, want applying then rolling_back, never confirmed", states)
		}
		for _, p := range ch.Nodes {
			if p.Phase != "reverted" {
				t.Errorf("%s: phase %s (%s), want reverted", p.Node, p.Phase, p.Reason)
			}
		}
		b.back(t, l, 10*time.Second)
		b.unchanged(t, l)
	})

	t.Run("without a confirm every node reverts at the deadline", func(t *testing.T) {
		b := settle(t, l)
		doc := siteDoc("confirm_timeout: 10s", `"*": {radio0: {power_dbm: 28}}`)
		out, stderr, code := edgectlRetry(t, l, "node2", "apply", "-f", writeDoc(t, "site.yaml", doc), "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s", code, stderr)
		}
		ch := decode[api.Change](t, "apply --json", out)
		if ch.State != "applied" || ch.ConfirmBy.IsZero() {
			t.Fatalf("apply without --auto-confirm: %s (confirm by %s), want applied with a deadline", describeChange(ch), ch.ConfirmBy)
		}
		for _, n := range all {
			waitRadio(t, l, n, 10*time.Second, radio{"power_dbm": 28.0})
		}
		fin := waitChange(t, l, "node2", ch.ID, 40*time.Second, "final", isFinal)
		if fin.State != "rolled_back" || !strings.Contains(fin.Reason, "not confirmed") {
			t.Fatalf("after the deadline: %s, want rolled_back, not confirmed", describeChange(fin))
		}
		for _, tr := range fin.History {
			if tr.State == "rolling_back" && tr.Time.Before(ch.ConfirmBy) {
				t.Errorf("rolled back at %s, before the deadline %s", tr.Time, ch.ConfirmBy)
			}
		}
		for _, p := range fin.Nodes {
			if p.Phase != "reverted" {
				t.Errorf("%s: phase %s (%s), want reverted", p.Node, p.Phase, p.Reason)
			}
		}
		b.back(t, l, 15*time.Second)
		b.unchanged(t, l)
	})

	t.Run("a confirm in time keeps the change past the deadline", func(t *testing.T) {
		settle(t, l)
		doc := siteDoc("confirm_timeout: 10s", `"*": {radio0: {power_dbm: 29}}`)
		out, stderr, code := edgectlRetry(t, l, "node3", "apply", "-f", writeDoc(t, "site.yaml", doc), "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s", code, stderr)
		}
		ch := decode[api.Change](t, "apply --json", out)
		if ch.State != "applied" {
			t.Fatalf("apply: %s", describeChange(ch))
		}
		out, stderr, code = edgectlRetry(t, l, "node5", "confirm")
		if code != 0 || !strings.Contains(out, fmt.Sprintf("generation %d", ch.Gen)) {
			t.Fatalf("confirm: exit %d: %s%s", code, stderr, out)
		}
		fin := waitChange(t, l, "node1", ch.ID, 10*time.Second, "final", isFinal)
		if fin.State != "confirmed" {
			t.Fatalf("after confirm: %s", describeChange(fin))
		}
		want := radio{"power_dbm": 29.0}
		for _, n := range all {
			waitRadio(t, l, n, 10*time.Second, want)
		}
		// The nodes' own timers (deadline + a grace of 2 s) must be disarmed.
		holdRadio(t, l, all, ch.ConfirmBy.Add(5*time.Second), want)
		for _, n := range all {
			if st := waitStatus(t, l, n); st.Config == nil || st.Config.Generation != ch.Gen || st.Config.Applied != ch.Gen {
				t.Errorf("%s: config %+v, want generation %d", n, st.Config, ch.Gen)
			}
		}
	})

	t.Run("a node cut off from the leader reverts by itself at the deadline", func(t *testing.T) {
		b := settle(t, l)
		r := leaderOf(t, l, "node1")
		cut := ""
		for _, n := range all {
			if !slices.Contains(r.Voters, n) {
				cut = n
			}
		}
		if cut == "" {
			t.Fatalf("every node is a voter: %+v", r)
		}
		doc := siteDoc("confirm_timeout: 10s", `"*": {radio0: {power_dbm: 30}}`)
		out, stderr, code := edgectlRetry(t, l, "node1", "apply", "-f", writeDoc(t, "site.yaml", doc), "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s", code, stderr)
		}
		ch := decode[api.Change](t, "apply --json", out)
		waitRadio(t, l, cut, 10*time.Second, radio{"power_dbm": 30.0})
		// The node's own replica must know the change is applied (that
		// arms its timer) before it is cut off.
		waitChange(t, l, cut, ch.ID, 10*time.Second, "applied", func(c api.Change) bool { return c.State == "applied" })
		if err := l.Partition([]string{cut}); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = l.Heal()
			}
		}()
		// Alone, the node never hears of the rollback: its own confirm
		// timer (persisted in its journal) puts the base back.
		waitRadio(t, l, cut, 30*time.Second, b.radios[cut])
		if now := time.Now(); now.Before(ch.ConfirmBy) {
			t.Errorf("%s reverted at %s, before the deadline %s", cut, now, ch.ConfirmBy)
		}
		waitLog(t, mustNode(t, l, cut).Log, 5*time.Second, "change not confirmed in time: reverting this node by itself")
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		fin := waitChange(t, l, "node1", ch.ID, 60*time.Second, "final", isFinal)
		if fin.State != "rolled_back" || !strings.Contains(fin.Reason, "not confirmed") {
			t.Errorf("change: %s, want rolled_back, not confirmed", describeChange(fin))
		}
		waitAll(t, l, all, 30*time.Second, "one cluster again", exactly(all...))
		b.back(t, l, 15*time.Second)
	})

	t.Run("a node cut off before it learns the change applied still reverts at the deadline", func(t *testing.T) {
		b := settle(t, l)
		r := leaderOf(t, l, "node1")
		var nonvoters []string
		for _, n := range all {
			if !slices.Contains(r.Voters, n) {
				nonvoters = append(nonvoters, n)
			}
		}
		if len(nonvoters) < 2 {
			t.Fatalf("voters %v: want two non-voters", r.Voters)
		}
		cut, next := nonvoters[0], nonvoters[1]
		// Rolling, one node at a time: cut applies first, then next.
		doc := siteDoc("strategy: rolling, max_unavailable: 1, confirm_timeout: 10s",
			fmt.Sprintf(`%s: {radio0: {power_dbm: 30}}`, cut), fmt.Sprintf(`%s: {radio0: {power_dbm: 30}}`, next))
		out, stderr, code := edgectlRetry(t, l, "node1", "apply", "-f", writeDoc(t, "site.yaml", doc), "--no-wait", "--json")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s", code, stderr)
		}
		res := decode[api.ApplyResult](t, "apply --no-wait --json", out)
		phase := func(c api.Change, n string) string {
			for _, p := range c.Nodes {
				if p.Node == n {
					return p.Phase
				}
			}
			return ""
		}
		at := waitChange(t, l, "node1", res.ChangeID, 20*time.Second, cut+" applied", func(c api.Change) bool {
			return phase(c, cut) == "applied" || c.Final
		})
		if at.State != "applying" || phase(at, next) == "applied" {
			t.Fatalf("not the moment wanted (%s applied, %s not yet): %s", cut, next, describeChange(at))
		}
		if err := l.Partition([]string{cut}); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = l.Heal()
			}
		}()
		// The rest of the site finishes the apply, waits for a confirm that
		// never comes, and rolls back.
		fin := waitChange(t, l, "node1", res.ChangeID, 60*time.Second, "final", isFinal)
		t.Logf("without %s: %s (confirm by %s)", cut, describeChange(fin), fin.ConfirmBy.Format(time.TimeOnly))
		if fin.State != "rolled_back" {
			t.Fatalf("change: %s, want rolled_back", describeChange(fin))
		}
		waitRadio(t, l, next, 10*time.Second, b.radios[next])
		// cut holds the new generation on its hardware, which the site never
		// confirmed: by the deadline (and its grace) it must be back.
		limit := time.Until(fin.ConfirmBy.Add(10 * time.Second))
		if fin.ConfirmBy.IsZero() {
			limit = 15 * time.Second
		}
		var bug string
		if ok, last := radioReaches(t, l, cut, max(limit, 5*time.Second), b.radios[cut]); !ok {
			st := waitStatus(t, l, cut)
			bug = fmt.Sprintf("PRODUCT BUG: %s, cut off after it applied generation %d but before its replica saw the change APPLIED, "+
				"still holds radio0 %v at %s, 10s past the confirm deadline %s, while the site rolled the change back (its view: %+v): "+
				"the node arms its confirm timer only when it sees APPLIED (coord/change agent.follow sets ConfirmBy only then), so a "+
				"node cut off during APPLYING keeps an unconfirmed generation with no deadline",
				cut, res.Gen, radio(last.Actual), time.Now().Format(time.TimeOnly), fin.ConfirmBy.Format(time.TimeOnly), st.Config)
		}
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		waitAll(t, l, all, 30*time.Second, "one cluster again", exactly(all...))
		b.back(t, l, 30*time.Second)
		if bug != "" {
			t.Fatal(bug)
		}
	})

	t.Run("two applies racing on the same base: one wins, one conflicts", func(t *testing.T) {
		b := settle(t, l)
		base := b.gen
		racers := []struct {
			node  string
			power float64
		}{{"node1", 31}, {"node4", 32}}
		type outcome struct {
			res api.ApplyResult
			err error
		}
		results := make([]outcome, len(racers))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range racers {
			c := clientOf(t, l, r.node)
			doc := siteDoc("confirm_timeout: 30s", fmt.Sprintf(`"*": {radio0: {power_dbm: %g}}`, r.power))
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				<-start
				res, err := c.Apply(ctx, api.ApplyRequest{File: "race.yaml", Doc: []byte(doc), Base: &base, AutoConfirm: true, Author: "race@" + r.node})
				results[i] = outcome{res, err}
			})
		}
		close(start)
		wg.Wait()
		win := -1
		for i, o := range results {
			t.Logf("%s: %+v %v", racers[i].node, o.res, o.err)
			if o.err == nil {
				if win >= 0 {
					t.Fatalf("both applies on base %d were accepted: %+v and %+v", base, results[win].res, o.res)
				}
				win = i
			}
		}
		if win < 0 {
			t.Fatalf("neither apply was accepted: %v; %v", results[0].err, results[1].err)
		}
		lose := 1 - win
		if !strings.Contains(results[lose].err.Error(), "conflict") {
			t.Errorf("the loser's error does not say conflict: %v", results[lose].err)
		}
		fin := waitChange(t, l, racers[win].node, results[win].res.ChangeID, 30*time.Second, "final", isFinal)
		if fin.State != "confirmed" {
			t.Fatalf("winner: %s", describeChange(fin))
		}
		for _, n := range all {
			waitRadio(t, l, n, 10*time.Second, radio{"power_dbm": racers[win].power})
		}
		// A late compare-and-swap on the old base is refused, and changes
		// nothing.
		doc := writeDoc(t, "late.yaml", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 33}}`))
		out, stderr, code := edgectlRetry(t, l, "node2", "apply", "-f", doc, "--base", strconv.FormatUint(base, 10), "--auto-confirm")
		if code != 1 {
			t.Fatalf("apply --base %d (stale): exit %d, want 1: %s%s", base, code, out, stderr)
		}
		oneLine(t, "apply --base (stale)", stderr, "conflict", strconv.FormatUint(fin.Gen, 10))
		if st := waitStatus(t, l, "node2"); st.Config.Generation != fin.Gen || st.Config.PendingChange != "" {
			t.Errorf("after a refused stale apply: %+v", st.Config)
		}
	})

	t.Run("lock --limit 2 lets at most two commands in at once", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "inside.log")
		// $1 is the holder's name, $2 the shared file. The sleep is the work
		// done under the lock, so that the holders overlap.
		script := `echo "enter $(date +%s%N) $1 $EDGE_LOCK_TOKEN" >> "$2"; sleep 1; echo "leave $(date +%s%N) $1" >> "$2"`
		holders := []string{"node1", "node3", "node5"}
		type run struct {
			code   int
			stderr string
		}
		runs := make([]run, len(holders))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, n := range holders {
			sock := mustNode(t, l, n).Socket
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgectl"), "--socket", sock, "lock", "x", "--limit", "2", "--wait", "30s",
					"--", "sh", "-c", script, "sh", n, file)
				var errb strings.Builder
				cmd.Stderr = &errb
				<-start
				err := cmd.Run()
				runs[i] = run{code: cmd.ProcessState.ExitCode(), stderr: errb.String()}
				if err != nil && cmd.ProcessState == nil {
					runs[i] = run{code: -1, stderr: err.Error()}
				}
			})
		}
		close(start)
		wg.Wait()
		for i, r := range runs {
			if r.code != 0 {
				t.Errorf("%s: edgectl lock: exit %d: %s", holders[i], r.code, r.stderr)
			}
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		type event struct {
			at     int64
			enter  bool
			holder string
			token  string
		}
		var events []event
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 {
				t.Fatalf("bad line %q", sc.Text())
			}
			at, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			e := event{at: at, enter: fs[0] == "enter", holder: fs[2]}
			if e.enter && len(fs) > 3 {
				e.token = fs[3]
			}
			events = append(events, e)
		}
		sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
		inside, most := 0, 0
		tokens := map[string]string{}
		var trace []string
		for _, e := range events {
			if e.enter {
				inside++
				tokens[e.holder] = e.token
			} else {
				inside--
			}
			most = max(most, inside)
			trace = append(trace, fmt.Sprintf("%v %s (%d inside)", e.enter, e.holder, inside))
		}
		if len(events) != 2*len(holders) {
			t.Fatalf("want %d enter/leave lines, got %d: %v", 2*len(holders), len(events), trace)
		}
		if most > 2 {
			t.Errorf("%d holders inside at once with --limit 2: %v", most, trace)
		}
		if most < 2 {
			t.Errorf("never two holders inside at once with --limit 2 (a mutex, not a semaphore?): %v", trace)
		}
		seen := map[string]bool{}
		for h, tok := range tokens {
			if v, err := strconv.ParseUint(tok, 10, 64); err != nil || v == 0 || seen[tok] {
				t.Errorf("%s: fencing token %q: want a distinct raft index", h, tok)
			}
			seen[tok] = true
		}
		// Every slot was released: the same lock can be taken as a mutex now.
		if _, stderr, code := edgectlRetry(t, l, "node2", "lock", "x", "--wait", "10s", "--", "true"); code != 0 {
			t.Errorf("lock x after every holder left: exit %d: %s", code, stderr)
		}
	})

	t.Run("kill -9 of the leader mid-change: the new leader ends it, no node on a mix", func(t *testing.T) {
		b := settle(t, l)
		old := leaderOf(t, l, "node1").Leader
		from := all[0]
		if from == old {
			from = all[1]
		}
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 33}}`)
		out, stderr, code := edgectlRetry(t, l, from, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--no-wait", "--json")
		if code != 0 {
			t.Fatalf("apply --no-wait: exit %d: %s", code, stderr)
		}
		res := decode[api.ApplyResult](t, "apply --no-wait --json", out)
		// Kill the leader while its own radio is being set (the sim radio
		// takes about a second).
		oldNode := mustNode(t, l, old)
		waitLog(t, oldNode.Log, 15*time.Second, fmt.Sprintf("gen=%d change=%s", res.Gen, res.ChangeID))
		if err := l.Kill(old); err != nil {
			t.Fatal(err)
		}
		at := waitChange(t, l, from, res.ChangeID, 10*time.Second, "known", func(api.Change) bool { return true })
		t.Logf("leader %s killed; the change then: %s", old, describeChange(at))
		if at.Final {
			t.Fatalf("the change had ended before the leader died: the test missed the middle (%s)", describeChange(at))
		}
		nl := statusUntil(t, l, from, 30*time.Second, "a new leader", func(s api.Status) bool {
			return hasQuorum(s) && s.Raft.Leader != old
		})
		t.Logf("new leader: %s", nl.Raft.Leader)
		// The old leader comes back, as systemd restarts it, and finds its
		// journal.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := l.Start(ctx, old); err != nil {
			t.Fatal(err)
		}
		waitLog(t, oldNode.Log, 15*time.Second, fmt.Sprintf(`"journal found: restoring" part=agent gen=%d change=%s`, res.Gen, res.ChangeID))
		fin := waitChange(t, l, from, res.ChangeID, 150*time.Second, "final", isFinal)
		t.Logf("final: %s", describeChange(fin))
		checkConsistent(t, l, all, b, fin, radio{"power_dbm": 33.0})
		out, stderr, code = edgectlOn(t, l, old, "changes", res.ChangeID)
		if code != 0 {
			t.Fatalf("changes %s: exit %d: %s", res.ChangeID, code, stderr)
		}
		for _, s := range append([]string{"state", fin.State, "applying"}, all...) {
			if !strings.Contains(out, s) {
				t.Errorf("edgectl changes %s does not show %q:\n%s", res.ChangeID, s, out)
			}
		}
		t.Logf("edgectl changes %s:\n%s", res.ChangeID, out)
	})

	t.Run("kill -9 of a target mid-apply: after the restart it finishes or restores", func(t *testing.T) {
		b := settle(t, l)
		leader := leaderOf(t, l, "node1").Leader
		var others []string
		for _, n := range all {
			if n != leader {
				others = append(others, n)
			}
		}
		target, from := others[len(others)-1], others[0]
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 34}}`)
		out, stderr, code := edgectlRetry(t, l, from, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--no-wait", "--json")
		if code != 0 {
			t.Fatalf("apply --no-wait: exit %d: %s", code, stderr)
		}
		res := decode[api.ApplyResult](t, "apply --no-wait --json", out)
		tn := mustNode(t, l, target)
		waitLog(t, tn.Log, 15*time.Second, fmt.Sprintf("gen=%d change=%s", res.Gen, res.ChangeID))
		if err := l.Kill(target); err != nil {
			t.Fatal(err)
		}
		at := waitChange(t, l, from, res.ChangeID, 10*time.Second, "known", func(api.Change) bool { return true })
		t.Logf("%s killed; the change then: %s", target, describeChange(at))
		if at.Final {
			t.Fatalf("the change had ended before %s died: the test missed the middle (%s)", target, describeChange(at))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := l.Start(ctx, target); err != nil {
			t.Fatal(err)
		}
		waitLog(t, tn.Log, 15*time.Second, fmt.Sprintf(`"journal found: restoring" part=agent gen=%d change=%s`, res.Gen, res.ChangeID))
		fin := waitChange(t, l, from, res.ChangeID, 150*time.Second, "final", isFinal)
		t.Logf("final: %s", describeChange(fin))
		checkConsistent(t, l, all, b, fin, radio{"power_dbm": 34.0})
	})

	t.Run("kill -9 of the leader, which stays down: the others end the change without it", func(t *testing.T) {
		b := settle(t, l)
		old := leaderOf(t, l, "node1").Leader
		var rest []string
		for _, n := range all {
			if n != old {
				rest = append(rest, n)
			}
		}
		from := rest[0]
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 36}}`)
		out, stderr, code := edgectlRetry(t, l, from, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--no-wait", "--json")
		if code != 0 {
			t.Fatalf("apply --no-wait: exit %d: %s", code, stderr)
		}
		res := decode[api.ApplyResult](t, "apply --no-wait --json", out)
		oldNode := mustNode(t, l, old)
		waitLog(t, oldNode.Log, 15*time.Second, fmt.Sprintf("gen=%d change=%s", res.Gen, res.ChangeID))
		if err := l.Kill(old); err != nil {
			t.Fatal(err)
		}
		fin := waitChange(t, l, from, res.ChangeID, 150*time.Second, "final", isFinal)
		t.Logf("final without %s: %s", old, describeChange(fin))
		checkConsistent(t, l, rest, b, fin, radio{"power_dbm": 36.0})
		// Back, it restores from its journal and follows the site.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := l.Start(ctx, old); err != nil {
			t.Fatal(err)
		}
		waitLog(t, oldNode.Log, 15*time.Second, fmt.Sprintf(`"journal found: restoring" part=agent gen=%d change=%s`, res.Gen, res.ChangeID))
		checkConsistent(t, l, all, b, fin, radio{"power_dbm": 36.0})
	})

	t.Run("a target that crashed mid-apply and restarts cut off keeps the last confirmed generation", func(t *testing.T) {
		b := settle(t, l)
		r := leaderOf(t, l, "node1")
		target, from := "", ""
		for _, n := range all {
			switch {
			case !slices.Contains(r.Voters, n) && target == "":
				target = n
			case n != r.Leader && from == "":
				from = n
			}
		}
		doc := siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 37}}`)
		out, stderr, code := edgectlRetry(t, l, from, "apply", "-f", writeDoc(t, "site.yaml", doc), "--auto-confirm", "--no-wait", "--json")
		if code != 0 {
			t.Fatalf("apply --no-wait: exit %d: %s", code, stderr)
		}
		res := decode[api.ApplyResult](t, "apply --no-wait --json", out)
		tn := mustNode(t, l, target)
		waitLog(t, tn.Log, 15*time.Second, fmt.Sprintf("gen=%d change=%s", res.Gen, res.ChangeID))
		if err := l.Kill(target); err != nil {
			t.Fatal(err)
		}
		// Without the target's report the change cannot be confirmed.
		fin := waitChange(t, l, from, res.ChangeID, 150*time.Second, "final", isFinal)
		t.Logf("final without %s: %s", target, describeChange(fin))
		if fin.State == "confirmed" {
			t.Fatalf("confirmed without a report from %s: %s", target, describeChange(fin))
		}
		var rest []string
		for _, n := range all {
			if n != target {
				rest = append(rest, n)
			}
		}
		checkConsistent(t, l, rest, b, fin, nil)
		// The target comes back where it cannot reach the site: all it has
		// is its journal, which names a generation that was never confirmed.
		if err := l.Partition([]string{target}); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = l.Heal()
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := l.Start(ctx, target); err != nil {
			t.Fatal(err)
		}
		waitLog(t, tn.Log, 15*time.Second, fmt.Sprintf(`"journal found: restoring" part=agent gen=%d change=%s`, res.Gen, res.ChangeID))
		var bug string
		if ok, last := radioReaches(t, l, target, 15*time.Second, b.radios[target]); !ok {
			bug = fmt.Sprintf("PRODUCT BUG: %s restarted cut off after a crash mid-apply of generation %d (never confirmed, the site rolled it back) "+
				"and holds radio0 %v (in_sync=%v), not the last confirmed generation %d's %v: the journal restore finishes a tentative "+
				"generation with no confirm deadline (coord/change agent.Run drives the journal entry; step() then holds it while the "+
				"replica is behind), so a node that cannot reach the leader keeps half a change indefinitely",
				target, res.Gen, radio(last.Actual), last.InSync, b.gen, b.radios[target])
		}
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		waitAll(t, l, all, 30*time.Second, "one cluster again", exactly(all...))
		checkConsistent(t, l, all, b, fin, nil)
		if bug != "" {
			t.Fatal(bug)
		}
	})

	t.Run("a command forwarded to a leader that just became unreachable fails in bounded time", func(t *testing.T) {
		settle(t, l)
		leader := leaderOf(t, l, "node1").Leader
		from := all[0]
		if from == leader {
			from = all[1]
		}
		// A forwarded command leaves a kept-alive RPC connection from the
		// follower to the leader.
		if _, stderr, code := edgectlRetry(t, l, from, "lock", "warm", "--", "true"); code != 0 {
			t.Fatalf("lock on %s: exit %d: %s", from, code, stderr)
		}
		if err := l.Partition([]string{leader}); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = l.Heal()
			}
		}()
		// Within the heartbeat time-out the follower still names the old
		// leader and forwards to it.
		start := time.Now()
		stderr, code, hung := edgectlWithin(t, l, from, 20*time.Second, "lock", "cut", "--wait", "5s", "--", "true")
		took := time.Since(start).Round(time.Millisecond)
		t.Logf("lock on %s right after %s was cut off: exit %d after %s: %q", from, leader, code, took, stderr)
		var bug string
		switch {
		case hung:
			bug = fmt.Sprintf("PRODUCT BUG: `edgectl lock` on %s, right after the leader %s was cut off, did not return within 20s "+
				"(killed). coord.Raft.Apply forwards to the last known leader with the caller's context, which for the local API has "+
				"no deadline, over a kept-alive connection of the RPC client (no response time-out): when the leader becomes "+
				"unreachable, the request waits for TCP to give up (minutes; a goroutine dump of a hung edged showed "+
				"handleLock -> coord.(*Raft).Apply -> http.(*persistConn).roundTrip blocked 9 minutes). The same path serves "+
				"apply, confirm, rollback and unlock", from, leader)
		case code != 0 && !strings.Contains(stderr, "no quorum"):
			t.Errorf("lock right after the leader was cut off: exit %d: %q, want success or a no quorum error", code, stderr)
		}
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		waitAll(t, l, all, 30*time.Second, "one cluster again", exactly(all...))
		if bug != "" {
			t.Fatal(bug)
		}
	})

	t.Run("partition 2/3: no quorum on the 2 side, the 3 side changes, all converge after the heal", func(t *testing.T) {
		b := settle(t, l)
		r := leaderOf(t, l, "node1")
		// The 2 side holds the leader and one more node that is not a voter,
		// so the 3 side holds 2 of the 3 voters: a raft majority is a
		// majority of voters, not of nodes.
		small := []string{r.Leader}
		for _, n := range all {
			if !slices.Contains(r.Voters, n) {
				small = append(small, n)
				break
			}
		}
		var big []string
		for _, n := range all {
			if !slices.Contains(small, n) {
				big = append(big, n)
			}
		}
		if len(small) != 2 || len(big) != 3 {
			t.Fatalf("voters %v, leader %s: cannot make a 2 side with the leader and a non-voter", r.Voters, r.Leader)
		}
		t.Logf("voters %v, leader %s: 2 side %v, 3 side %v", r.Voters, r.Leader, small, big)
		if err := l.Partition(small, big); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = l.Heal()
			}
		}()
		failed := func(names ...string) func(view) bool {
			return func(v view) bool {
				for _, n := range names {
					if v[n].Status != api.StatusFailed {
						return false
					}
				}
				return true
			}
		}
		waitAll(t, l, small, 20*time.Second, "the 3 side failed", failed(big...))
		waitAll(t, l, big, 20*time.Second, "the 2 side failed", failed(small...))
		for _, n := range small {
			statusUntil(t, l, n, 15*time.Second, "no quorum", func(s api.Status) bool { return s.Raft != nil && !s.Raft.Quorum })
		}
		file := writeDoc(t, "site.yaml", siteDoc("confirm_timeout: 30s", `"*": {radio0: {power_dbm: 35}}`))

		// The 2 side cannot change the config, and says why.
		var bug string
		_, stderr, code := edgectlOn(t, l, small[1], "apply", "-f", file)
		if code != 1 || !strings.Contains(stderr, "no quorum") {
			bug = fmt.Sprintf("PRODUCT BUG: on the 2 side, plain `edgectl apply` exits %d with %q: want exit 1 and the \"no quorum\" error "+
				"(DESIGN: the minority side cannot change config, clear \"no quorum\" error); it blames the down nodes and suggests "+
				"--allow-missing, which cannot help (daemon/site.go handleApply checks down targets before quorum)", code, stderr)
		}
		_, stderr, code = edgectlOn(t, l, small[0], "apply", "-f", file, "--allow-missing", "--auto-confirm")
		if code != 1 {
			t.Errorf("apply --allow-missing on the 2 side: exit %d, want 1: %s", code, stderr)
		}
		oneLine(t, "apply --allow-missing on the 2 side", stderr, "no quorum")

		// The 3 side elects a leader and changes its own nodes.
		out, stderr, code := edgectlRetry(t, l, big[0], "apply", "-f", file, "--allow-missing", "--auto-confirm", "--json")
		if code != 0 {
			st := waitStatus(t, l, big[0])
			if st.Raft != nil && slices.Contains(st.Raft.Voters, small[1]) {
				t.Fatalf("PRODUCT BUG (timing-dependent): the 3 side has no quorum: its raft configuration has voters %v, "+
					"including %s, a non-voter on the other side of the partition: when the voter %s was marked failed, the "+
					"3 side's new leader promoted %s although it could not reach it (coord.Raft.manage pings a non-voter before "+
					"promoting it and coord/store PlanMembership wants it healthy for StableAfter), and with 2 of 4 voters reachable nobody can be elected until the heal. "+
					"apply on the 3 side: exit %d: %s", st.Raft.Voters, small[1], small[0], small[1], code, stderr)
			}
			t.Fatalf("apply on the 3 side: exit %d: %s%s (raft %+v)", code, stderr, out, st.Raft)
		}
		ch := decode[api.Change](t, "apply --json", out)
		missing := slices.Sorted(slices.Values(ch.Missing))
		if ch.State != "confirmed" || !slices.Equal(missing, slices.Sorted(slices.Values(small))) || len(ch.Nodes) != 3 {
			t.Fatalf("change on the 3 side: %s, missing %v", describeChange(ch), ch.Missing)
		}
		for _, n := range big {
			waitRadio(t, l, n, 10*time.Second, radio{"power_dbm": 35.0})
		}
		// The 2 side keeps the last confirmed generation on its hardware.
		for _, n := range small {
			if r, _ := radioNow(t, l, n); !r.has(b.radios[n]) {
				t.Errorf("%s (2 side): radio0 %v, want the confirmed generation's %v", n, r, b.radios[n])
			}
			if st := waitStatus(t, l, n); st.Config == nil || st.Config.Generation != b.gen || st.Config.Applied != b.gen {
				t.Errorf("%s (2 side): config %+v, want generation %d", n, st.Config, b.gen)
			}
		}

		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		waitAll(t, l, all, 30*time.Second, "one cluster of 5 again", exactly(all...))
		for _, n := range all {
			waitRadio(t, l, n, 30*time.Second, radio{"power_dbm": 35.0})
			statusUntil(t, l, n, 30*time.Second, fmt.Sprintf("generation %d", ch.Gen), func(s api.Status) bool {
				return s.Config != nil && s.Config.Generation == ch.Gen && s.Config.Applied == ch.Gen
			})
		}
		if bug != "" {
			t.Fatal(bug)
		}
	})
}

// checkConsistent checks the end of a change interrupted by a crash: every
// node holds what its final state says, all of the change (confirmed:
// newValues) or none of it (the baseline), and every replica agrees.
func checkConsistent(t *testing.T, l *lab.Lab, nodes []string, b baseline, fin api.Change, newValues radio) {
	t.Helper()
	gen := b.gen
	switch fin.State {
	case "confirmed":
		gen = fin.Gen
	case "rolled_back", "aborted":
	default:
		t.Fatalf("change ended %s", fin.State)
	}
	for _, n := range nodes {
		want := b.radios[n]
		if fin.State == "confirmed" {
			want = newValues
		}
		waitRadio(t, l, n, 30*time.Second, want)
		statusUntil(t, l, n, 30*time.Second, fmt.Sprintf("generation %d confirmed and applied", gen), func(s api.Status) bool {
			return s.Config != nil && s.Config.Generation == gen && s.Config.Applied == gen && s.Config.PendingChange == ""
		})
	}
}

// TestSiteConfigNeedsSiteTLS: a node without credentials joins the gossip
// but never raft; a node with credentials of another CA is never in the
// raft configuration, and a site node refuses its certificate.
func TestSiteConfigNeedsSiteTLS(t *testing.T) {
	l := newLab(t, 3, nil)
	keepLogs(t, l)
	site := names(l)
	waitAll(t, l, site, 20*time.Second, "3 alive", exactly(site...))
	leaderOf(t, l, "node1")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	if _, err := l.AddNode(ctx, lab.NodeSpec{Name: "notls", NoTLS: true}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caDir, credDir := filepath.Join(dir, "ca"), filepath.Join(dir, "foreign")
	if _, stderr, code := edgectl(t, "tls", "ca", "--dir", caDir, "--site", "lab"); code != 0 {
		t.Fatalf("tls ca: %s", stderr)
	}
	if _, stderr, code := edgectl(t, "tls", "cert", "--ca", caDir, "--node", "foreign", "--out", credDir); code != 0 {
		t.Fatalf("tls cert: %s", stderr)
	}
	foreign, err := l.AddNode(ctx, lab.NodeSpec{Name: "foreign", NoTLS: true, Extra: []string{
		"tls_ca: " + filepath.Join(credDir, "ca.crt"),
		"tls_cert: " + filepath.Join(credDir, "foreign.crt"),
		"tls_key: " + filepath.Join(credDir, "foreign.key"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	everyone := append(slices.Clone(site), "notls", "foreign")
	waitAll(t, l, everyone, 20*time.Second, "all in the gossip", exactly(everyone...))

	// Without credentials: raft is off, and says so.
	st := waitStatus(t, l, "notls")
	if st.Raft != nil || st.Config != nil {
		t.Errorf("notls: status has raft %+v, config %+v; want neither", st.Raft, st.Config)
	}
	doc := writeDoc(t, "site.yaml", siteDoc("", `"*": {}`))
	if _, stderr, code := edgectlOn(t, l, "notls", "apply", "-f", doc); code != 1 || !strings.Contains(stderr, "raft is off") {
		t.Errorf("apply on notls: exit %d: %q, want 1 and raft is off", code, stderr)
	}
	// The other CA's node runs raft (its own credentials are valid) and
	// says where: the site can see it.
	leader := leaderOf(t, l, "node1").Leader
	waitView(t, l, leader, 10*time.Second, "foreign advertises a raft port", func(v view) bool {
		return v["foreign"].Tags["raft_port"] != ""
	})

	// A legitimate newcomer after them: once the leader has added it to
	// raft, its membership pass has seen the outsiders too.
	if _, err := l.AddNode(ctx, lab.NodeSpec{Name: "late"}); err != nil {
		t.Fatal(err)
	}
	members := append(slices.Clone(site), "late")
	waitAnyLog(t, l, site, 30*time.Second, "op=add_nonvoter server=late")
	statusUntil(t, l, "late", 30*time.Second, "late hears from the leader", hasQuorum)
	var bugs []string
	for _, n := range members {
		b, _ := os.ReadFile(mustNode(t, l, n).Log)
		for _, out := range []string{"foreign", "notls"} {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "raft membership chang") && strings.Contains(line, "server="+out) {
					bugs = append(bugs, fmt.Sprintf("%s's log: %s", n, line))
				}
			}
		}
		st := waitStatus(t, l, n)
		if st.Raft == nil || slices.Contains(st.Raft.Voters, "foreign") || slices.Contains(st.Raft.Voters, "notls") {
			t.Errorf("%s: raft %+v", n, st.Raft)
		}
	}
	if st := waitStatus(t, l, "foreign"); st.Raft == nil || st.Raft.Leader != "" || st.Config == nil || st.Config.Generation != 0 {
		t.Errorf("foreign: raft %+v config %+v: want raft on, with no leader and no site config", st.Raft, st.Config)
	}

	// foreign knocks on the leader's raft port with its own credentials: the
	// leader refuses them in the TLS handshake and logs why.
	leader = leaderOf(t, l, "node1").Leader
	ln := mustNode(t, l, leader)
	port := ""
	for _, m := range waitStatus(t, l, leader).Members {
		if m.Name == leader {
			port = m.Tags["raft_port"]
		}
	}
	if port == "" {
		t.Fatalf("%s advertises no raft port", leader)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(credDir, "foreign.crt"), filepath.Join(credDir, "foreign.key"))
	if err != nil {
		t.Fatal(err)
	}
	var dialErr error
	err = l.Do("foreign", func() error {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			InsecureSkipVerify: true, // only the leader's check of this certificate is under test
		}}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ln.Addr.String(), port))
		if err != nil {
			dialErr = err
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{'r'}); err == nil {
			var b [1]byte
			_, err = c.Read(b[:])
			dialErr = err
		} else {
			dialErr = err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dialErr == nil {
		t.Errorf("%s accepted a connection with another CA's certificate", leader)
	}
	t.Logf("foreign -> %s: %v", leader, dialErr)
	waitLog(t, ln.Log, 10*time.Second, fmt.Sprintf(`msg="connection refused: TLS handshake failed" part=raft component=transport remote=%s:`, foreign.Addr))
	b, _ := os.ReadFile(ln.Log)
	if !strings.Contains(string(b), "unknown authority") && !strings.Contains(string(b), "bad certificate") {
		t.Errorf("%s's refusal does not say why:\n%s", leader, tail(string(b), 10))
	}
	if len(bugs) > 0 {
		t.Fatalf("PRODUCT BUG: the leader put a node with another CA's certificate in the raft configuration "+
			"(coord/store PlanMembership adds every alive member with a raft_port tag as a non-voter, credentials unchecked; "+
			"the leader then fails to replicate to it forever, and could promote it to voter):\n%s", strings.Join(bugs, "\n"))
	}
}

// waitAnyLog waits until one of the nodes' logs holds substr.
func waitAnyLog(t *testing.T, l *lab.Lab, nodes []string, timeout time.Duration, substr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range nodes {
			if b, _ := os.ReadFile(mustNode(t, l, n).Log); strings.Contains(string(b), substr) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the logs of %v within %s", substr, nodes, timeout)
		}
		time.Sleep(50 * time.Millisecond) // a log file has no change event to wait on
	}
}
