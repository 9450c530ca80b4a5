package sim

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"edge/hardware"
)

// Memory is an in-memory simulated device: a set of settings with kinds and
// ranges, and faults on demand. It is the `sim` driver.
type Memory struct {
	name string

	mu      sync.Mutex
	values  hardware.Settings
	specs   map[string]Spec
	faults  Faults
	closed  bool
	applied []hardware.Settings
}

// Spec describes one simulated setting.
type Spec struct {
	Kind     string // "number", "int", "bool", "string", "enum", "list"
	Min, Max float64
	Values   []string // for enum
}

// Faults are injected failures; zero means none.
type Faults struct {
	// Latency delays every operation.
	Latency time.Duration
	// Disconnected makes every operation fail with ErrDisconnected.
	Disconnected bool
	// Timeout makes every operation fail with ErrTimeout.
	Timeout bool
	// Garbage makes reads fail with ErrGarbage.
	Garbage bool
	// Reject makes applies fail with ErrRejected and this message.
	Reject string
	// Ignore makes applies succeed without changing anything (a device
	// that acknowledges and does nothing: caught by the read-back).
	Ignore bool
}

// Models are the built-in simulated device models, by name.
var Models = map[string]map[string]Spec{
	"radio": {
		"frequency_mhz": {Kind: "number", Min: 3300, Max: 3800},
		"power_dbm":     {Kind: "number", Min: -10, Max: 46},
		"enabled":       {Kind: "bool"},
		"mode":          {Kind: "enum", Values: []string{"auto", "manual"}},
	},
	"rectifier": {
		"float_voltage": {Kind: "number", Min: 40, Max: 58},
		"current_limit": {Kind: "number", Min: 0, Max: 200},
		"equalize":      {Kind: "bool"},
	},
	"gnss": {
		"constellations": {Kind: "list"},
		"elevation_mask": {Kind: "int", Min: 0, Max: 90},
	},
	"switch": {
		"mtu":   {Kind: "int", Min: 68, Max: 9216},
		"vlans": {Kind: "list"},
	},
}

// NewMemory returns a simulated device of model (a key of Models).
func NewMemory(name, model string) (*Memory, error) {
	specs, ok := Models[model]
	if !ok {
		return nil, fmt.Errorf("sim %s: unknown model %q", name, model)
	}
	m := &Memory{name: name, values: hardware.Settings{}, specs: specs}
	for k, sp := range specs {
		switch sp.Kind {
		case "number":
			m.values[k] = sp.Min
		case "int":
			m.values[k] = int64(sp.Min)
		case "bool":
			m.values[k] = false
		case "enum":
			m.values[k] = sp.Values[0]
		case "list":
			m.values[k] = []string{}
		default:
			m.values[k] = ""
		}
	}
	return m, nil
}

// OpenMemory is the `sim` driver's opener: options.model picks the model
// (default radio); options.reject_apply: "true" makes the device refuse
// every apply (while values still pass Check), to rehearse a failing
// device; options.latency (a duration) slows every operation.
func OpenMemory(_ context.Context, cfg hardware.Config, _ *slog.Logger) (hardware.Device, error) {
	model := cfg.Options["model"]
	if model == "" {
		model = "radio"
	}
	m, err := NewMemory(cfg.Name, model)
	if err != nil {
		return nil, err
	}
	var f Faults
	if cfg.Options["reject_apply"] == "true" {
		f.Reject = "simulated refusal (options.reject_apply)"
	}
	if l := cfg.Options["latency"]; l != "" {
		d, err := time.ParseDuration(l)
		if err != nil {
			return nil, fmt.Errorf("sim %s: options.latency: %w", cfg.Name, err)
		}
		f.Latency = d
	}
	m.SetFaults(f)
	return m, nil
}

var (
	_ hardware.Device  = (*Memory)(nil)
	_ hardware.Checker = (*Memory)(nil)
	_ hardware.Planner = (*Memory)(nil)
)

// SetFaults replaces the injected faults.
func (m *Memory) SetFaults(f Faults) {
	m.mu.Lock()
	m.faults = f
	m.mu.Unlock()
}

// Set changes a value behind the driver's back (drift).
func (m *Memory) Set(name string, v any) {
	m.mu.Lock()
	m.values[name] = v
	m.mu.Unlock()
}

// Get returns a value as the device holds it.
func (m *Memory) Get(name string) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[name]
}

// Applied returns every change applied so far.
func (m *Memory) Applied() []hardware.Settings {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.applied)
}

func (m *Memory) enter(ctx context.Context) (Faults, error) {
	m.mu.Lock()
	f, closed := m.faults, m.closed
	m.mu.Unlock()
	if closed {
		return f, fmt.Errorf("sim %s: %w: closed", m.name, hardware.ErrDisconnected)
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return f, fmt.Errorf("sim %s: %w", m.name, hardware.ErrTimeout)
		}
	}
	switch {
	case f.Disconnected:
		return f, fmt.Errorf("sim %s: %w: unplugged", m.name, hardware.ErrDisconnected)
	case f.Timeout:
		return f, fmt.Errorf("sim %s: %w: no answer", m.name, hardware.ErrTimeout)
	}
	return f, nil
}

// Read returns the named values.
func (m *Memory) Read(ctx context.Context, names []string) (hardware.Settings, error) {
	f, err := m.enter(ctx)
	if err != nil {
		return nil, err
	}
	if f.Garbage {
		return nil, fmt.Errorf("sim %s: %w: %q", m.name, hardware.ErrGarbage, "\x00\xff?")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := hardware.Settings{}
	for _, n := range names {
		v, ok := m.values[n]
		if !ok {
			return nil, fmt.Errorf("sim %s: %w: no setting %q", m.name, hardware.ErrInvalid, n)
		}
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[n] = v
	}
	return out, nil
}

// Apply sets values.
func (m *Memory) Apply(ctx context.Context, changes hardware.Settings) error {
	f, err := m.enter(ctx)
	if err != nil {
		return err
	}
	if f.Reject != "" {
		return fmt.Errorf("sim %s: %w: %s", m.name, hardware.ErrRejected, f.Reject)
	}
	canon, err := m.Check(changes)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = append(m.applied, canon.Clone())
	if f.Ignore {
		return nil
	}
	for k, v := range canon {
		m.values[k] = v
	}
	return nil
}

// Check validates and canonicalizes desired values.
func (m *Memory) Check(desired hardware.Settings) (hardware.Settings, error) {
	out := hardware.Settings{}
	for _, name := range desired.Names() {
		v := desired[name]
		sp, ok := m.specs[name]
		if !ok {
			return nil, fmt.Errorf("sim %s: %w: unknown setting %q", m.name, hardware.ErrInvalid, name)
		}
		c, err := canonical(sp, v)
		if err != nil {
			return nil, fmt.Errorf("sim %s: %w: %s: %v", m.name, hardware.ErrInvalid, name, err)
		}
		out[name] = c
	}
	return out, nil
}

func canonical(sp Spec, v any) (any, error) {
	switch sp.Kind {
	case "number", "int":
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		case int:
			f = float64(x)
		case string:
			p, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("want a number, got %q", x)
			}
			f = p
		default:
			return nil, fmt.Errorf("want a number, got %v", v)
		}
		if f < sp.Min || f > sp.Max {
			return nil, fmt.Errorf("%g out of range %g-%g", f, sp.Min, sp.Max)
		}
		if sp.Kind == "int" {
			if f != float64(int64(f)) {
				return nil, fmt.Errorf("want a whole number, got %g", f)
			}
			return int64(f), nil
		}
		return f, nil
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %v", v)
		}
		return b, nil
	case "enum":
		s, ok := v.(string)
		if !ok || !slices.Contains(sp.Values, s) {
			return nil, fmt.Errorf("want one of %v, got %v", sp.Values, v)
		}
		return s, nil
	case "list":
		l, ok := v.([]string)
		if !ok {
			return nil, fmt.Errorf("want a list, got %v", v)
		}
		l = slices.Clone(l)
		slices.Sort(l)
		return l, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, got %v", v)
	}
	return s, nil
}

// Plan shows the operations a change would perform.
func (m *Memory) Plan(changes hardware.Settings) ([]string, error) {
	canon, err := m.Check(changes)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range canon.Names() {
		out = append(out, fmt.Sprintf("set %s = %s", n, hardware.Format(canon[n])))
	}
	return out, nil
}

// Close marks the device closed.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// Reopen makes a closed device usable again (for tests that reopen).
func (m *Memory) Reopen() {
	m.mu.Lock()
	m.closed = false
	m.mu.Unlock()
}
