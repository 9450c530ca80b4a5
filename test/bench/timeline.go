package bench

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"edge/daemon/api"
)

// memberState is one member as one node sees it: its status and when that
// node saw the status change.
type memberState struct {
	Status string
	Since  time.Time
}

// view is one node's members, by name.
type view map[string]memberState

// String lists the statuses, sorted by name, for messages.
func (v view) String() string {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n + "=" + v[n].Status)
	}
	return b.String()
}

// Event kinds of a timeline.
const (
	kindStart = "start" // the node's process (re)started: its view is empty
	kindReap  = "reap"  // the member was forgotten
)

// event is one membership change seen by one node, or the start of its
// process (Kind kindStart).
type event struct {
	At     time.Time
	Kind   string // kindStart, kindReap or an api.Status* value
	Member string
}

// handlerKinds maps serf's SERF_EVENT values to statuses.
var handlerKinds = map[string]string{
	"member-join":   api.StatusAlive,
	"member-failed": api.StatusFailed,
	"member-leave":  api.StatusLeft,
	"member-reap":   kindReap,
}

// parseHandlerLine parses one line of the file our serf event handler
// writes: "UNIXTIME SERF_EVENT NAME\tADDR\tROLE\tTAGS" (one per member), or
// "UNIXTIME start" written by the node wrapper when the process starts.
func parseHandlerLine(line string) (event, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return event{}, false
	}
	at, ok := parseUnixTime(f[0])
	if !ok {
		return event{}, false
	}
	if f[1] == kindStart && len(f) == 2 {
		return event{At: at, Kind: kindStart}, true
	}
	kind, ok := handlerKinds[f[1]]
	if !ok || len(f) < 3 {
		return event{}, false
	}
	return event{At: at, Kind: kind, Member: f[2]}, true
}

// parseUnixTime parses "SECONDS.NANOSECONDS" as printed by date +%s.%N.
func parseUnixTime(s string) (time.Time, bool) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	var nanos int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, false
		}
		nanos = n * int64(math.Pow10(9-len(frac)))
	}
	return time.Unix(secs, nanos), true
}

// serfLogRE matches the lines serf logs the moment its member list changes
// (serf.go handleNodeJoin, handleNodeLeave, handleNodeLeaveIntent, reap).
var serfLogRE = regexp.MustCompile(`\[INFO\] serf: EventMember(Join|Failed|Leave|Reap)(?: \(forced\))?: (\S+)`)

// wrapperStartPrefix starts the line the node wrapper prints to the node's
// log before it execs the command.
const wrapperStartPrefix = "bench: start "

// parseSerfLogLine parses one line of a serf agent's log, read at time at
// (serf's own timestamps have one-second resolution, so the time a line
// reached the log file stands in for it).
func parseSerfLogLine(line string, at time.Time) (event, bool) {
	if rest, ok := strings.CutPrefix(line, wrapperStartPrefix); ok {
		if t, ok := parseUnixTime(strings.TrimSpace(rest)); ok {
			at = t
		}
		return event{At: at, Kind: kindStart}, true
	}
	m := serfLogRE.FindStringSubmatch(line)
	if m == nil {
		return event{}, false
	}
	kind := map[string]string{"Join": api.StatusAlive, "Failed": api.StatusFailed, "Leave": api.StatusLeft, "Reap": kindReap}[m[1]]
	return event{At: at, Kind: kind, Member: m[2]}, true
}

// replay plays a node's events from its last process start, in order, and
// returns the view right after the first event that makes cond true. self
// counts as alive from the start (serf also reports its own join, but a
// view never waits for it). cond is not checked on the empty view before
// the first event.
func replay(self string, evs []event, cond func(view) bool) (view, bool) {
	start := 0
	for i, e := range evs {
		if e.Kind == kindStart {
			start = i
		}
	}
	v := view{}
	for _, e := range evs[start:] {
		switch e.Kind {
		case kindStart:
			v = view{self: {Status: api.StatusAlive, Since: e.At}}
			continue
		case kindReap:
			delete(v, e.Member)
		default:
			v[e.Member] = memberState{Status: e.Kind, Since: e.At}
		}
		if cond(v) {
			return cloneView(v), true
		}
	}
	return cloneView(v), false
}

func cloneView(v view) view {
	out := make(view, len(v))
	for k, s := range v {
		out[k] = s
	}
	return out
}

// Conditions on a view.

// allAlive: every named member is alive.
func allAlive(names []string) func(view) bool {
	return func(v view) bool {
		for _, n := range names {
			if v[n].Status != api.StatusAlive {
				return false
			}
		}
		return true
	}
}

// changedTo: every named member has status, and changed to it at or after t.
func changedTo(status string, t time.Time, names ...string) func(view) bool {
	return func(v view) bool {
		for _, n := range names {
			if m := v[n]; m.Status != status || m.Since.Before(t) {
				return false
			}
		}
		return true
	}
}

// and combines conditions.
func and(conds ...func(view) bool) func(view) bool {
	return func(v view) bool {
		for _, c := range conds {
			if !c(v) {
				return false
			}
		}
		return true
	}
}

// latest is the latest Since of the named members over the views of every
// node: when the last node saw the last of those changes.
func latest(views map[string]view, members []string) time.Time {
	var t time.Time
	for _, v := range views {
		for _, m := range members {
			if s := v[m].Since; s.After(t) {
				t = s
			}
		}
	}
	return t
}

// timelines collects the events every node of a lab saw, as they arrive.
// Its methods are safe for concurrent use.
type timelines struct {
	mu      sync.Mutex
	evs     map[string][]event
	changed chan struct{} // closed and replaced on every add
}

func newTimelines() *timelines {
	return &timelines{evs: map[string][]event{}, changed: make(chan struct{})}
}

// add appends e to node's timeline.
func (t *timelines) add(node string, e event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evs[node] = append(t.evs[node], e)
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait blocks until node's timeline (since its last start) reaches a view
// that satisfies cond, and returns the first such view. On ctx's end it
// returns the current view and ctx's error.
func (t *timelines) wait(ctx context.Context, node string, cond func(view) bool) (view, error) {
	for {
		t.mu.Lock()
		evs, ch := t.evs[node], t.changed
		t.mu.Unlock()
		v, ok := replay(node, evs, cond)
		if ok {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// failure is one node seeing one member fail.
type failure struct {
	At       time.Time
	Observer string
	Member   string
}

// edgedFailedRE matches edged's log line for a member it saw fail
// (coord/membership.go: log.Warn("member failed", "member", ...)).
var edgedFailedRE = regexp.MustCompile(`^time=(\S+) .*msg="member failed".* member=("(?:[^"\\]|\\.)*"|\S+)`)

// parseEdgedFailed parses one line of an edged log.
func parseEdgedFailed(line string) (at time.Time, member string, ok bool) {
	m := edgedFailedRE.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, "", false
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return time.Time{}, "", false
	}
	member = m[2]
	if uq, err := strconv.Unquote(member); err == nil {
		member = uq
	}
	return at, member, true
}

// incidents groups failures into incidents: one member declared failed by
// one or more nodes, observations of the same member less than gap apart
// belong to one incident. It returns the number of incidents and, of those,
// how many reached at least half of the observers given by of.
func incidents(fs []failure, gap time.Duration, of int) (count, wide int) {
	byMember := map[string][]failure{}
	for _, f := range fs {
		byMember[f.Member] = append(byMember[f.Member], f)
	}
	for _, list := range byMember {
		slices.SortFunc(list, func(a, b failure) int { return a.At.Compare(b.At) })
		observers := map[string]bool{}
		for i, f := range list {
			if i > 0 && f.At.Sub(list[i-1].At) >= gap {
				count++
				if 2*len(observers) >= of {
					wide++
				}
				observers = map[string]bool{}
			}
			observers[f.Observer] = true
		}
		if len(list) > 0 {
			count++
			if 2*len(observers) >= of {
				wide++
			}
		}
	}
	return count, wide
}

// failuresBetween returns the failures in every node's timeline with
// from <= At < to.
func (t *timelines) failuresBetween(from, to time.Time) []failure {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []failure
	for node, evs := range t.evs {
		for _, e := range evs {
			if e.Kind == api.StatusFailed && !e.At.Before(from) && e.At.Before(to) {
				out = append(out, failure{At: e.At, Observer: node, Member: e.Member})
			}
		}
	}
	return out
}
