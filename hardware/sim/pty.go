package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair that stands in for a serial cable: the
// simulator reads and writes the master side, the driver opens Path (a
// stable symlink to the slave side, like /dev/serial/by-id/...). Unplug
// takes the port away the way a USB adapter pulled out does; Replug brings
// a new one back at the same Path.
type PTY struct {
	path string

	mu     sync.Mutex
	master *os.File
	hold   *os.File // a slave descriptor kept open so the master never reads EIO
	slave  string
}

// NewPTY creates a pty pair and a symlink to its slave at path.
func NewPTY(path string) (*PTY, error) {
	p := &PTY{path: path}
	if err := p.open(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PTY) open() error {
	// O_NONBLOCK makes the master pollable, so Close unblocks a reader.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sim: open /dev/ptmx: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("sim: TIOCGPTN: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return fmt.Errorf("sim: unlock pty: %w", err)
	}
	slave := "/dev/pts/" + strconv.Itoa(n)
	hold, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("sim: open %s: %w", slave, err)
	}
	// Raw from the start: no echo, no line editing, no CR/LF mangling.
	t, err := unix.IoctlGetTermios(int(hold.Fd()), unix.TCGETS)
	if err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		err = unix.IoctlSetTermios(int(hold.Fd()), unix.TCSETS, t)
	}
	if err != nil {
		hold.Close()
		unix.Close(fd)
		return fmt.Errorf("sim: raw mode on %s: %w", slave, err)
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
		hold.Close()
		unix.Close(fd)
		return fmt.Errorf("sim: %w", err)
	}
	tmp := p.path + ".new"
	os.Remove(tmp)
	if err := os.Symlink(slave, tmp); err != nil {
		hold.Close()
		unix.Close(fd)
		return fmt.Errorf("sim: link %s: %w", p.path, err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		hold.Close()
		unix.Close(fd)
		return fmt.Errorf("sim: link %s: %w", p.path, err)
	}
	p.mu.Lock()
	p.master = os.NewFile(uintptr(fd), "ptmx")
	p.hold = hold
	p.slave = slave
	p.mu.Unlock()
	return nil
}

// Path is where the driver opens the port.
func (p *PTY) Path() string { return p.path }

// Master returns the simulator's side, or nil while unplugged.
func (p *PTY) Master() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.master
}

// Unplug removes the port: the link disappears and the driver's open
// descriptor fails (EIO / hang-up), as with a USB adapter pulled out.
func (p *PTY) Unplug() error {
	p.mu.Lock()
	m, h := p.master, p.hold
	p.master, p.hold = nil, nil
	p.mu.Unlock()
	var errs []error
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if h != nil {
		errs = append(errs, h.Close())
	}
	if m != nil {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Replug brings a new port back at Path.
func (p *PTY) Replug() error {
	if p.Master() != nil {
		return nil
	}
	return p.open()
}

// Close unplugs for good.
func (p *PTY) Close() error { return p.Unplug() }
