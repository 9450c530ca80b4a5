package change

import (
	"strings"
	"testing"
	"time"

	"edge/coord/store"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func change(state string, policy store.Policy, phases map[string]string) *store.State {
	c := &store.Change{ID: "c1", Gen: 2, Base: 1, State: state, Policy: policy, Nodes: map[string]*store.NodeProgress{}, Created: now}
	for n, p := range phases {
		c.Nodes[n] = &store.NodeProgress{Phase: p, Updated: now}
	}
	return &store.State{Generation: 2, Confirmed: 1, Active: "c1", Changes: []*store.Change{c}}
}

func TestDecide(t *testing.T) {
	atomic := store.Policy{Strategy: "parallel", Atomic: true, ConfirmTimeout: time.Minute}
	rolling := store.Policy{Strategy: "rolling", BatchSize: 1, Atomic: true, ConfirmTimeout: time.Minute}
	ctl := NewController(DefaultControllerConfig(), nil, nil, nil)
	tests := []struct {
		name  string
		st    *store.State
		at    time.Time
		want  string // "op state phase nodes" or "" for nil
		inMsg string
	}{
		{"waits for validation", change(store.Proposed, atomic, map[string]string{"a": "valid", "b": "validating"}), now, "", ""},
		{"all valid", change(store.Proposed, atomic, map[string]string{"a": "valid", "b": "valid"}), now, "advance validated pending a,b", ""},
		{"one invalid rejects", change(store.Proposed, atomic, map[string]string{"a": "valid", "b": "invalid"}), now, "advance rejected  ", "rejected by b"},
		{"silent node aborts", change(store.Proposed, atomic, map[string]string{"a": "valid", "b": "validating"}), now.Add(time.Hour), "advance aborted  ", "no answer from b"},
		{"parallel applies all", change(store.Validated, atomic, map[string]string{"a": "pending", "b": "pending"}), now, "advance applying applying a,b", ""},
		{"rolling applies one", change(store.Validated, rolling, map[string]string{"a": "pending", "b": "pending"}), now, "advance applying applying a", ""},
		{"rolling next batch", change(store.Applying, rolling, map[string]string{"a": "applied", "b": "pending"}), now, "advance  applying b", ""},
		{"atomic failure rolls back", change(store.Applying, atomic, map[string]string{"a": "applied", "b": "failed"}), now, "advance rolling_back reverting a,b", "failed on b"},
		{"all applied", change(store.Applying, atomic, map[string]string{"a": "applied", "b": "applied"}), now, "advance applied  ", ""},
		{"silent applier fails", change(store.Applying, atomic, map[string]string{"a": "applied", "b": "applying"}), now.Add(time.Hour), "node  failed b", ""},
		{"confirm timeout", change(store.Applied, atomic, map[string]string{"a": "applied"}), now.Add(2 * time.Minute), "advance rolling_back reverting a", "not confirmed"},
		{"rolled back", change(store.RollingBack, atomic, map[string]string{"a": "reverted", "b": "reverted"}), now, "advance rolled_back  ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.st.Changes[0].State == store.Applied {
				tt.st.Changes[0].ConfirmBy = now.Add(time.Minute)
			}
			cmd := ctl.Decide(tt.st, tt.at)
			got := ""
			if cmd != nil {
				got = cmd.Op + " " + cmd.State + " " + cmd.Phase + " " + strings.Join(cmd.Nodes, ",")
				if cmd.Op == store.OpNode {
					got = cmd.Op + "  " + cmd.Phase + " " + cmd.Node
				}
				if cmd.Op == store.OpAdvance && cmd.From != tt.st.Changes[0].State {
					t.Errorf("advance not conditioned on the current state: from %q", cmd.From)
				}
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.inMsg != "" && !strings.Contains(cmd.Reason, tt.inMsg) {
				t.Errorf("reason %q lacks %q", cmd.Reason, tt.inMsg)
			}
		})
	}
	if ctl.Decide(&store.State{}, now) != nil {
		t.Error("no active change: want nothing")
	}
}
