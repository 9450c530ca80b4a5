package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/serial"
)

func TestSilentInterval(t *testing.T) {
	tests := []struct {
		baud    int
		framing string
		want    time.Duration
	}{
		{9600, "8N1", 3645833 * time.Nanosecond},  // 3.5 x 10 bits / 9600
		{9600, "8E1", 4010416 * time.Nanosecond},  // 11 bits
		{19200, "8N1", 1822916 * time.Nanosecond}, // still 3.5 characters at 19200
		{38400, "8N1", 1750 * time.Microsecond},   // fixed above 19200
		{115200, "8E1", 1750 * time.Microsecond},
	}
	for _, tt := range tests {
		got := silentInterval(serial.Config{Baud: tt.baud, Framing: tt.framing})
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%d %s: t3.5 = %s, want %s", tt.baud, tt.framing, got, tt.want)
		}
	}
}

// fakePort answers every request at once with a prepared frame and
// records when requests were written.
type fakePort struct {
	answer  func(req []byte) []byte
	pending []byte
	writes  []time.Time
	reads   []time.Time // when the last byte of each answer was handed out
	flushes int
}

func (f *fakePort) Write(_ context.Context, b []byte) error {
	f.writes = append(f.writes, time.Now())
	f.pending = f.answer(b)
	return nil
}

func (f *fakePort) Read(_ context.Context, buf []byte, timeout time.Duration) (int, error) {
	if len(f.pending) == 0 {
		return 0, fmt.Errorf("fake: %w after %s", hardware.ErrTimeout, timeout)
	}
	n := copy(buf, f.pending)
	f.pending = f.pending[n:]
	if len(f.pending) == 0 {
		f.reads = append(f.reads, time.Now())
	}
	return n, nil
}

func (f *fakePort) Discard() error { f.flushes++; f.pending = nil; return nil }

// TestSilenceBeforeEachRequest: at 1200 baud t3.5 is 29 ms; no request is
// written sooner than that after the previous answer's last byte. (A lower
// bound only, so it cannot flake on a slow machine.)
func TestSilenceBeforeEachRequest(t *testing.T) {
	cfg := serial.Config{Baud: 1200, Framing: "8N1"}
	fp := &fakePort{answer: func(req []byte) []byte {
		return frame(req[0], req[1], 2, 0x15, 0x18)
	}}
	m := newRTU(fp, cfg, time.Second, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for i := range 3 {
		regs, err := m.do(ctx, Request{Unit: 1, Function: ReadHoldingRegisters, Address: 0x10, Count: 1})
		if err != nil || len(regs) != 1 || regs[0] != 5400 {
			t.Fatalf("request %d: %v %v", i, regs, err)
		}
	}
	t35 := silentInterval(cfg)
	for i := 1; i < len(fp.writes); i++ {
		if gap := fp.writes[i].Sub(fp.reads[i-1]); gap < t35 {
			t.Errorf("request %d written %s after the previous answer, want >= %s", i, gap, t35)
		}
	}
	if fp.flushes != 3 {
		t.Errorf("%d input flushes before 3 requests", fp.flushes)
	}
}

func TestContextCancelStopsWaiting(t *testing.T) {
	cfg := serial.Config{Baud: 50, Framing: "8N1"} // t3.5 is 700 ms
	fp := &fakePort{answer: func(req []byte) []byte { return frame(req[0], req[1], 2, 0, 1) }}
	m := newRTU(fp, cfg, time.Second, slog.New(slog.DiscardHandler))
	if _, err := m.do(context.Background(), Request{Unit: 1, Function: ReadHoldingRegisters, Count: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.do(ctx, Request{Unit: 1, Function: ReadHoldingRegisters, Count: 1}); err != context.Canceled {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if len(fp.writes) != 1 {
		t.Errorf("%d writes, want 1", len(fp.writes))
	}
}
