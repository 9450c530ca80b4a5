package line

import (
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

// DefaultTimeout bounds one exchange when neither the device inventory nor
// the profile says.
const DefaultTimeout = 2 * time.Second

// ErrWrongDevice: the identity query was answered, by another model than
// the profile's.
var ErrWrongDevice = errors.New("wrong device")

// Compile-time interface guards.
var (
	_ hardware.Opener  = Open
	_ hardware.Device  = (*Device)(nil)
	_ hardware.Checker = (*Device)(nil)
	_ hardware.Planner = (*Device)(nil)
)

// Device is a line-protocol device on a serial port, driven by a profile.
// Its methods are called from one goroutine at a time; Close may be called
// from anywhere and interrupts an exchange in progress.
type Device struct {
	prof    *Profile
	port    *serial.Port
	path    string
	timeout time.Duration
	log     *slog.Logger
	observe hardware.ExchangeObserver // nil: nobody listens

	// written holds the last value applied to each write-only setting
	// (one without a query), forgotten when the device goes away.
	written hardware.Settings
	// hello: init, identify and drain the error queue before the next
	// command (after open and after a disconnect).
	hello bool
	// resync: the last exchange failed half-way; an answer may still be
	// on its way and must not be taken for the next one's.
	resync bool
	// last is the command sent before, whose echo may still arrive.
	last string
}

// Open opens a line-protocol device: cfg.Port at cfg.Baud and cfg.Framing
// (defaults: the profile's, then 9600 8N1), cfg.Profile the profile file,
// cfg.Timeout per exchange (default: the profile's, then 2s). It sends the
// profile's init commands and checks the identity before returning.
func Open(ctx context.Context, cfg hardware.Config, log *slog.Logger) (hardware.Device, error) {
	if cfg.Profile == "" {
		return nil, fmt.Errorf("line %s: no profile", cfg.Port)
	}
	prof, err := LoadProfile(cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("line %s: %w", cfg.Port, err)
	}
	return OpenProfile(ctx, cfg, prof, log)
}

// OpenProfile is Open with a profile already parsed (cfg.Profile is not
// read).
func OpenProfile(ctx context.Context, cfg hardware.Config, prof *Profile, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Port == "" {
		return nil, fmt.Errorf("line: device %s: no port", cfg.Name)
	}
	if err := prof.Validate(); err != nil {
		return nil, fmt.Errorf("line %s: %w", cfg.Port, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = prof.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sc := serial.Config{Path: cfg.Port, Baud: cfg.Baud, Framing: cfg.Framing, WriteTimeout: timeout}
	if sc.Baud == 0 {
		sc.Baud = prof.Baud
	}
	if sc.Framing == "" {
		sc.Framing = prof.Framing
	}
	port, err := serial.Open(sc)
	if err != nil {
		return nil, fmt.Errorf("line: %w", err)
	}
	d := &Device{
		prof:    prof,
		port:    port,
		path:    cfg.Port,
		timeout: timeout,
		log:     log,
		observe: cfg.Observe,
		written: hardware.Settings{},
		hello:   true,
	}
	if err := d.prepare(ctx); err != nil {
		port.Close()
		return nil, fmt.Errorf("line %s: %w", cfg.Port, err)
	}
	return d, nil
}

// Profile returns the device's profile.
func (d *Device) Profile() *Profile { return d.prof }

// Close closes the port; safe to call twice.
func (d *Device) Close() error { return d.port.Close() }

// Check validates desired values without touching the device and returns
// them in canonical form. Every problem is reported, each wrapping
// hardware.ErrInvalid and naming the setting and the value.
func (d *Device) Check(desired hardware.Settings) (hardware.Settings, error) {
	return d.prof.Check(desired)
}

// Check is Device.Check for a profile.
func (p *Profile) Check(desired hardware.Settings) (hardware.Settings, error) {
	out := make(hardware.Settings, len(desired))
	var errs []error
	for _, name := range desired.Names() {
		s, err := p.setting(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.Set == "" {
			errs = append(errs, fmt.Errorf("%w: %s: read-only (the profile has no set command)", hardware.ErrInvalid, name))
			continue
		}
		v, err := s.Canon(desired[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", hardware.ErrInvalid, name, err))
			continue
		}
		out[name] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (p *Profile) setting(name string) (*Setting, error) {
	s, ok := p.Settings[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s: unknown setting (the profile has %s)", hardware.ErrInvalid, name, strings.Join(p.Order, ", "))
	}
	return s, nil
}

// Plan returns the command lines Apply would send for changes, in order
// (error-queue queries are not shown).
func (d *Device) Plan(changes hardware.Settings) ([]string, error) {
	return d.prof.Plan(changes)
}

// Plan is Device.Plan for a profile.
func (p *Profile) Plan(changes hardware.Settings) ([]string, error) {
	canon, err := p.Check(changes)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range p.Order {
		if v, ok := canon[name]; ok {
			out = append(out, p.Settings[name].Command(v))
		}
	}
	return out, nil
}

// Read queries the named settings. A write-only setting reads as the value
// last applied, or is missing when none was since the device was opened or
// reconnected.
func (d *Device) Read(ctx context.Context, names []string) (hardware.Settings, error) {
	var errs []error
	for _, name := range names {
		if _, err := d.prof.setting(name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("line %s: read: %w", d.path, errors.Join(errs...))
	}
	out := hardware.Settings{}
	for _, name := range names {
		s := d.prof.Settings[name]
		if s.Query == "" {
			if v, ok := d.written[name]; ok {
				out[name] = v
			}
			continue
		}
		r, err := d.do(ctx, s.Query, d.prof.queryExpect(), d.timeout)
		if err != nil {
			return nil, fmt.Errorf("line %s: read %s: %w", d.path, name, err)
		}
		v, err := s.Parse(r.Lines)
		if err != nil {
			return nil, fmt.Errorf("line %s: read %s: %s: %w %q: %v", d.path, name, s.Query, hardware.ErrGarbage, strings.Join(r.Lines, "\n"), err)
		}
		out[name] = v
	}
	return out, nil
}

// Apply sends the set commands of changes in profile order, each followed
// by the error-queue query when the profile has one. It stops at the first
// failure.
func (d *Device) Apply(ctx context.Context, changes hardware.Settings) error {
	canon, err := d.Check(changes)
	if err != nil {
		return fmt.Errorf("line %s: %w", d.path, err)
	}
	for _, name := range d.prof.Order {
		v, ok := canon[name]
		if !ok {
			continue
		}
		s := d.prof.Settings[name]
		cmd := s.Command(v)
		delete(d.written, name)
		if _, err := d.do(ctx, cmd, d.prof.setExpect(), max(s.SetTimeout, d.timeout)); err != nil {
			return fmt.Errorf("line %s: set %s: %w", d.path, name, err)
		}
		if err := d.checkErrors(ctx, cmd); err != nil {
			return fmt.Errorf("line %s: set %s: %w", d.path, name, err)
		}
		if s.Query == "" {
			d.written[name] = v
		}
	}
	return nil
}

// do runs one command after making the line ready.
func (d *Device) do(ctx context.Context, cmd string, want expect, timeout time.Duration) (reply, error) {
	if err := d.prepare(ctx); err != nil {
		return reply{}, err
	}
	return d.exchange(ctx, cmd, want, timeout)
}

// prepare reopens a port that went away, lets a late answer pass after a
// timeout, and says hello after (re)connecting.
func (d *Device) prepare(ctx context.Context) error {
	err := d.port.Discard()
	if errors.Is(err, hardware.ErrDisconnected) {
		// The descriptor may be dead while the port is back under the
		// same name (unplugged and replugged between two calls): the
		// serial port reopens it on this second try.
		d.lost()
		err = d.port.Discard()
	}
	if err != nil {
		return err
	}
	if d.resync {
		if err := d.drain(ctx); err != nil {
			return err
		}
		d.resync = false
	}
	if d.hello {
		if err := d.sayHello(ctx); err != nil {
			return err
		}
		d.hello = false
	}
	return nil
}

// lost forgets what the device was told: it may have been replaced or
// power-cycled.
func (d *Device) lost() {
	d.hello = true
	clear(d.written)
}

// drain reads and drops input until the line has been quiet for one
// timeout (giving up on quiet after four), so that a late answer to a
// timed-out command is not taken for the answer to the next one: a line
// protocol has nothing else to tell them apart.
func (d *Device) drain(ctx context.Context) error {
	quiet := d.timeout
	deadline := time.Now().Add(4 * d.timeout)
	buf := make([]byte, 256)
	for time.Now().Before(deadline) {
		n, err := d.port.Read(ctx, buf, quiet)
		if errors.Is(err, hardware.ErrTimeout) {
			return nil
		}
		if err != nil {
			return d.ioErr(err)
		}
		d.log.Debug("dropped late input", "bytes", n)
	}
	return nil
}

// sayHello sends the init commands, checks the identity and empties the
// error queue.
func (d *Device) sayHello(ctx context.Context) error {
	for _, cmd := range d.prof.Init {
		if _, err := d.exchange(ctx, cmd, d.prof.setExpect(), d.timeout); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if err := d.checkErrors(ctx, cmd); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	if id := d.prof.Identify; id != nil {
		r, err := d.exchange(ctx, id.Command, d.prof.queryExpect(), d.timeout)
		if err != nil {
			return fmt.Errorf("identify: %w", err)
		}
		if !slices.ContainsFunc(r.Lines, id.Match.MatchString) {
			return fmt.Errorf("identify: %s answered %q, the profile %s wants %s: %w",
				id.Command, strings.Join(r.Lines, "\n"), d.prof.File, id.Match, ErrWrongDevice)
		}
		d.log.Debug("identified", "answer", strings.Join(r.Lines, "\n"))
	}
	if q := d.prof.ErrorQuery; q != nil {
		// Entries left from before (another program, a power cycle) must
		// not be blamed on our first command.
		for range q.MaxEntries {
			r, err := d.exchange(ctx, q.Command, d.prof.queryExpect(), d.timeout)
			if err != nil {
				return fmt.Errorf("error queue: %w", err)
			}
			if len(r.Lines) > 0 && q.OK.MatchString(r.Lines[0]) {
				break
			}
			d.log.Debug("stale error queue entry", "entry", strings.Join(r.Lines, "\n"))
		}
	}
	return nil
}

// checkErrors asks the error queue after cmd and turns entries into an
// ErrRejected error with the device's messages.
func (d *Device) checkErrors(ctx context.Context, cmd string) error {
	q := d.prof.ErrorQuery
	if q == nil {
		return nil
	}
	var msgs []string
	for range q.MaxEntries {
		r, err := d.exchange(ctx, q.Command, d.prof.queryExpect(), d.timeout)
		if err != nil {
			return fmt.Errorf("%s: error queue: %w", cmd, err)
		}
		if len(r.Lines) > 0 && q.OK.MatchString(r.Lines[0]) {
			break
		}
		msgs = append(msgs, strings.Join(r.Lines, " "))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s: %w: %s", cmd, hardware.ErrRejected, strings.Join(msgs, "; "))
	}
	return nil
}

// exchange sends one command and frames its answer. Errors wrap
// ErrTimeout (with what arrived, quoted), ErrDisconnected, ErrGarbage (an
// answer too long) or ErrRejected (an error pattern matched, with the
// device's line). A command that expects an answer is reported to the
// observer, from the write to the end of the answer.
func (d *Device) exchange(ctx context.Context, cmd string, want expect, timeout time.Duration) (r reply, err error) {
	if err := d.port.Discard(); err != nil {
		return reply{}, d.ioErr(err)
	}
	if d.observe != nil && want != expectNothing {
		defer func(start time.Time) { d.observe(time.Since(start), err) }(time.Now())
	}
	prev := d.last
	d.last = cmd
	if err := d.port.Write(ctx, []byte(cmd+d.prof.LineEnding)); err != nil {
		return reply{}, fmt.Errorf("%s: %w", cmd, d.ioErr(err))
	}
	if want == expectNothing {
		d.log.Debug("sent", "cmd", cmd)
		return reply{}, nil
	}
	_, err = d.port.ReadUntil(ctx, timeout, d.prof.MaxAnswer, func(b []byte) bool {
		var done bool
		r, done = d.prof.scan(cmd, prev, want, b)
		return done
	})
	if len(r.Dropped) > 0 {
		d.log.Debug("unsolicited lines dropped", "cmd", cmd, "lines", r.Dropped)
	}
	if err != nil {
		if !errors.Is(err, hardware.ErrDisconnected) {
			d.resync = true
		}
		if errors.Is(err, hardware.ErrTimeout) {
			return r, fmt.Errorf("%s: no %s: %w", cmd, want, err)
		}
		return r, fmt.Errorf("%s: %w", cmd, d.ioErr(err))
	}
	d.log.Debug("exchange", "cmd", cmd, "answer", r.Lines, "end", r.End)
	if r.Refused != "" {
		return r, fmt.Errorf("%s: %w: %s", cmd, hardware.ErrRejected, r.Refused)
	}
	return r, nil
}

// ioErr notes a lost device and passes the error on.
func (d *Device) ioErr(err error) error {
	if errors.Is(err, hardware.ErrDisconnected) {
		d.lost()
	}
	return err
}
