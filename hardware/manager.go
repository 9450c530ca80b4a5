package hardware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"

	"edge/internal/notify"
)

// Manager runs one supervisor per device of the node's inventory and
// applies inventory changes (reload) without a restart: devices added are
// started, removed ones closed, changed ones reopened, and a change of
// desired settings alone is handed to the running supervisor.
type Manager struct {
	cfg SupervisorConfig
	reg *Registry
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context
	devs    map[string]*managed
	wg      sync.WaitGroup
	changes notify.Index
}

type managed struct {
	cfg    Config
	sup    *Supervisor
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a manager; devices start with Run and Update.
func NewManager(cfg SupervisorConfig, reg *Registry, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, reg: reg, log: log, devs: map[string]*managed{}}, nil
}

// Check validates an inventory against the registry without touching
// anything: unknown drivers and duplicate names are errors.
func (m *Manager) Check(devs []Config) error {
	var errs []error
	seen := map[string]bool{}
	for _, d := range devs {
		if seen[d.Name] {
			errs = append(errs, fmt.Errorf("device %s: listed twice", d.Name))
		}
		seen[d.Name] = true
		if !m.reg.Has(d.Driver) {
			errs = append(errs, fmt.Errorf("device %s: unknown driver %q (known: %v)", d.Name, d.Driver, m.reg.Drivers()))
		}
	}
	return errors.Join(errs...)
}

// Run starts the devices given so far and keeps the manager running until
// ctx is done; then every device is closed.
func (m *Manager) Run(ctx context.Context, devs []Config) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	if err := m.Update(devs); err != nil {
		return err
	}
	<-ctx.Done()
	m.mu.Lock()
	for _, d := range m.devs {
		d.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// Update makes the running inventory match devs.
func (m *Manager) Update(devs []Config) error {
	if err := m.Check(devs); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return errors.New("hardware: manager not running")
	}
	want := map[string]Config{}
	for _, d := range devs {
		want[d.Name] = d
	}
	for name, d := range m.devs {
		w, keep := want[name]
		if keep && sameHardware(d.cfg, w) {
			if !reflect.DeepEqual(d.cfg.Settings, w.Settings) || d.cfg.OnDrift != w.OnDrift {
				d.sup.SetDesired(w.Settings, w.OnDrift)
				d.cfg = w
				m.log.Info("device desired settings changed", "device", name)
			}
			continue
		}
		d.cancel()
		<-d.done
		delete(m.devs, name)
		if keep {
			m.log.Info("device changed; reopening", "device", name)
		} else {
			m.log.Info("device removed", "device", name)
		}
	}
	for _, name := range sortedKeys(want) {
		if _, ok := m.devs[name]; ok {
			continue
		}
		cfg := want[name]
		sup, err := NewSupervisor(m.cfg, m.reg, cfg, m.log.With("device", name))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(m.ctx)
		d := &managed{cfg: cfg, sup: sup, cancel: cancel, done: make(chan struct{})}
		m.devs[name] = d
		m.wg.Add(1)
		first := sup.Changed() // before Run: no change can be missed
		go func() {
			defer m.wg.Done()
			defer close(d.done)
			_ = sup.Run(ctx)
		}()
		go m.forward(ctx, sup, first)
	}
	m.changes.Bump()
	return nil
}

// forward turns a supervisor's status changes into manager changes.
func (m *Manager) forward(ctx context.Context, sup *Supervisor, ch <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			// Take the next channel before telling anyone, so a change
			// in between is never lost.
			ch = sup.Changed()
			m.changes.Bump()
		}
	}
}

// Changed returns a channel closed at the next change of any device.
func (m *Manager) Changed() <-chan struct{} {
	return m.changes.Changed()
}

// CheckSettings validates settings for the named device with its driver,
// without touching the hardware.
func (m *Manager) CheckSettings(device string, settings Settings) (Settings, error) {
	m.mu.Lock()
	d, ok := m.devs[device]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no device %q on this node", device)
	}
	return d.sup.Check(settings)
}

// Plan shows the native operations changes would perform on the named
// device.
func (m *Manager) Plan(device string, changes Settings) ([]string, error) {
	m.mu.Lock()
	d, ok := m.devs[device]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no device %q on this node", device)
	}
	return d.sup.Plan(changes)
}

// Wait blocks until the change index is past index or ctx is done, and
// returns the current index.
func (m *Manager) Wait(ctx context.Context, index uint64) uint64 {
	return m.changes.Wait(ctx, index)
}

// Index is the current change index.
func (m *Manager) Index() uint64 {
	n, _ := m.changes.Load()
	return n
}

// Statuses lists every device's status, sorted by name.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	sups := make([]*Supervisor, 0, len(m.devs))
	for _, name := range sortedKeys(m.devs) {
		sups = append(sups, m.devs[name].sup)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(sups))
	for _, s := range sups {
		out = append(out, s.Status())
	}
	return out
}

// sameHardware reports whether two configs address the same device the
// same way (so only desired settings differ).
func sameHardware(a, b Config) bool {
	a.Settings, b.Settings = nil, nil
	a.OnDrift, b.OnDrift = "", ""
	a.Observe, b.Observe = nil, nil
	return reflect.DeepEqual(a, b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
