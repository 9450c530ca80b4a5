package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"edge/coord"
	"edge/daemon/api"
	"edge/hardware"
)

// userEventDevice is the serf user event a node sends when one of its
// devices changes state, so every node's feed shows it.
const userEventDevice = "edge-device"

// eventLog is a bounded in-memory feed with blocking reads.
type eventLog struct {
	mu      sync.Mutex
	seq     uint64
	buf     []api.Event
	changed chan struct{}
}

const maxEvents = 1000

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) publish(e api.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	l.buf = append(l.buf, e)
	if len(l.buf) > maxEvents {
		l.buf = l.buf[len(l.buf)-maxEvents:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// after returns the events after seq and a channel closed at the next one.
func (l *eventLog) after(seq uint64) ([]api.Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.Event
	for _, e := range l.buf {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out, l.changed
}

// memberEvent feeds membership and device notifications into the log.
func (d *Daemon) memberEvent(e coord.Event) {
	switch e.Kind {
	case "member":
		d.events.publish(api.Event{Kind: "member", Node: e.Member, Subject: e.Addr, Message: e.Type})
	case "user":
		if e.Type != userEventDevice {
			return
		}
		var ev api.Event
		if json.Unmarshal(e.Payload, &ev) == nil && ev.Node != "" && ev.Node != d.cfg.Node {
			ev.Kind = "device"
			d.events.publish(ev)
		}
	}
}

// watchDevices publishes this node's device state changes, locally and to
// the site.
func (d *Daemon) watchDevices(ctx context.Context) error {
	last := map[string]string{}
	for {
		ch := d.hw.Changed()
		for _, st := range d.hw.Statuses() {
			key := st.State + "/" + strconv.FormatBool(st.InSync) + "/" + st.LastError
			if last[st.Name] == key {
				continue
			}
			first := last[st.Name] == ""
			last[st.Name] = key
			if first && st.State == hardware.StateDisconnected && st.LastError == "" {
				continue // not opened yet
			}
			msg := st.State
			if st.InSync {
				msg += ", in sync"
			} else {
				msg += ", not in sync"
			}
			if st.LastError != "" {
				msg += ": " + st.LastError
			}
			ev := api.Event{Kind: "device", Node: d.cfg.Node, Subject: st.Name, Message: msg, Time: time.Now().UTC()}
			d.events.publish(ev)
			if payload, err := json.Marshal(ev); err == nil && len(payload) < 400 {
				_ = d.member.UserEvent(userEventDevice, payload)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// watchChanges publishes change transitions seen in the replica.
func (d *Daemon) watchChanges(ctx context.Context) error {
	seen := map[string]int{}
	first := true
	for {
		ch := d.raft.Store().Changed()
		st := d.raft.Store().State()
		for _, c := range st.Changes {
			n := len(c.History)
			if seen[c.ID] >= n {
				continue
			}
			if !first {
				for _, t := range c.History[seen[c.ID]:] {
					msg := fmt.Sprintf("%s (generation %d)", t.State, c.Gen)
					if t.Reason != "" {
						msg += ": " + t.Reason
					}
					d.events.publish(api.Event{Kind: "change", Node: c.Author, Subject: c.ID, Message: msg, Time: t.Time})
				}
			}
			seen[c.ID] = n
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// handleEvents streams the feed as newline-delimited JSON until the client
// goes away (or, with ?follow=false, returns what there is).
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("after: want a sequence number, got %q", v))
			return
		}
		after = n
	}
	follow := r.URL.Query().Get("follow") != "false"
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for {
		evs, ch := d.events.after(after)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return
			}
			after = e.Seq
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		}
	}
}
