package serial_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bug "go.bug.st/serial"

	"edge/hardware"
	"edge/hardware/serial"
	"edge/hardware/sim"
)

// newPTY makes a pseudo-terminal with its slave linked at a temp path.
func newPTY(t *testing.T) *sim.PTY {
	t.Helper()
	pty, err := sim.NewPTY(filepath.Join(t.TempDir(), "ttyTEST"))
	if err != nil {
		t.Fatalf("NewPTY: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	return pty
}

func open(t *testing.T, path string) *serial.Port {
	t.Helper()
	p, err := serial.Open(serial.Config{Path: path, Baud: 115200, WriteTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// readMaster reads from the simulator side until want has arrived.
func readMaster(t *testing.T, m *os.File, want string) {
	t.Helper()
	if err := m.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(m, got); err != nil {
		t.Fatalf("master read: %v (got %q)", err, got)
	}
	if string(got) != want {
		t.Fatalf("master got %q, want %q", got, want)
	}
}

func TestReadTimeout(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	done := make(chan error, 1)
	go func() {
		_, err := p.Read(context.Background(), make([]byte, 16), 50*time.Millisecond)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, hardware.ErrTimeout) {
			t.Fatalf("Read = %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read with a 50ms timeout hangs")
	}
	// ReadUntil: a partial answer is quoted in the timeout error.
	if _, err := pty.Master().Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	out, err := p.ReadUntil(context.Background(), 100*time.Millisecond, 64, func(b []byte) bool { return bytes.HasSuffix(b, []byte("\n")) })
	if !errors.Is(err, hardware.ErrTimeout) || !strings.Contains(err.Error(), `"partial"`) || string(out) != "partial" {
		t.Fatalf("ReadUntil = %q, %v; want a timeout quoting \"partial\"", out, err)
	}
}

func TestReadContext(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Read(ctx, make([]byte, 16), time.Minute)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read ignores its context")
	}
	// The port still works after a cancelled read.
	if err := p.Write(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	readMaster(t, pty.Master(), "x")
}

func TestRoundTrip(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	ctx := context.Background()
	if err := p.Write(ctx, []byte("*IDN?\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	readMaster(t, pty.Master(), "*IDN?\n")

	if _, err := pty.Master().Write([]byte("ACME,SG-6000\r\nOK\r\n")); err != nil {
		t.Fatal(err)
	}
	out, err := p.ReadUntil(ctx, 5*time.Second, 1024, func(b []byte) bool { return bytes.HasSuffix(b, []byte("OK\r\n")) })
	if err != nil || string(out) != "ACME,SG-6000\r\nOK\r\n" {
		t.Fatalf("ReadUntil = %q, %v", out, err)
	}

	// Bytes pass unchanged in both directions (raw mode: no CR/LF mangling,
	// no echo, no signals).
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if err := p.Write(ctx, all); err != nil {
		t.Fatal(err)
	}
	readMaster(t, pty.Master(), string(all))
	if _, err := pty.Master().Write(all); err != nil {
		t.Fatal(err)
	}
	out, err = p.ReadUntil(ctx, 5*time.Second, 1024, func(b []byte) bool { return len(b) >= len(all) })
	if err != nil || !bytes.Equal(out, all) {
		t.Fatalf("ReadUntil = %q, %v; want all 256 byte values", out, err)
	}
}

func TestReadUntilMax(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	if _, err := pty.Master().Write(bytes.Repeat([]byte("A"), 300)); err != nil {
		t.Fatal(err)
	}
	_, err := p.ReadUntil(context.Background(), 5*time.Second, 100, func(b []byte) bool { return false })
	if !errors.Is(err, hardware.ErrGarbage) {
		t.Fatalf("ReadUntil = %v, want ErrGarbage for an endless answer", err)
	}
}

func TestDiscard(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	if _, err := pty.Master().Write([]byte("stale answer\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	n, err := p.Read(context.Background(), make([]byte, 64), 50*time.Millisecond)
	if !errors.Is(err, hardware.ErrTimeout) {
		t.Fatalf("Read after Discard = %d, %v; want nothing (ErrTimeout)", n, err)
	}
}

func TestWriteTimeout(t *testing.T) {
	pty := newPTY(t)
	p, err := serial.Open(serial.Config{Path: pty.Path(), Baud: 9600, WriteTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Nobody reads the master: the pty buffer fills and the write blocks.
	const big = 4 << 20
	done := make(chan error, 1)
	go func() { done <- p.Write(context.Background(), make([]byte, big)) }()
	select {
	case err := <-done:
		if !errors.Is(err, hardware.ErrTimeout) {
			t.Fatalf("Write = %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write is not bounded by WriteTimeout")
	}
	// The port is reopened by the next call and works, and the timed-out
	// write is not continued behind its back: the master sees what was
	// buffered before the timeout, then "after", not megabytes of the old
	// write (a leftover writer goroutine would keep going, on a descriptor
	// number the reopened port may reuse).
	got := make(chan int, 1)
	go func() {
		m := pty.Master()
		m.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		var tail []byte
		total := 0
		for {
			n, err := m.Read(buf)
			total += n
			tail = append(tail, buf[:n]...)
			if len(tail) > 16 {
				tail = tail[len(tail)-16:]
			}
			if bytes.HasSuffix(tail, []byte("after\n")) || err != nil {
				got <- total
				return
			}
		}
	}()
	if err := p.Write(context.Background(), []byte("after\n")); err != nil {
		t.Fatalf("Write after a timeout: %v", err)
	}
	if n := <-got; n > big/4 {
		t.Fatalf("master read %d bytes before \"after\": the timed-out write went on", n)
	}
}

func TestInUse(t *testing.T) {
	pty := newPTY(t)
	first := open(t, pty.Path())
	_, err := serial.Open(serial.Config{Path: pty.Path(), Baud: 9600})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want an \"in use\" error", err)
	}
	// The same tty under its real name is the same port.
	real, err := filepath.EvalSymlinks(pty.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serial.Open(serial.Config{Path: real, Baud: 9600}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Open of %s = %v, want an \"in use\" error", real, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := serial.Open(serial.Config{Path: pty.Path(), Baud: 9600})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	second.Close()
}

func TestOpenMissing(t *testing.T) {
	_, err := serial.Open(serial.Config{Path: filepath.Join(t.TempDir(), "ttyNONE"), Baud: 9600})
	if !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Open of a missing port = %v, want ErrDisconnected", err)
	}
}

func TestUnplugReplug(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	ctx := context.Background()

	if err := pty.Unplug(); err != nil {
		t.Fatal(err)
	}
	_, err := p.Read(ctx, make([]byte, 16), 5*time.Second)
	if !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Read after unplug = %v, want ErrDisconnected", err)
	}
	// While unplugged every call says so at once.
	if err := p.Write(ctx, []byte("x")); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Write while unplugged = %v, want ErrDisconnected", err)
	}
	if err := p.Discard(); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Discard while unplugged = %v, want ErrDisconnected", err)
	}

	if err := pty.Replug(); err != nil {
		t.Fatal(err)
	}
	// The same Port works again by itself.
	if err := p.Write(ctx, []byte("hello\n")); err != nil {
		t.Fatalf("Write after replug: %v", err)
	}
	readMaster(t, pty.Master(), "hello\n")
	if _, err := pty.Master().Write([]byte("back\n")); err != nil {
		t.Fatal(err)
	}
	out, err := p.ReadUntil(ctx, 5*time.Second, 64, func(b []byte) bool { return bytes.HasSuffix(b, []byte("\n")) })
	if err != nil || string(out) != "back\n" {
		t.Fatalf("ReadUntil after replug = %q, %v", out, err)
	}
}

// A replug between two calls (the driver never saw the port gone): the
// first call on the dead descriptor says disconnected, the next works.
func TestReplugUnnoticed(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	if err := pty.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := pty.Replug(); err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Discard on the old descriptor = %v, want ErrDisconnected", err)
	}
	if err := p.Discard(); err != nil {
		t.Fatalf("Discard after reopen: %v", err)
	}
	if err := p.Write(context.Background(), []byte("ok\n")); err != nil {
		t.Fatal(err)
	}
	readMaster(t, pty.Master(), "ok\n")
}

func TestCloseUnblocksRead(t *testing.T) {
	pty := newPTY(t)
	p := open(t, pty.Path())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := p.Read(context.Background(), make([]byte, 16), time.Hour)
		done <- err
	}()
	<-started
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, hardware.ErrDisconnected) {
			t.Fatalf("Read after Close = %v, want ErrDisconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close does not unblock Read")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Write(context.Background(), []byte("x")); !errors.Is(err, hardware.ErrDisconnected) {
		t.Fatalf("Write after Close = %v, want ErrDisconnected", err)
	}
}

func TestCloseUnblocksWrite(t *testing.T) {
	pty := newPTY(t)
	p, err := serial.Open(serial.Config{Path: pty.Path(), Baud: 9600, WriteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Write(context.Background(), make([]byte, 4<<20)) }()
	// The first byte at the master proves the write is under way; the rest
	// cannot fit in the pty buffer, so it is blocked (or about to be).
	readMaster(t, pty.Master(), "\x00")
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, hardware.ErrDisconnected) {
			t.Fatalf("Write after Close = %v, want ErrDisconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close does not unblock Write")
	}
}

func TestMode(t *testing.T) {
	tests := []struct {
		framing string
		data    int
		parity  bug.Parity
		stop    bug.StopBits
		err     string
	}{
		{framing: "", data: 8, parity: bug.NoParity, stop: bug.OneStopBit},
		{framing: "8N1", data: 8, parity: bug.NoParity, stop: bug.OneStopBit},
		{framing: "8n1", data: 8, parity: bug.NoParity, stop: bug.OneStopBit},
		{framing: "7E1", data: 7, parity: bug.EvenParity, stop: bug.OneStopBit},
		{framing: "7O2", data: 7, parity: bug.OddParity, stop: bug.TwoStopBits},
		{framing: "8M1", data: 8, parity: bug.MarkParity, stop: bug.OneStopBit},
		{framing: "5S2", data: 5, parity: bug.SpaceParity, stop: bug.TwoStopBits},
		{framing: "9N1", err: "want data bits"},
		{framing: "4N1", err: "want data bits"},
		{framing: "8X1", err: "parity must be"},
		{framing: "8N3", err: "stop bits must be"},
		{framing: "8N0", err: "stop bits must be"},
		{framing: "8N", err: "want data bits"},
		{framing: "8N1x", err: "want data bits"},
		{framing: "N81", err: "want data bits"},
		{framing: "8N1.5", err: "want data bits"},
	}
	for _, tt := range tests {
		t.Run(tt.framing, func(t *testing.T) {
			m, err := serial.Config{Baud: 9600, Framing: tt.framing}.Mode()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.framing) {
					t.Fatalf("Mode(%q) = %v, %v; want error containing %q and the framing", tt.framing, m, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.BaudRate != 9600 || m.DataBits != tt.data || m.Parity != tt.parity || m.StopBits != tt.stop {
				t.Fatalf("Mode(%q) = %+v", tt.framing, m)
			}
		})
	}
}

func TestCharTime(t *testing.T) {
	tests := []struct {
		baud    int
		framing string
		want    time.Duration
	}{
		{9600, "8N1", 10 * time.Second / 9600},
		{9600, "", 10 * time.Second / 9600},
		{9600, "7E1", 10 * time.Second / 9600},
		{9600, "8E1", 11 * time.Second / 9600},
		{9600, "8N2", 11 * time.Second / 9600},
		{9600, "8E2", 12 * time.Second / 9600},
		{19200, "8N1", 10 * time.Second / 19200},
		{115200, "8N1", 10 * time.Second / 115200},
		{0, "8N1", 10 * time.Second / 9600},    // default baud
		{9600, "bad", 10 * time.Second / 9600}, // falls back to 10 bits
	}
	for _, tt := range tests {
		got := serial.Config{Baud: tt.baud, Framing: tt.framing}.CharTime()
		if got != tt.want {
			t.Errorf("CharTime(%d %s) = %s, want %s", tt.baud, tt.framing, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := serial.DefaultConfig()
	ok.Path = "/dev/ttyS0"
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a path: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*serial.Config)
		err  string
	}{
		{"no path", func(c *serial.Config) { c.Path = "" }, "no port"},
		{"baud low", func(c *serial.Config) { c.Baud = 10 }, "baud 10 out of range"},
		{"baud high", func(c *serial.Config) { c.Baud = 5000000 }, "baud 5000000 out of range"},
		{"write timeout", func(c *serial.Config) { c.WriteTimeout = 0 }, "write timeout"},
		{"framing", func(c *serial.Config) { c.Framing = "8Q1" }, "parity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestOpenDefaults(t *testing.T) {
	pty := newPTY(t)
	// Baud 0 and empty framing mean 9600 8N1, as documented.
	p, err := serial.Open(serial.Config{Path: pty.Path()})
	if err != nil {
		t.Fatalf("Open with defaults: %v", err)
	}
	defer p.Close()
	if c := p.Config(); c.Baud != 9600 || c.Framing != "8N1" || c.WriteTimeout != time.Second {
		t.Fatalf("Config = %+v", c)
	}
}
