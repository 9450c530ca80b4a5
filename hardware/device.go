package hardware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"time"
)

// Settings are a device's values by setting name. A value is one of string,
// bool, int64, float64 or []string, in the canonical form its driver's
// Check returns (units stripped, scaled, enums in profile case, lists
// sorted), so that desired and actual compare with Equal.
type Settings map[string]any

// Names returns the setting names, sorted.
func (s Settings) Names() []string {
	return slices.Sorted(maps.Keys(s))
}

// Clone copies s (lists included).
func (s Settings) Clone() Settings {
	out := make(Settings, len(s))
	for k, v := range s {
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[k] = v
	}
	return out
}

// Equal compares two canonical values. Numbers compare across int64 and
// float64, with a relative tolerance of 1e-9 for float rounding.
func Equal(a, b any) bool {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum || bNum {
		if !aNum || !bNum {
			return false
		}
		if fa == fb {
			return true
		}
		return math.Abs(fa-fb) <= 1e-9*math.Max(math.Abs(fa), math.Abs(fb))
	}
	switch av := a.(type) {
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case []string:
		bv, ok := b.([]string)
		return ok && slices.Equal(av, bv)
	case nil:
		return b == nil
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// Format shows a value the way an operator wrote it.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		return fmt.Sprintf("%g", x)
	case []string:
		s := "["
		for i, e := range x {
			if i > 0 {
				s += ", "
			}
			s += e
		}
		return s + "]"
	}
	return fmt.Sprint(v)
}

// Diff returns the desired settings whose actual value differs (or is
// unknown), sorted by name.
func Diff(desired, actual Settings) []string {
	var out []string
	for name, want := range desired {
		got, ok := actual[name]
		if !ok || !Equal(want, got) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Device is one piece of hardware on this node, reached through its driver.
// Methods are called from one goroutine at a time (the device's
// supervisor).
type Device interface {
	// Read returns the actual values of the named settings.
	Read(ctx context.Context, names []string) (Settings, error)
	// Apply sets the given settings. The reconciler reads them back to
	// verify; Apply need not.
	Apply(ctx context.Context, changes Settings) error
	// Close releases the port or handle. It is safe to call twice.
	Close() error
}

// Checker is implemented by devices that can tell, without touching the
// hardware, whether desired values are acceptable. Check returns them in
// canonical form, or an error wrapping ErrInvalid naming the setting.
type Checker interface {
	Check(desired Settings) (Settings, error)
}

// Planner is implemented by devices that can show the native operations a
// change would perform (":FREQ 3550MHZ", "write 0x0010 = 5400",
// "ip link set eth1 mtu 9000"), for dry runs.
type Planner interface {
	Plan(changes Settings) ([]string, error)
}

// Errors that drivers wrap, so the supervisor can tell a device that is gone
// from one that answered badly.
var (
	// ErrDisconnected: the port or link is missing, unplugged or closed.
	ErrDisconnected = errors.New("disconnected")
	// ErrTimeout: no (complete) answer in time.
	ErrTimeout = errors.New("timeout")
	// ErrGarbage: an answer that cannot be understood.
	ErrGarbage = errors.New("garbage answer")
	// ErrRejected: the device answered with an error (ERROR, +CME ERROR,
	// an SCPI error queue entry, a Modbus exception).
	ErrRejected = errors.New("device refused")
	// ErrInvalid: an unknown setting or a value the device cannot take.
	ErrInvalid = errors.New("invalid setting")
	// ErrNotSupported: the device or kernel lacks the feature.
	ErrNotSupported = errors.New("not supported")
)

// Config is one device of the node's inventory.
type Config struct {
	Name    string
	Driver  string
	Port    string // serial port, for serial drivers
	Link    string // network link, for netlink
	Profile string // profile file, for profile-driven drivers
	Baud    int
	// Framing is data bits, parity and stop bits: "8N1" (default), "7E1"...
	Framing string
	// Unit is the Modbus unit (slave) id.
	Unit int
	// Timeout bounds one exchange with the device.
	Timeout time.Duration
	// OnDrift is "correct" (default) or "report".
	OnDrift string
	// Settings are the desired values.
	Settings Settings
	// Options holds driver-specific keys (for example a simulator's model).
	Options map[string]string
	// Observe, when set, is told of every command/answer exchange a serial
	// driver has with the device. The supervisor sets it from
	// SupervisorConfig.Observe when it opens the device; it never comes
	// from the node config.
	Observe ExchangeObserver
}

// ExchangeObserver is told how long one command/answer exchange with a
// device took, from sending the command to the end of its answer, and how
// it ended: nil, or an error wrapping ErrTimeout, ErrRejected, ErrGarbage,
// ErrDisconnected... It runs on the device's goroutine and must be quick.
type ExchangeObserver func(took time.Duration, err error)

// Opener opens a device of one driver.
type Opener func(ctx context.Context, cfg Config, log *slog.Logger) (Device, error)

// Registry maps driver names to openers. Drivers are registered explicitly
// by the daemon; there is no init() magic.
type Registry struct {
	openers map[string]Opener
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{openers: map[string]Opener{}} }

// Register adds a driver; registering a name twice panics (a wiring bug).
func (r *Registry) Register(driver string, open Opener) {
	if _, dup := r.openers[driver]; dup {
		panic("hardware: driver " + driver + " registered twice")
	}
	r.openers[driver] = open
}

// Drivers lists the registered driver names, sorted.
func (r *Registry) Drivers() []string { return slices.Sorted(maps.Keys(r.openers)) }

// Has reports whether driver is registered.
func (r *Registry) Has(driver string) bool { _, ok := r.openers[driver]; return ok }

// Open opens cfg's device with its driver.
func (r *Registry) Open(ctx context.Context, cfg Config, log *slog.Logger) (Device, error) {
	open, ok := r.openers[cfg.Driver]
	if !ok {
		return nil, fmt.Errorf("device %s: unknown driver %q (known: %v)", cfg.Name, cfg.Driver, r.Drivers())
	}
	return open(ctx, cfg, log)
}
