package change

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"edge/coord/site"
	"edge/coord/store"
	"edge/hardware"
)

// Replica is the local copy of the replicated state.
type Replica interface {
	State() *store.State
	Changed() <-chan struct{}
}

// Applier commits a command through the leader.
type Applier interface {
	Apply(ctx context.Context, cmd store.Command) (store.Result, error)
}

// Hardware is what the agent needs of the node's device manager.
type Hardware interface {
	Update(devs []hardware.Config) error
	CheckSettings(device string, settings hardware.Settings) (hardware.Settings, error)
	Statuses() []hardware.Status
	Changed() <-chan struct{}
}

// AgentConfig configures an Agent.
type AgentConfig struct {
	Node string
	// Base is the node's own device inventory (node config): the site
	// document's settings are laid over it.
	Base []hardware.Config
	// Grace is added to a change's confirm deadline before the node reverts
	// by itself, so the leader's decision normally comes first.
	Grace time.Duration
	// Tick bounds how long the agent waits without an event.
	Tick time.Duration
	// Connected tells whether a raft leader is reachable; nil: always. A
	// node cut off from the leader reverts a change it applied once the
	// change's confirm time has passed, even if it never saw APPLIED.
	Connected func() bool
	Logger    *slog.Logger
}

// Agent is the node side of site changes.
type Agent struct {
	cfg     AgentConfig
	log     *slog.Logger
	replica Replica
	apply   Applier
	hw      Hardware
	journal *Journal

	baseCh   chan []hardware.Config
	cur      *Entry            // what the hardware is being driven to
	want     map[string]uint64 // device -> version that must verify
	reported map[string]string // change id -> last phase reported
	docs     map[uint64]map[string]hardware.Settings
	// holdUntil: a restored journal holds the hardware until the replica's
	// index passes it.
	holdUntil uint64
	// appliedAt: when this node first drove a change's generation (its
	// fallback confirm clock while it has not seen APPLIED).
	appliedAt map[string]time.Time
	// reverted: changes this node reverted by its own timer.
	reverted map[string]bool
}

// NewAgent returns an agent; it acts only in Run.
func NewAgent(cfg AgentConfig, replica Replica, apply Applier, hw Hardware, journal *Journal) *Agent {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Second
	}
	return &Agent{cfg: cfg, log: log, replica: replica, apply: apply, hw: hw, journal: journal, baseCh: make(chan []hardware.Config, 1),
		reported: map[string]string{}, docs: map[uint64]map[string]hardware.Settings{},
		appliedAt: map[string]time.Time{}, reverted: map[string]bool{}}
}

// SetBase replaces the node's own inventory (after a reload); the agent
// drives the devices again with the site config laid over it.
func (a *Agent) SetBase(base []hardware.Config) {
	select {
	case <-a.baseCh:
	default:
	}
	a.baseCh <- base
}

// Run drives the node until ctx is done. It first restores the journal: a
// node that crashed mid-change finishes or restores it from there, before
// (and without) hearing from the cluster.
func (a *Agent) Run(ctx context.Context) error {
	if e, err := a.journal.Load(); err != nil {
		a.log.Error("journal unreadable; starting from the node config", "err", err)
	} else if e != nil {
		a.holdUntil = e.Index
		a.log.Info("journal found: restoring", "gen", e.Gen, "change", e.ChangeID)
		if e.ChangeID != "" && e.Gen != e.Base {
			// The change was still in progress when this node stopped: restore
			// the last confirmed settings; the replica, once caught up, says
			// whether to apply the change again.
			a.log.Info("a change was in progress: back to the confirmed generation until the site says more", "change", e.ChangeID, "to_gen", e.Base)
			a.drive(&Entry{Gen: e.Base, ChangeID: e.ChangeID, Base: e.Base, Desired: e.BaseDesired, Index: e.Index})
		} else {
			a.drive(e)
		}
	}
	t := time.NewTimer(a.cfg.Tick)
	defer t.Stop()
	for {
		st := a.replica.State()
		stCh, hwCh := a.replica.Changed(), a.hw.Changed()
		a.step(ctx, st)
		// Ticks matter only while something is pending (a change, a
		// confirm timer); otherwise the events wake the agent.
		wait := a.cfg.Tick
		if st.Active == "" && (a.cur == nil || a.cur.ConfirmBy.IsZero()) {
			wait = 10 * a.cfg.Tick
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case base := <-a.baseCh:
			a.cfg.Base = base
			if a.cur != nil {
				e := *a.cur
				a.cur = nil
				a.drive(&e)
			}
		case <-stCh:
		case <-hwCh:
		case <-t.C:
		}
	}
}

// overlay is the site document's settings of generation gen for this node.
func (a *Agent) overlay(st *store.State, gen uint64) (map[string]hardware.Settings, error) {
	if gen == 0 {
		return map[string]hardware.Settings{}, nil
	}
	if o, ok := a.docs[gen]; ok {
		return o, nil
	}
	d, ok := st.Docs[gen]
	if !ok {
		return nil, fmt.Errorf("generation %d is not in this node's replica", gen)
	}
	if len(d.Raw) == 0 {
		return map[string]hardware.Settings{}, nil // a rollback to "no site config"
	}
	doc, err := site.Parse(d.File, d.Raw)
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", gen, err)
	}
	desired, _, err := doc.Resolve([]string{a.cfg.Node})
	if err != nil {
		return nil, err
	}
	o := desired[a.cfg.Node]
	if o == nil {
		o = map[string]hardware.Settings{}
	}
	if len(a.docs) > 8 {
		clear(a.docs)
	}
	a.docs[gen] = o
	return o, nil
}

// configs lays an overlay over the node's inventory.
func (a *Agent) configs(overlay map[string]hardware.Settings) ([]hardware.Config, error) {
	var out []hardware.Config
	seen := map[string]bool{}
	for _, d := range a.cfg.Base {
		c := d
		s := d.Settings.Clone()
		if s == nil {
			s = hardware.Settings{}
		}
		maps.Copy(s, overlay[d.Name])
		c.Settings = s
		out = append(out, c)
		seen[d.Name] = true
	}
	var unknown []string
	for name := range overlay {
		if !seen[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return out, fmt.Errorf("node %s has no device %s", a.cfg.Node, strings.Join(unknown, ", "))
	}
	return out, nil
}

// drive puts the hardware on e (journal first).
func (a *Agent) drive(e *Entry) {
	if a.cur != nil && a.cur.Gen == e.Gen && a.cur.ChangeID == e.ChangeID && a.cur.ConfirmBy.Equal(e.ConfirmBy) {
		return
	}
	e.Written = time.Now().UTC()
	if err := a.journal.Save(e); err != nil {
		a.log.Error("journal write failed; applying anyway", "err", err)
	}
	cfgs, err := a.configs(e.Desired)
	if err != nil {
		a.log.Error("generation does not fit this node", "gen", e.Gen, "err", err)
	}
	before := versions(a.hw.Statuses())
	if err := a.hw.Update(cfgs); err != nil {
		a.log.Error("devices: update", "err", err)
	}
	after := versions(a.hw.Statuses())
	a.want = map[string]uint64{}
	for name, v := range after {
		if v != before[name] || a.cur == nil {
			a.want[name] = v
		}
	}
	a.cur = e
	a.log.Info("driving hardware", "gen", e.Gen, "change", e.ChangeID)
}

func versions(sts []hardware.Status) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range sts {
		out[s.Name] = s.Version
	}
	return out
}

// progress tells whether the devices changed by the last drive verified:
// done, or failed with the reason.
func (a *Agent) progress() (done bool, failure string) {
	sts := a.hw.Statuses()
	done = true
	for _, s := range sts {
		v, ok := a.want[s.Name]
		if !ok {
			continue
		}
		switch {
		case s.Verified >= v:
		case s.Failed >= v:
			return false, fmt.Sprintf("%s: %s", s.Name, s.LastError)
		default:
			done = false
		}
	}
	return done, ""
}

func (a *Agent) step(ctx context.Context, st *store.State) {
	// A restored journal holds the hardware until the replica has caught up
	// with what this node knew when it wrote it.
	if st.Index < a.holdUntil {
		a.checkConfirmTimer(nil)
		return
	}
	gen, c := st.DesiredGen(a.cfg.Node)
	if err := a.follow(st, gen, c); err != nil {
		a.log.Error("cannot follow the site config", "gen", gen, "err", err)
	}
	a.checkConfirmTimer(st)
	if c := st.ActiveChange(); c != nil {
		a.participate(ctx, st, c)
	}
}

// follow drives the hardware to generation gen.
func (a *Agent) follow(st *store.State, gen uint64, c *store.Change) error {
	// Reverted by this node's own timer: stay there, unless the site still
	// wants the change and its confirm time is ahead (the node was only
	// slow to hear of it).
	if c != nil && a.reverted[c.ID] && gen == c.Gen {
		if !(c.State == store.Applied && time.Now().Before(c.ConfirmBy) && a.connected()) {
			return nil
		}
		delete(a.reverted, c.ID)
	}
	o, err := a.overlay(st, gen)
	if err != nil {
		return err
	}
	e := &Entry{Gen: gen, Desired: o, Index: st.Index}
	if c != nil {
		e.ChangeID, e.Base = c.ID, c.Base
		switch {
		case c.State == store.Applied && gen == c.Gen:
			e.ConfirmBy = c.ConfirmBy
		case gen == c.Gen:
			// Not APPLIED yet as far as this node knows: its own clock
			// gives the confirm time, used only if it loses the leader.
			at, ok := a.appliedAt[c.ID]
			if !ok {
				at = time.Now().UTC().Truncate(time.Second)
				a.appliedAt[c.ID] = at
				if len(a.appliedAt) > 64 {
					clear(a.appliedAt)
					a.appliedAt[c.ID] = at
				}
			}
			e.ConfirmBy = at.Add(c.Policy.ConfirmTimeout)
		}
		if gen == c.Gen {
			if b, err := a.overlay(st, c.Base); err == nil {
				e.BaseDesired = b
			}
		}
	}
	a.drive(e)
	return nil
}

// checkConfirmTimer reverts a tentative generation whose confirm deadline
// passed, even without a leader (a partitioned node keeps the last
// confirmed generation on its hardware).
func (a *Agent) checkConfirmTimer(st *store.State) {
	e := a.cur
	if e == nil || e.ConfirmBy.IsZero() || time.Now().Before(e.ConfirmBy.Add(a.cfg.Grace)) {
		return
	}
	if st != nil {
		if c := st.Change(e.ChangeID); c != nil && c.State == store.Confirmed {
			return
		}
	}
	if e.Gen == e.Base {
		return // reverted already
	}
	if st != nil {
		if c := st.Change(e.ChangeID); c != nil && c.State != store.Applied && a.connected() {
			// Still applying with a leader in reach: the leader decides.
			return
		}
	}
	a.reverted[e.ChangeID] = true
	a.log.Warn("change not confirmed in time: reverting this node by itself", "change", e.ChangeID, "to_gen", e.Base)
	a.drive(&Entry{Gen: e.Base, ChangeID: e.ChangeID, Base: e.Base, Desired: e.BaseDesired, ConfirmBy: e.ConfirmBy})
}

func (a *Agent) connected() bool { return a.cfg.Connected == nil || a.cfg.Connected() }

// participate validates and reports progress in the active change.
func (a *Agent) participate(ctx context.Context, st *store.State, c *store.Change) {
	p, ok := c.Nodes[a.cfg.Node]
	if !ok {
		return
	}
	var phase, reason string
	switch {
	case c.State == store.Proposed && p.Phase == store.PhaseValidating:
		phase, reason = store.PhaseValid, ""
		if err := a.validate(st, c); err != nil {
			phase, reason = store.PhaseInvalid, err.Error()
		}
	case c.State == store.Applying && p.Phase == store.PhaseApplying:
		done, failure := a.progress()
		switch {
		case failure != "":
			phase, reason = store.PhaseFailed, failure
		case done:
			phase = store.PhaseApplied
		}
	case c.State == store.RollingBack && p.Phase == store.PhaseReverting:
		done, failure := a.progress()
		switch {
		case failure != "":
			phase, reason = store.PhaseReverted, "revert incomplete: "+failure
		case done:
			phase = store.PhaseReverted
		}
	}
	if phase == "" || a.reported[c.ID] == c.State+"/"+phase {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.apply.Apply(rctx, store.Command{Op: store.OpNode, Time: time.Now().UTC(), ChangeID: c.ID, Node: a.cfg.Node, Phase: phase, Reason: reason})
	if errors.Is(err, store.ErrBadCommand) {
		// The change moved on (or ended) meanwhile: nothing to retry.
		a.log.Debug("report no longer needed", "change", c.ID, "phase", phase, "err", err)
	} else if err != nil {
		a.log.Warn("report failed; will retry", "change", c.ID, "phase", phase, "err", err)
		return
	}
	a.reported[c.ID] = c.State + "/" + phase
	if len(a.reported) > 64 {
		clear(a.reported)
	}
}

// validate asks this node's drivers whether they take the change's values.
func (a *Agent) validate(st *store.State, c *store.Change) error {
	o, err := a.overlay(st, c.Gen)
	if err != nil {
		return err
	}
	cfgs, err := a.configs(o)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range cfgs {
		if _, touched := o[d.Name]; !touched {
			continue
		}
		if _, err := a.hw.CheckSettings(d.Name, d.Settings); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}
