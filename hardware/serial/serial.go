// Package serial wraps go.bug.st/serial for drivers and fixes its traps: a
// read timeout is an error (ErrTimeout), not (0, nil); writes are bounded in
// time; the port is locked with flock so two drivers (or two daemons) never
// share it; framing defaults to 8N1; and a port that vanished (unplugged USB
// adapter) is reopened by the next exchange once it is back.
package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	bug "go.bug.st/serial"
	"golang.org/x/sys/unix"

	"edge/hardware"
)

// Config of a port.
type Config struct {
	// Path is the device, for example /dev/ttyUSB0.
	Path string
	// Baud rate; default 9600.
	Baud int
	// Framing: data bits 5-8, parity N/E/O/M/S, stop bits 1 or 2. Default 8N1.
	Framing string
	// WriteTimeout bounds one write; default 1s.
	WriteTimeout time.Duration
}

// DefaultConfig returns 9600 8N1.
func DefaultConfig() Config {
	return Config{Baud: 9600, Framing: "8N1", WriteTimeout: time.Second}
}

// Mode parses Framing.
func (c Config) Mode() (*bug.Mode, error) {
	f := strings.ToUpper(c.Framing)
	if f == "" {
		f = "8N1"
	}
	if len(f) != 3 || f[0] < '5' || f[0] > '8' {
		return nil, fmt.Errorf("serial: framing %q: want data bits, parity and stop bits such as 8N1 or 7E1", c.Framing)
	}
	m := &bug.Mode{BaudRate: c.Baud, DataBits: int(f[0] - '0')}
	switch f[1] {
	case 'N':
		m.Parity = bug.NoParity
	case 'E':
		m.Parity = bug.EvenParity
	case 'O':
		m.Parity = bug.OddParity
	case 'M':
		m.Parity = bug.MarkParity
	case 'S':
		m.Parity = bug.SpaceParity
	default:
		return nil, fmt.Errorf("serial: framing %q: parity must be N, E, O, M or S", c.Framing)
	}
	switch f[2] {
	case '1':
		m.StopBits = bug.OneStopBit
	case '2':
		m.StopBits = bug.TwoStopBits
	default:
		return nil, fmt.Errorf("serial: framing %q: stop bits must be 1 or 2", c.Framing)
	}
	return m, nil
}

// CharTime is the time one character takes on the wire (start, data,
// parity and stop bits).
func (c Config) CharTime() time.Duration {
	bits := 10
	if m, err := c.Mode(); err == nil {
		bits = 1 + m.DataBits + 1
		if m.Parity != bug.NoParity {
			bits++
		}
		if m.StopBits == bug.TwoStopBits {
			bits++
		}
	}
	baud := c.Baud
	if baud <= 0 {
		baud = 9600
	}
	return time.Duration(bits) * time.Second / time.Duration(baud)
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("serial: no port")
	}
	if c.Baud < 50 || c.Baud > 4000000 {
		return fmt.Errorf("serial %s: baud %d out of range", c.Path, c.Baud)
	}
	if c.WriteTimeout <= 0 {
		return fmt.Errorf("serial %s: write timeout must be positive", c.Path)
	}
	_, err := c.Mode()
	return err
}

// Port is a serial port that survives being unplugged: after an error that
// means the device is gone, the next call reopens it. Calls must not run
// concurrently (one supervisor goroutine drives a device); Close may be
// called from anywhere, and unblocks a Read or Write in progress.
//
// go.bug.st/serial opens and configures the line (baud, framing, raw mode,
// TIOCEXCL); the bytes go through a second descriptor of the same tty that
// the Go runtime poller drives, so reads and writes have deadlines, Close
// interrupts them, and no goroutine outlives a call.
type Port struct {
	cfg  Config
	mode *bug.Mode

	mu     sync.Mutex
	port   bug.Port
	file   *os.File // I/O descriptor; holds the flock
	closed bool
}

// Open opens the port now, so that a wrong path or a port in use is
// reported at once. A port that fails later is reopened on demand.
func Open(cfg Config) (*Port, error) {
	if cfg.Baud == 0 {
		cfg.Baud = 9600
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Second
	}
	if cfg.Framing == "" {
		cfg.Framing = "8N1"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mode, _ := cfg.Mode()
	p := &Port{cfg: cfg, mode: mode}
	if _, err := p.get(); err != nil {
		return nil, err
	}
	return p, nil
}

// Config returns the port's config.
func (p *Port) Config() Config { return p.cfg }

// get returns the open port's I/O file, opening the port if needed.
func (p *Port) get() (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("serial %s: %w: port closed", p.cfg.Path, hardware.ErrDisconnected)
	}
	if p.file != nil {
		return p.file, nil
	}
	// O_NONBLOCK: open does not wait for carrier, and the runtime poller
	// takes the descriptor (deadlines, Close unblocks). Never call Fd() on
	// it: that switches it back to blocking mode.
	f, err := os.OpenFile(p.cfg.Path, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, p.openErr(err)
	}
	if err := control(f, func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("serial %s: in use by another program (flock)", p.cfg.Path)
		}
		return nil, fmt.Errorf("serial %s: flock: %w", p.cfg.Path, err)
	}
	port, err := bug.Open(p.cfg.Path, p.mode)
	if err != nil {
		f.Close()
		return nil, p.openErr(err)
	}
	p.port, p.file = port, f
	return f, nil
}

// control runs fn on f's descriptor without taking it out of the poller.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (p *Port) openErr(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EIO) {
		return fmt.Errorf("serial %s: %w: %w", p.cfg.Path, hardware.ErrDisconnected, err)
	}
	var pe *bug.PortError
	if errors.As(err, &pe) {
		switch pe.Code() {
		case bug.PortNotFound:
			return fmt.Errorf("serial %s: %w: %w", p.cfg.Path, hardware.ErrDisconnected, err)
		case bug.PortBusy:
			return fmt.Errorf("serial %s: in use by another program (exclusive tty)", p.cfg.Path)
		}
	}
	if errors.Is(err, syscall.EBUSY) {
		// TIOCEXCL held by another program (root bypasses it).
		return fmt.Errorf("serial %s: in use by another program (exclusive tty)", p.cfg.Path)
	}
	return fmt.Errorf("serial %s: open: %w", p.cfg.Path, err)
}

// drop closes the port after a failure of f; the next call reopens. A
// port already replaced or closed is left alone.
func (p *Port) drop(f *os.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file != f || f == nil {
		return
	}
	p.port.Close()
	p.file.Close()
	p.port, p.file = nil, nil
}

// Write writes all of b within WriteTimeout (and ctx). A write that does not
// finish in time returns ErrTimeout; the port is then reopened by the next
// call, so a half-written command is not continued.
func (p *Port) Write(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("serial %s: write: %w", p.cfg.Path, err)
	}
	f, err := p.get()
	if err != nil {
		return err
	}
	limit := p.cfg.WriteTimeout
	if dl, ok := ctx.Deadline(); ok {
		limit = min(limit, max(time.Until(dl), time.Millisecond))
	}
	deadline := time.Now().Add(limit)
	if err := f.SetWriteDeadline(deadline); err != nil {
		p.drop(f)
		return p.ioErr("write", err)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = f.Write(b)
	stop()
	if err == nil {
		return nil
	}
	p.drop(f)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if ctx.Err() != nil {
			return fmt.Errorf("serial %s: write: %w", p.cfg.Path, ctx.Err())
		}
		return fmt.Errorf("serial %s: write: %w after %s", p.cfg.Path, hardware.ErrTimeout, limit)
	}
	return p.ioErr("write", err)
}

// Read reads what arrives within timeout: at least one byte, or ErrTimeout.
func (p *Port) Read(ctx context.Context, buf []byte, timeout time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("serial %s: read: %w", p.cfg.Path, err)
	}
	timeout = max(timeout, 0)
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	f, err := p.get()
	if err != nil {
		return 0, err
	}
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		p.drop(f)
		return 0, p.ioErr("read", err)
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	n, err := f.Read(buf)
	stop()
	switch {
	case n > 0:
		return n, nil
	case err == nil:
		// A zero-byte read on a non-blocking raw tty is a hang-up.
		err = io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		if ctx.Err() != nil {
			return 0, fmt.Errorf("serial %s: read: %w", p.cfg.Path, ctx.Err())
		}
		return 0, fmt.Errorf("serial %s: read: %w after %s", p.cfg.Path, hardware.ErrTimeout, timeout)
	}
	p.drop(f)
	return 0, p.ioErr("read", err)
}

// ReadUntil reads until done says the bytes so far are complete, within
// timeout overall. It returns what was read, also on error.
func (p *Port) ReadUntil(ctx context.Context, timeout time.Duration, max int, done func([]byte) bool) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	var out []byte
	buf := make([]byte, 256)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out, fmt.Errorf("serial %s: read: %w after %s (got %q)", p.cfg.Path, hardware.ErrTimeout, timeout, out)
		}
		n, err := p.Read(ctx, buf, left)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, hardware.ErrTimeout) {
				return out, fmt.Errorf("serial %s: read: %w after %s (got %q)", p.cfg.Path, hardware.ErrTimeout, timeout, out)
			}
			return out, err
		}
		if done(out) {
			return out, nil
		}
		if len(out) > max {
			return out, fmt.Errorf("serial %s: read: %w: answer longer than %d bytes", p.cfg.Path, hardware.ErrGarbage, max)
		}
	}
}

// Discard drops whatever input is pending (stale answers, noise).
func (p *Port) Discard() error {
	f, err := p.get()
	if err != nil {
		return err
	}
	p.mu.Lock()
	port := p.port
	p.mu.Unlock()
	if port == nil {
		return fmt.Errorf("serial %s: flush: %w: port closed", p.cfg.Path, hardware.ErrDisconnected)
	}
	if err := port.ResetInputBuffer(); err != nil {
		p.drop(f)
		return p.ioErr("flush", err)
	}
	return nil
}

func (p *Port) ioErr(op string, err error) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		// Close raced with this call (the runtime then says "use of closed
		// file", not os.ErrClosed, from SetReadDeadline).
		return fmt.Errorf("serial %s: %s: %w: port closed", p.cfg.Path, op, hardware.ErrDisconnected)
	}
	var pe *bug.PortError
	if errors.As(err, &pe) && pe.Code() == bug.PortClosed {
		return fmt.Errorf("serial %s: %s: %w: port closed or unplugged", p.cfg.Path, op, hardware.ErrDisconnected)
	}
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("serial %s: %s: %w: port closed", p.cfg.Path, op, hardware.ErrDisconnected)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("serial %s: %s: %w: hang-up (unplugged)", p.cfg.Path, op, hardware.ErrDisconnected)
	}
	if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EBADF) {
		return fmt.Errorf("serial %s: %s: %w: %w", p.cfg.Path, op, hardware.ErrDisconnected, err)
	}
	return fmt.Errorf("serial %s: %s: %w", p.cfg.Path, op, err)
}

// Close closes the port for good. It unblocks a Read or Write in progress
// and is safe to call twice.
func (p *Port) Close() error {
	p.mu.Lock()
	p.closed = true
	port, f := p.port, p.file
	p.port, p.file = nil, nil
	p.mu.Unlock()
	var errs []error
	if f != nil {
		// First: this interrupts a blocked Read or Write.
		f.Close()
	}
	if port != nil {
		if err := port.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serial %s: close: %w", p.cfg.Path, err))
		}
	}
	return errors.Join(errs...)
}
