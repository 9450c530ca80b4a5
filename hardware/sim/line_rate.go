package sim

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// lineRate keeps a simulator on a pty to the pace of a serial line: a pty
// moves any number of bytes at once, a line one character (start, eight
// data and stop bit: 10 bits) per 10/baud seconds. It also counts the bytes
// each way. Baud 0, the default, paces nothing.
//
// A request counts as received once its last byte would have arrived: the
// bytes read from the pty are taken to come back to back from when the
// first of them was read (or from when the line went idle after the bytes
// before). An answer is written in chunks of about a millisecond of line
// time, each once its last byte would be on the far side.
type lineRate struct {
	baud     atomic.Int64
	received atomic.Int64
	sent     atomic.Int64
	txMu     sync.Mutex // one answer on the line at a time
	txEnd    time.Time  // when the bytes sent so far are all out; under txMu
}

// spinWindow is how long before a due time a paced wait stops sleeping and
// spins: Go's timers wake up to a millisecond late on Linux (the poller
// waits in whole milliseconds), which is eleven characters at 115200 baud.
const spinWindow = 2 * time.Millisecond

func (r *lineRate) setBaud(baud int) { r.baud.Store(int64(max(baud, 0))) }

// wireTime is how long n characters take on the line; 0 when not paced.
func (r *lineRate) wireTime(n int) time.Duration {
	b := r.baud.Load()
	if b <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 10 * int64(time.Second) / b)
}

// bytes returns the bytes received and sent so far.
func (r *lineRate) bytes() (received, sent int64) {
	return r.received.Load(), r.sent.Load()
}

// rxClock follows when the bytes read from a pty would have arrived on the
// line. It belongs to the one goroutine that reads.
type rxClock struct {
	end time.Time // the last byte accounted for is fully received
}

// arrived accounts for n bytes read at now and calls at with the index and
// arrival time of each.
func (c *rxClock) arrived(r *lineRate, now time.Time, n int, at func(i int, t time.Time)) {
	r.received.Add(int64(n))
	char := r.wireTime(1)
	if char == 0 {
		c.end = now
		for i := range n {
			at(i, now)
		}
		return
	}
	if c.end.Before(now) {
		c.end = now // the line was idle: these bytes started when read
	}
	start := c.end
	for i := range n {
		// From the chunk's start, so the rounding of one character does
		// not add up over a long chunk.
		c.end = start.Add(r.wireTime(i + 1))
		at(i, c.end)
	}
}

// sleepUntil waits until t or later (up to a few milliseconds late). It
// returns false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	select {
	case <-ctx.Done():
		tm.Stop()
		return false
	case <-tm.C:
		return true
	}
}

// waitUntil waits until t, sleeping then spinning the last stretch so as to
// wake on time. It returns false if ctx ended first.
func waitUntil(ctx context.Context, t time.Time) bool {
	if d := time.Until(t) - spinWindow; d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return false
		case <-tm.C:
		}
	}
	for time.Now().Before(t) {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return ctx.Err() == nil
}

// write sends b on f at the line rate (at once when not paced), bounded
// overall by the write deadline so that a reader that stopped reading does
// not wedge the simulator. It stops early when ctx ends.
func (r *lineRate) write(ctx context.Context, f *os.File, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	r.txMu.Lock()
	defer r.txMu.Unlock()
	f.SetWriteDeadline(time.Now().Add(5*time.Second + r.wireTime(len(b))))
	char := r.wireTime(1)
	if char == 0 {
		return r.send(f, b)
	}
	start := time.Now()
	if start.Before(r.txEnd) {
		start = r.txEnd // still sending the answer before
	}
	end := start.Add(r.wireTime(len(b)))
	chunk := max(1, int(time.Millisecond/char))
	for off := 0; off < len(b); {
		n := min(chunk, len(b)-off)
		due := start.Add(r.wireTime(off + n))
		wait := waitUntil
		if end.Sub(due) > 2*spinWindow {
			// Far from the end a chunk may go out late (never early):
			// the chunks after it catch up, and the reader waits for
			// the whole answer anyway. Spin only near the end.
			wait = sleepUntil
		}
		if !wait(ctx, due) {
			return ctx.Err()
		}
		if err := r.send(f, b[off:off+n]); err != nil {
			return err
		}
		off += n
	}
	r.txEnd = end
	return nil
}

// send writes b and counts it as sent, before the write so that a reader
// who has the bytes also sees them counted.
func (r *lineRate) send(f *os.File, b []byte) error {
	r.sent.Add(int64(len(b)))
	n, err := f.Write(b)
	if n < len(b) {
		r.sent.Add(int64(n - len(b)))
	}
	return err
}
