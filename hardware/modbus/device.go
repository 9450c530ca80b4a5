package modbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"edge/hardware"
	"edge/hardware/serial"
)

// Defaults for what neither the device config nor the profile gives.
const (
	DefaultBaud    = 9600
	DefaultFraming = "8N1"
	DefaultTimeout = time.Second
	DefaultUnit    = 1
)

// Compile-time interface guards.
var (
	_ hardware.Device  = (*Device)(nil)
	_ hardware.Checker = (*Device)(nil)
	_ hardware.Planner = (*Device)(nil)
	_ hardware.Opener  = Open
)

// Device is a Modbus RTU device on a serial port, driven through its
// profile. Methods other than Close must not run concurrently.
type Device struct {
	prof *Profile
	unit byte
	port *serial.Port
	bus  *rtu
}

// Open opens a Modbus RTU device: cfg.Port, cfg.Profile (required),
// cfg.Unit (1-247; default 1), cfg.Baud, cfg.Framing and cfg.Timeout
// (defaults from the profile, else 9600, 8N1, 1s). The port is opened now,
// so that a wrong path or a port in use shows at once; the device itself
// is first asked by Read or Apply.
func Open(ctx context.Context, cfg hardware.Config, log *slog.Logger) (hardware.Device, error) {
	d, err := OpenDevice(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// OpenDevice is Open returning the concrete type.
func OpenDevice(_ context.Context, cfg hardware.Config, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Profile == "" {
		return nil, fmt.Errorf("modbus %s: no profile", cfg.Name)
	}
	if cfg.Port == "" {
		return nil, fmt.Errorf("modbus %s: no port", cfg.Name)
	}
	unit := cmp.Or(cfg.Unit, DefaultUnit)
	if unit < 1 || unit > MaxUnit {
		return nil, fmt.Errorf("modbus %s: unit %d out of range 1-%d", cfg.Name, cfg.Unit, MaxUnit)
	}
	prof, err := LoadProfile(cfg.Profile)
	if err != nil {
		return nil, err
	}
	sc := serial.Config{
		Path:         cfg.Port,
		Baud:         cmp.Or(cfg.Baud, prof.Baud, DefaultBaud),
		Framing:      cmp.Or(cfg.Framing, prof.Framing, DefaultFraming),
		WriteTimeout: time.Second,
	}
	timeout := cmp.Or(cfg.Timeout, prof.Timeout, DefaultTimeout)
	p, err := serial.Open(sc)
	if err != nil {
		return nil, err
	}
	bus := newRTU(p, sc, timeout, log)
	bus.observe = cfg.Observe
	return &Device{
		prof: prof,
		unit: byte(unit),
		port: p,
		bus:  bus,
	}, nil
}

// Profile returns the device's profile.
func (d *Device) Profile() *Profile { return d.prof }

// Close closes the port; it is safe to call twice.
func (d *Device) Close() error { return d.port.Close() }

// exchange runs one request, naming the unit and the request in errors:
// "modbus unit 1: write 0x0010: exception 2 (illegal data address)".
func (d *Device) exchange(ctx context.Context, req Request) ([]uint16, error) {
	req.Unit = d.unit
	regs, err := d.bus.do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("modbus unit %d: %s: %w", d.unit, req, err)
	}
	return regs, nil
}

// settings returns the named settings (all of them for none), or an
// error wrapping hardware.ErrInvalid for unknown names.
func (d *Device) settings(names []string) ([]*Setting, error) {
	if len(names) == 0 {
		names = d.prof.Names()
	}
	out := make([]*Setting, 0, len(names))
	var errs []error
	seen := map[string]bool{}
	for _, n := range names {
		s, ok := d.prof.Settings[n]
		if !ok {
			errs = append(errs, d.unknown(n))
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

func (d *Device) unknown(name string) error {
	return fmt.Errorf("%s: %w: unknown setting (profile %s has %s)", name, hardware.ErrInvalid, d.prof.File, strings.Join(d.prof.Names(), ", "))
}

// Check validates desired values without touching the device and returns
// them in canonical form. Every problem is reported, each naming its
// setting and wrapping hardware.ErrInvalid.
func (d *Device) Check(desired hardware.Settings) (hardware.Settings, error) {
	out := make(hardware.Settings, len(desired))
	var errs []error
	for _, name := range desired.Names() {
		s, ok := d.prof.Settings[name]
		if !ok {
			errs = append(errs, d.unknown(name))
			continue
		}
		if !s.Writable() {
			errs = append(errs, s.invalid("read-only (%s register 0x%04x)", s.Table, s.Address))
			continue
		}
		v, err := s.Canonical(desired[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// write is one register write of a plan.
type write struct {
	setting *Setting
	req     Request
}

func (w write) String() string {
	vals := make([]string, len(w.req.Values))
	for i, v := range w.req.Values {
		vals[i] = fmt.Sprint(v)
	}
	return fmt.Sprintf("write 0x%04x = %s", w.req.Address, strings.Join(vals, ", "))
}

// plan checks changes and turns them into register writes, in register
// order: function 06 for one register, 16 for two (or always 16 with
// write_multiple).
func (d *Device) plan(changes hardware.Settings) ([]write, error) {
	var (
		out  []write
		errs []error
	)
	for _, name := range changes.Names() {
		s, ok := d.prof.Settings[name]
		if !ok {
			errs = append(errs, d.unknown(name))
			continue
		}
		if !s.Writable() {
			errs = append(errs, s.invalid("read-only (%s register 0x%04x)", s.Table, s.Address))
			continue
		}
		regs, err := s.Encode(changes[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		req := Request{Function: WriteMultipleRegisters, Address: s.Address, Values: regs}
		if len(regs) == 1 && !d.prof.WriteMultiple {
			req.Function = WriteSingleRegister
		}
		out = append(out, write{setting: s, req: req})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b write) int { return cmp.Compare(a.req.Address, b.req.Address) })
	return out, nil
}

// Plan returns the register writes Apply would make, one line each:
// "write 0x0010 = 5400" (function 06), "write 0x0020 = 1, 34464" (function
// 16, from 0x0020 on). Register values are shown as sent, unsigned.
func (d *Device) Plan(changes hardware.Settings) ([]string, error) {
	writes, err := d.plan(changes)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(writes))
	for i, w := range writes {
		out[i] = w.String()
	}
	return out, nil
}

// Apply writes the given settings, and only those, one register write
// each, in register order. Nothing is written if any value is invalid; a
// failing write stops the rest.
func (d *Device) Apply(ctx context.Context, changes hardware.Settings) error {
	writes, err := d.plan(changes)
	if err != nil {
		return err
	}
	for _, w := range writes {
		if _, err := d.exchange(ctx, w.req); err != nil {
			return fmt.Errorf("%s: %w", w.setting.Name, err)
		}
	}
	return nil
}

// readGroup is a run of contiguous registers of one table, read at once.
type readGroup struct {
	table    Table
	start    uint16
	count    int
	settings []*Setting
}

// groups packs settings into as few reads as possible: contiguous
// registers of one table, at most max registers each. Registers between
// settings are never read (the device may refuse them).
func groups(settings []*Setting, max int) []readGroup {
	sorted := slices.Clone(settings)
	slices.SortFunc(sorted, func(a, b *Setting) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Address, b.Address))
	})
	var out []readGroup
	for _, s := range sorted {
		n := s.Registers()
		if k := len(out) - 1; k >= 0 {
			g := &out[k]
			if g.table == s.Table && int(g.start)+g.count == int(s.Address) && g.count+n <= max {
				g.count += n
				g.settings = append(g.settings, s)
				continue
			}
		}
		out = append(out, readGroup{table: s.Table, start: s.Address, count: n, settings: []*Setting{s}})
	}
	return out
}

// Read reads the named settings (all of them when names is empty), with as
// few reads as the register layout allows: function 03 for holding and 04
// for input registers.
func (d *Device) Read(ctx context.Context, names []string) (hardware.Settings, error) {
	settings, err := d.settings(names)
	if err != nil {
		return nil, err
	}
	out := make(hardware.Settings, len(settings))
	for _, g := range groups(settings, d.prof.MaxRead) {
		fn := ReadHoldingRegisters
		if g.table == Input {
			fn = ReadInputRegisters
		}
		regs, err := d.exchange(ctx, Request{Function: fn, Address: g.start, Count: uint16(g.count)})
		if err != nil {
			return nil, err
		}
		for _, s := range g.settings {
			off := int(s.Address - g.start)
			out[s.Name] = s.Decode(regs[off : off+s.Registers()])
		}
	}
	return out, nil
}
