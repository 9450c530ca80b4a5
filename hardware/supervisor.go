package hardware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Device states, as `edgectl devices` shows them.
const (
	StateOK           = "ok"
	StateDegraded     = "degraded"
	StateDisconnected = "disconnected"
	StateError        = "error"
)

// Drift is one setting whose actual value differs from the desired one.
type Drift struct {
	Setting string `json:"setting"`
	Desired string `json:"desired"`
	Actual  string `json:"actual"`
}

// Status is what the supervisor knows of one device.
type Status struct {
	Name   string
	Driver string
	// Where is the port or link.
	Where        string
	State        string
	InSync       bool
	Drift        []Drift
	LastError    string
	LastVerified time.Time
	// Failures counts consecutive failed attempts; BreakerOpen is set while
	// the circuit breaker holds the device off.
	Failures    int
	BreakerOpen bool
	Actual      Settings
	// Version counts desired-state changes; Verified is the version last
	// applied and verified in full, Failed the version whose last attempt
	// failed (0: none). A caller that changed the desired state waits for
	// Verified (or Failed) to reach the new Version.
	Version, Verified, Failed uint64
	// Errors counts failed reconcile attempts (open, read, apply or
	// verify) since the supervisor started; Drifts counts the times the
	// device, once at its desired settings, was found to have left them.
	Errors, Drifts uint64
}

// SupervisorConfig tunes one device's supervisor.
type SupervisorConfig struct {
	// Interval between drift checks (read-backs) of a healthy device.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure.
	MinBackoff, MaxBackoff time.Duration
	// BreakerAfter consecutive failures open the circuit breaker for
	// BreakerCooldown; then one attempt is let through (half-open).
	BreakerAfter    int
	BreakerCooldown time.Duration
	// OpTimeout bounds one open, read or apply.
	OpTimeout time.Duration
	// Observe, when set, is told of every command/answer exchange with a
	// device whose driver reports them (the serial drivers).
	Observe func(device, driver string, took time.Duration, err error)
}

// DefaultSupervisorConfig returns the defaults.
func DefaultSupervisorConfig() SupervisorConfig {
	return SupervisorConfig{
		Interval:        10 * time.Second,
		MinBackoff:      200 * time.Millisecond,
		MaxBackoff:      30 * time.Second,
		BreakerAfter:    5,
		BreakerCooldown: 30 * time.Second,
		OpTimeout:       10 * time.Second,
	}
}

// Validate checks the config.
func (c SupervisorConfig) Validate() error {
	if c.Interval <= 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff || c.BreakerAfter < 1 || c.BreakerCooldown <= 0 || c.OpTimeout <= 0 {
		return errors.New("hardware: supervisor timings must be positive, max backoff >= min backoff, breaker after >= 1")
	}
	return nil
}

// Supervisor keeps one device at its desired settings: it opens the device,
// reads it back, applies only the difference, verifies by reading again,
// reports drift and corrects it (or only reports, per on_drift), and backs
// off with a circuit breaker when the device fails. It never blocks another
// device: each has its own goroutine.
type Supervisor struct {
	cfg  SupervisorConfig
	reg  *Registry
	log  *slog.Logger
	wake chan struct{}
	// stepVer is the desired version the current step works on.
	stepVer atomic.Uint64
	// drifted: a drift was counted and the device has not been back in
	// sync since (only the step goroutine uses it).
	drifted bool

	mu      sync.Mutex
	dev     Config
	dev2    Device // the open device, for Check
	status  Status
	applied bool // the current desired settings were applied and verified once
	changed chan struct{}
}

// NewSupervisor prepares a supervisor for dev; nothing is opened until Run.
func NewSupervisor(cfg SupervisorConfig, reg *Registry, dev Config, log *slog.Logger) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !reg.Has(dev.Driver) {
		return nil, fmt.Errorf("device %s: unknown driver %q (known: %v)", dev.Name, dev.Driver, reg.Drivers())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	where := dev.Port
	if where == "" {
		where = dev.Link
	}
	return &Supervisor{
		cfg: cfg, reg: reg, log: log, wake: make(chan struct{}, 1), dev: dev,
		status:  Status{Name: dev.Name, Driver: dev.Driver, Where: where, State: StateDisconnected},
		changed: make(chan struct{}),
	}, nil
}

// Status returns a copy of the device's status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Drift = append([]Drift(nil), st.Drift...)
	if st.Actual != nil {
		st.Actual = st.Actual.Clone()
	}
	return st
}

// Changed returns a channel closed at the next status change.
func (s *Supervisor) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Check validates settings with the open device's Checker, without
// touching the hardware. Drivers' Check must be safe to call from another
// goroutine (it reads only the profile).
func (s *Supervisor) Check(settings Settings) (Settings, error) {
	s.mu.Lock()
	dev := s.dev2
	s.mu.Unlock()
	if dev == nil {
		st := s.Status()
		return nil, fmt.Errorf("device %s: not open (%s): cannot check values", st.Name, st.State)
	}
	c, ok := dev.(Checker)
	if !ok {
		return settings, nil
	}
	return c.Check(settings)
}

// Plan shows the native operations changes would perform, with the open
// device's Planner (which, like Check, must be safe from another goroutine).
func (s *Supervisor) Plan(changes Settings) ([]string, error) {
	s.mu.Lock()
	dev := s.dev2
	s.mu.Unlock()
	if dev == nil {
		st := s.Status()
		return nil, fmt.Errorf("device %s: not open (%s): cannot plan", st.Name, st.State)
	}
	p, ok := dev.(Planner)
	if !ok {
		var out []string
		for _, n := range changes.Names() {
			out = append(out, fmt.Sprintf("%s: set %s = %s", s.Status().Name, n, Format(changes[n])))
		}
		return out, nil
	}
	return p.Plan(changes)
}

// SetDesired replaces the desired settings (and on_drift); the supervisor
// reconciles at once.
func (s *Supervisor) SetDesired(settings Settings, onDrift string) {
	s.mu.Lock()
	s.dev.Settings = settings.Clone()
	s.dev.OnDrift = onDrift
	s.applied = false
	s.status.Version++
	s.mu.Unlock()
	s.Poke()
}

// Poke asks for a reconcile now.
func (s *Supervisor) Poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Supervisor) update(fn func(*Status)) {
	s.mu.Lock()
	fn(&s.status)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Run supervises the device until ctx is done, then closes it.
func (s *Supervisor) Run(ctx context.Context) error {
	var dev Device
	defer func() {
		if dev != nil {
			if err := dev.Close(); err != nil {
				s.log.Warn("close failed", "err", err)
			}
		}
	}()
	backoff := time.Duration(0)
	failures := 0
	for {
		err := s.step(ctx, &dev)
		var wait time.Duration
		if err == nil {
			failures, backoff = 0, 0
			wait = s.cfg.Interval
		} else {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			backoff = min(max(backoff*2, s.cfg.MinBackoff), s.cfg.MaxBackoff)
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/5+1))
			open := failures >= s.cfg.BreakerAfter
			if open {
				wait = max(wait, s.cfg.BreakerCooldown)
			}
			if errors.Is(err, ErrDisconnected) && dev != nil {
				// Reopen from scratch next time: the port may come back
				// under the same name.
				_ = dev.Close()
				dev = nil
				s.mu.Lock()
				s.dev2 = nil
				s.mu.Unlock()
			}
			failedVer := s.stepVer.Load()
			s.update(func(st *Status) {
				st.State = classify(err)
				st.LastError = err.Error()
				st.Failures = failures
				st.BreakerOpen = open
				st.InSync = false
				st.Failed = failedVer
				st.Errors++
			})
			if failures == 1 || open && failures == s.cfg.BreakerAfter {
				s.log.Warn("device failing", "state", classify(err), "err", err, "retry_in", wait.Round(time.Millisecond), "breaker_open", open)
			} else {
				s.log.Debug("device still failing", "err", err, "attempt", failures)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
			if failures >= s.cfg.BreakerAfter {
				// A new desired state deserves one attempt even with the
				// breaker open.
				failures = s.cfg.BreakerAfter - 1
			}
		case <-t.C:
		}
	}
}

// step opens the device if needed and reconciles it once.
func (s *Supervisor) step(ctx context.Context, devp *Device) error {
	s.mu.Lock()
	cfg := s.dev
	cfg.Settings = s.dev.Settings.Clone()
	applied := s.applied
	ver := s.status.Version
	s.mu.Unlock()
	s.stepVer.Store(ver)

	if *devp == nil {
		if obs := s.cfg.Observe; obs != nil {
			name, driver := cfg.Name, cfg.Driver
			cfg.Observe = func(took time.Duration, err error) { obs(name, driver, took, err) }
		}
		octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		dev, err := s.reg.Open(octx, cfg, s.log)
		cancel()
		if err != nil {
			return err
		}
		*devp = dev
		s.mu.Lock()
		s.dev2 = dev
		s.mu.Unlock()
		s.log.Info("device opened", "driver", cfg.Driver)
	}
	dev := *devp

	desired := cfg.Settings
	if c, ok := dev.(Checker); ok && len(desired) > 0 {
		canon, err := c.Check(desired)
		if err != nil {
			return err
		}
		desired = canon
	}
	names := desired.Names()
	actual, err := s.read(ctx, dev, names)
	if err != nil {
		return err
	}
	diff := Diff(desired, actual)
	if len(diff) > 0 && applied && !s.drifted {
		s.drifted = true
		s.update(func(st *Status) { st.Drifts++ })
	}
	correct := cfg.OnDrift != "report" || !applied
	if len(diff) > 0 && correct {
		changes := Settings{}
		for _, n := range diff {
			changes[n] = desired[n]
		}
		if applied {
			s.log.Warn("drift corrected", "settings", diff)
		}
		actx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		err := dev.Apply(actx, changes)
		cancel()
		if err != nil {
			return fmt.Errorf("apply %v: %w", diff, err)
		}
		// Verify by reading back.
		actual, err = s.read(ctx, dev, names)
		if err != nil {
			return err
		}
		diff = Diff(desired, actual)
		if len(diff) > 0 {
			err := fmt.Errorf("verify: %s did not take the value (%w)", describeDrift(desired, actual, diff), ErrRejected)
			s.setResult(desired, actual, diff, err)
			return err
		}
		s.mu.Lock()
		if settingsEqual(s.dev.Settings, cfg.Settings) {
			s.applied = true
		}
		s.mu.Unlock()
	} else if len(diff) == 0 && !applied {
		s.mu.Lock()
		if settingsEqual(s.dev.Settings, cfg.Settings) {
			s.applied = true
		}
		s.mu.Unlock()
	}
	if len(diff) == 0 {
		s.drifted = false
	}
	s.setResult(desired, actual, diff, nil)
	return nil
}

func (s *Supervisor) read(ctx context.Context, dev Device, names []string) (Settings, error) {
	if len(names) == 0 {
		return Settings{}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	actual, err := dev.Read(rctx, names)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return actual, nil
}

func (s *Supervisor) setResult(desired, actual Settings, diff []string, err error) {
	drift := make([]Drift, 0, len(diff))
	for _, n := range diff {
		drift = append(drift, Drift{Setting: n, Desired: Format(desired[n]), Actual: Format(actual[n])})
	}
	now := time.Now()
	ver := s.stepVer.Load()
	s.update(func(st *Status) {
		if len(diff) == 0 && err == nil {
			st.Verified = ver
		}
		st.Drift = drift
		st.InSync = len(diff) == 0
		st.Actual = actual.Clone()
		st.LastVerified = now
		if err == nil {
			st.State = StateOK
			st.Failures = 0
			st.BreakerOpen = false
			st.LastError = ""
		}
	})
}

func describeDrift(desired, actual Settings, diff []string) string {
	s := ""
	for i, n := range diff {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s (want %s, read %s)", n, Format(desired[n]), Format(actual[n]))
	}
	return s
}

func settingsEqual(a, b Settings) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !Equal(v, w) {
			return false
		}
	}
	return true
}

// classify maps an error to a device state.
func classify(err error) string {
	switch {
	case errors.Is(err, ErrDisconnected):
		return StateDisconnected
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrGarbage), errors.Is(err, context.DeadlineExceeded):
		return StateDegraded
	}
	return StateError
}
