package change

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"edge/coord/store"
)

// Leadership tells whether this node leads, and cheaply whether a change
// is in progress.
type Leadership interface {
	IsLeader() bool
	Active() string
}

// ControllerConfig configures the leader's change controller.
type ControllerConfig struct {
	// ValidateTimeout: targets that have not validated by then abort the
	// change (nothing was touched).
	ValidateTimeout time.Duration
	// ApplyTimeout: a node that has not applied (or reverted) by then has
	// failed.
	ApplyTimeout time.Duration
	// Tick bounds how long the controller waits without an event.
	Tick   time.Duration
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Alive tells whether a node is up (serf); nil: every node is. A down
	// target fails (or, rolling back, is left to revert by itself) at once
	// instead of after a timeout.
	Alive func(node string) bool
}

// DefaultControllerConfig returns the defaults.
func DefaultControllerConfig() ControllerConfig {
	return ControllerConfig{ValidateTimeout: 30 * time.Second, ApplyTimeout: 60 * time.Second, Tick: 200 * time.Millisecond}
}

// Controller moves the active change through its lifecycle on the leader.
// Every decision is a raft command conditioned on the state it was made in,
// so a deposed leader's late decision is refused.
type Controller struct {
	cfg     ControllerConfig
	log     *slog.Logger
	replica Replica
	apply   Applier
	lead    Leadership
}

// NewController returns a controller; it acts only in Run, and only while
// this node leads.
func NewController(cfg ControllerConfig, replica Replica, apply Applier, lead Leadership) *Controller {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Controller{cfg: cfg, log: log, replica: replica, apply: apply, lead: lead}
}

// Run acts on every change of the replicated state until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		ch := c.replica.Changed()
		if c.lead.IsLeader() && c.lead.Active() != "" {
			if cmd := c.Decide(c.replica.State(), c.cfg.Now().UTC()); cmd != nil {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.apply.Apply(actx, *cmd)
				cancel()
				if err != nil {
					c.log.Debug("controller step refused", "change", cmd.ChangeID, "to", cmd.State, "err", err)
				} else if cmd.State != "" {
					c.log.Info("change "+cmd.State, "change", cmd.ChangeID, "reason", cmd.Reason)
				}
				continue // decide again on the new state
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		case <-t.C:
		}
	}
}

// Decide returns the next command for the active change, or nil. It is a
// pure function of the state and the time.
func (c *Controller) Decide(st *store.State, now time.Time) *store.Command {
	ch := st.ActiveChange()
	if ch == nil {
		return nil
	}
	adv := func(state, reason, phase string, nodes []string) *store.Command {
		return &store.Command{Op: store.OpAdvance, Time: now, ChangeID: ch.ID, From: ch.State, State: state, Reason: reason, Phase: phase, Nodes: nodes}
	}
	nodes := ch.Targets()
	alive := func(n string) bool { return c.cfg.Alive == nil || c.cfg.Alive(n) }
	in := func(phases ...string) []string {
		var out []string
		for _, n := range nodes {
			if slices.Contains(phases, ch.Nodes[n].Phase) {
				out = append(out, n)
			}
		}
		return out
	}
	reasons := func(ns []string) string {
		var parts []string
		for _, n := range ns {
			r := ch.Nodes[n].Reason
			if r == "" {
				r = ch.Nodes[n].Phase
			}
			parts = append(parts, n+": "+r)
		}
		return strings.Join(parts, "; ")
	}
	switch ch.State {
	case store.Proposed:
		if bad := in(store.PhaseInvalid); len(bad) > 0 {
			return adv(store.Rejected, "rejected by "+reasons(bad), "", nil)
		}
		if len(in(store.PhaseValid)) == len(nodes) {
			return adv(store.Validated, "", store.PhasePending, nodes)
		}
		for _, n := range in(store.PhaseValidating) {
			if !alive(n) {
				return adv(store.Aborted, fmt.Sprintf("target %s went down before it validated; nothing was changed", n), "", nil)
			}
		}
		if now.Sub(ch.Created) > c.cfg.ValidateTimeout {
			return adv(store.Aborted, fmt.Sprintf("no answer from %s within %s; nothing was changed", strings.Join(in(store.PhaseValidating), ", "), c.cfg.ValidateTimeout), "", nil)
		}
	case store.Validated:
		return adv(store.Applying, "", store.PhaseApplying, c.batch(ch, nodes))
	case store.Applying:
		if failed := in(store.PhaseFailed); len(failed) > 0 && ch.Policy.Atomic {
			return adv(store.RollingBack, "failed on "+reasons(failed), store.PhaseReverting, nodes)
		}
		for _, n := range in(store.PhaseApplying) {
			if !alive(n) {
				return &store.Command{Op: store.OpNode, Time: now, ChangeID: ch.ID, Node: n, Phase: store.PhaseFailed, Reason: "node went down during the apply"}
			}
			if now.Sub(ch.Nodes[n].Updated) > c.cfg.ApplyTimeout {
				return &store.Command{Op: store.OpNode, Time: now, ChangeID: ch.ID, Node: n, Phase: store.PhaseFailed,
					Reason: fmt.Sprintf("no report within %s (node down?)", c.cfg.ApplyTimeout)}
			}
		}
		if len(in(store.PhaseApplying)) > 0 {
			return nil
		}
		if pending := in(store.PhasePending); len(pending) > 0 {
			return adv("", "", store.PhaseApplying, c.batch(ch, nodes))
		}
		cmd := adv(store.Applied, "", "", nil)
		if failed := in(store.PhaseFailed); len(failed) > 0 {
			cmd.Reason = "not atomic: failed on " + reasons(failed)
		}
		cmd.ConfirmBy = now.Add(ch.Policy.ConfirmTimeout)
		return cmd
	case store.Applied:
		if ch.Policy.AutoConfirm {
			cmd := &store.Command{Op: store.OpConfirm, Time: now, ChangeID: ch.ID, Node: "leader", Reason: "auto-confirmed: every node read back the new values"}
			return cmd
		}
		if !ch.ConfirmBy.IsZero() && now.After(ch.ConfirmBy) {
			return adv(store.RollingBack, fmt.Sprintf("not confirmed by %s", ch.ConfirmBy.Format(time.RFC3339)), store.PhaseReverting, nodes)
		}
	case store.RollingBack:
		for _, n := range in(store.PhaseReverting) {
			if !alive(n) {
				return &store.Command{Op: store.OpNode, Time: now, ChangeID: ch.ID, Node: n, Phase: store.PhaseReverted,
					Reason: "node is down: its journal reverts it when it returns"}
			}
			if now.Sub(ch.Nodes[n].Updated) > c.cfg.ApplyTimeout {
				return &store.Command{Op: store.OpNode, Time: now, ChangeID: ch.ID, Node: n, Phase: store.PhaseReverted,
					Reason: fmt.Sprintf("no report within %s; the node reverts by itself when it returns", c.cfg.ApplyTimeout)}
			}
		}
		if len(in(store.PhaseReverting)) == 0 {
			return adv(store.RolledBack, ch.Reason, "", nil)
		}
	}
	return nil
}

// batch picks the next nodes to apply: all pending ones in parallel, at
// most BatchSize at a time when rolling.
func (c *Controller) batch(ch *store.Change, nodes []string) []string {
	var pending []string
	busy := 0
	for _, n := range nodes {
		switch ch.Nodes[n].Phase {
		case store.PhasePending:
			pending = append(pending, n)
		case store.PhaseApplying:
			busy++
		}
	}
	if ch.Policy.Strategy != "rolling" {
		return pending
	}
	room := max(ch.Policy.BatchSize, 1) - busy
	if room <= 0 {
		return nil
	}
	return pending[:min(room, len(pending))]
}
