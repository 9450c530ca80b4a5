package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// LineFaults are failures a line-protocol simulator (SCPI, Modem) injects
// on demand; the zero value means none. They hold until changed.
type LineFaults struct {
	// Latency delays every answer.
	Latency time.Duration
	// NoAnswer: commands are received (and recorded) but neither executed
	// nor answered, so the driver times out.
	NoAnswer bool
	// Garbage replaces the content of answers with noise; the framing
	// (line ends, final result codes) stays, so the driver gets a complete
	// answer it cannot understand.
	Garbage bool
	// ErrorAnswer makes commands fail. SCPI: every command other than a
	// query is not executed and this entry is queued for SYST:ERR?
	// (e.g. `-222,"Data out of range"`). Modem: every command is answered
	// with this final result code (e.g. "+CME ERROR: 3" or "ERROR").
	ErrorAnswer string
	// URCs are unsolicited lines slipped into every answer (after the
	// echo, before the answer's lines), as a modem does with RING.
	URCs []string
}

// garbage is what Garbage answers with: bytes no parser should take, but
// no line end.
const garbage = "\xff\xfe#?%~\x01*!"

// lineServer is the part shared by the line simulators: the pty, the read
// loop that splits commands, the record of received commands, faults, and
// unplug/replug.
type lineServer struct {
	pty *PTY
	// ends are the bytes that end a command; ignore are dropped.
	ends, ignore string
	// handle executes one command and returns the bytes to answer (nil:
	// none). It runs on the Run goroutine.
	handle func(cmd string, f LineFaults) []byte
	// unsolicited formats a line sent by Inject.
	unsolicited func(line string) []byte

	mu       sync.Mutex
	faults   LineFaults
	cmds     []string
	closed   bool
	received chan string
	plugged  chan struct{}

	rate lineRate
}

func newLineServer(path, ends, ignore string) (*lineServer, error) {
	pty, err := NewPTY(path)
	if err != nil {
		return nil, err
	}
	return &lineServer{
		pty:      pty,
		ends:     ends,
		ignore:   ignore,
		received: make(chan string, 256),
		plugged:  make(chan struct{}, 1),
	}, nil
}

// Path is where the driver opens the simulated port.
func (s *lineServer) Path() string { return s.pty.Path() }

// SetFaults replaces the injected faults.
func (s *lineServer) SetFaults(f LineFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.URCs = slices.Clone(f.URCs)
	s.faults = f
}

// SetBaud makes the simulator keep the pace of a serial line at baud (10
// bits a character), which a pty does not: a command is taken once its last
// byte would have arrived, and answers go out at that rate. 0, the default,
// turns pacing off. It can be changed at any time.
func (s *lineServer) SetBaud(baud int) { s.rate.setBaud(baud) }

// Bytes returns the bytes received from and sent to the driver so far
// (line ends and ignored bytes included).
func (s *lineServer) Bytes() (received, sent int64) { return s.rate.bytes() }

// Faults returns the injected faults.
func (s *lineServer) Faults() LineFaults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.URCs = slices.Clone(f.URCs)
	return f
}

// Commands returns the command lines received since the start or the last
// ClearCommands, in order. A command is recorded after it took effect and
// before it is answered.
func (s *lineServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cmds)
}

// ClearCommands forgets the received commands (also those not yet taken
// from Received).
func (s *lineServer) ClearCommands() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = nil
	for {
		select {
		case <-s.received:
		default:
			return
		}
	}
}

// Received delivers every command line as it is recorded (see Commands),
// for tests that wait for a command. It holds 256; more are dropped from it
// (not from Commands) while nobody reads.
func (s *lineServer) Received() <-chan string { return s.received }

// Unplug takes the port away like a USB adapter pulled out: the path
// disappears and the driver's descriptor hangs up.
func (s *lineServer) Unplug() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pty.Unplug()
}

// Replug brings the port back at the same path (a new pty), with the
// device's state kept.
func (s *lineServer) Replug() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sim: replug after Close")
	}
	if err := s.pty.Replug(); err != nil {
		return err
	}
	select {
	case s.plugged <- struct{}{}:
	default:
	}
	return nil
}

// Close removes the port for good; Run returns.
func (s *lineServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	select {
	case s.plugged <- struct{}{}:
	default:
	}
	return s.pty.Close()
}

// Inject sends an unsolicited line now.
func (s *lineServer) Inject(line string) error {
	m := s.master()
	if m == nil {
		return errors.New("sim: unplugged")
	}
	return s.write(context.Background(), m, s.unsolicited(line))
}

func (s *lineServer) master() *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.pty.Master()
}

// write sends bytes at the line rate, bounded in time: a driver that
// stopped reading must not wedge the simulator.
func (s *lineServer) write(ctx context.Context, m *os.File, b []byte) error {
	return s.rate.write(ctx, m, b)
}

// run serves the port until ctx ends or Close, across unplug and replug.
// Cancelation is not an error.
func (s *lineServer) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		// Wake a Read in progress; a new master after this is caught by
		// the ctx check before its first Read.
		if m := s.master(); m != nil {
			m.SetReadDeadline(time.Unix(1, 0))
		}
		select {
		case s.plugged <- struct{}{}:
		default:
		}
	})
	defer stop()
	buf := make([]byte, 1024)
	var (
		pending []byte
		rx      rxClock
		due     []time.Time // when each byte of buf[:n] has arrived
	)
	for {
		m := s.master()
		if ctx.Err() != nil {
			return nil
		}
		if m == nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.plugged:
			}
			pending = nil
			continue
		}
		n, err := m.Read(buf)
		due = due[:0]
		rx.arrived(&s.rate, time.Now(), n, func(_ int, t time.Time) { due = append(due, t) })
		for i, c := range buf[:n] {
			switch {
			case strings.IndexByte(s.ignore, c) >= 0:
			case strings.IndexByte(s.ends, c) >= 0:
				cmd := string(pending)
				pending = pending[:0]
				if !waitUntil(ctx, due[i]) {
					return nil
				}
				s.serve(ctx, m, cmd)
			default:
				pending = append(pending, c)
			}
		}
		if len(pending) > 4096 {
			pending = nil // a real device's input buffer overflows too
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if s.master() != m {
				continue // unplugged (and maybe replugged): go on with the new one
			}
			return fmt.Errorf("sim %s: read: %w", s.pty.Path(), err)
		}
	}
}

// serve executes one command and answers it, with the faults in force.
func (s *lineServer) serve(ctx context.Context, m *os.File, cmd string) {
	f := s.Faults()
	var out []byte
	if !f.NoAnswer {
		out = s.handle(cmd, f)
	}
	s.mu.Lock()
	s.cmds = append(s.cmds, cmd)
	s.mu.Unlock()
	select {
	case s.received <- cmd:
	default:
	}
	if f.NoAnswer || len(out) == 0 {
		return
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	s.write(ctx, m, out) // an unplugged port loses the answer, as a real one does
}
