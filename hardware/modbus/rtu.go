package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"edge/hardware"
	"edge/hardware/serial"
)

// port is what the RTU master needs of a serial port (*serial.Port).
type port interface {
	Write(ctx context.Context, b []byte) error
	Read(ctx context.Context, buf []byte, timeout time.Duration) (int, error)
	Discard() error
}

// rtu is a Modbus RTU master on one serial line: one request at a time,
// each preceded by the 3.5-character silent interval, each answer framed
// by its expected length and checked for the silent interval after it.
// It does not retry: the supervisor does.
type rtu struct {
	port    port
	timeout time.Duration // for an answer to start and finish
	char    time.Duration // one character on the wire
	t35     time.Duration // the silent interval between frames
	log     *slog.Logger
	observe hardware.ExchangeObserver // nil: nobody listens

	// quietFrom is when the line went quiet (end of our last frame or the
	// last byte received).
	quietFrom time.Time
}

// silentInterval is t3.5: 3.5 character times, fixed at 1.75 ms above
// 19200 baud (Modbus over serial line v1.02, 2.5.1.1).
func silentInterval(cfg serial.Config) time.Duration {
	if cfg.Baud > 19200 {
		return 1750 * time.Microsecond
	}
	return cfg.CharTime() * 7 / 2
}

func newRTU(p port, cfg serial.Config, timeout time.Duration, log *slog.Logger) *rtu {
	return &rtu{
		port:    p,
		timeout: timeout,
		char:    cfg.CharTime(),
		t35:     silentInterval(cfg),
		log:     log,
	}
}

// do sends req and returns the registers of the answer (for reads). The
// exchange, from the write to the end of the answer and of the silence
// after it, is reported to the observer.
func (m *rtu) do(ctx context.Context, req Request) (regs []uint16, err error) {
	frame, err := req.Encode()
	if err != nil {
		return nil, err
	}
	if err := m.quiet(ctx); err != nil {
		return nil, err
	}
	// A late answer to an earlier request must not pass for this one.
	if err := m.port.Discard(); err != nil {
		return nil, err
	}
	if m.observe != nil {
		defer func(start time.Time) { m.observe(time.Since(start), err) }(time.Now())
	}
	if m.log.Enabled(ctx, slog.LevelDebug) {
		m.log.Debug("modbus send", "request", req.String(), "frame", fmt.Sprintf("% x", frame))
	}
	if err := m.port.Write(ctx, frame); err != nil {
		m.quietFrom = time.Now()
		return nil, err
	}
	// The frame is in the kernel's buffer; it takes this long on the wire.
	m.quietFrom = time.Now().Add(time.Duration(len(frame)) * m.char)
	answer, err := m.receive(ctx, req)
	if m.log.Enabled(ctx, slog.LevelDebug) && len(answer) > 0 {
		m.log.Debug("modbus receive", "request", req.String(), "frame", fmt.Sprintf("% x", answer))
	}
	if err != nil {
		return nil, err
	}
	return DecodeResponse(req, answer)
}

// quiet waits out the silent interval since the line last carried a frame.
func (m *rtu) quiet(ctx context.Context) error {
	wait := time.Until(m.quietFrom.Add(m.t35))
	if wait <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receive reads the answer to req: until its expected length, within the
// timeout (stretched by the time the frames take on the wire), then checks
// that the silent interval follows. Bytes that cannot start our answer
// (another unit, another function) are read until the line is silent and
// handed to DecodeResponse, which says what is wrong with them.
func (m *rtu) receive(ctx context.Context, req Request) ([]byte, error) {
	// The request is on the wire until quietFrom; the answer takes its
	// own length in character times on top of the timeout.
	answerLen := 8
	if req.Function == ReadHoldingRegisters || req.Function == ReadInputRegisters {
		answerLen = 5 + 2*int(req.Count)
	}
	deadline := m.quietFrom.Add(m.timeout + time.Duration(answerLen)*m.char)
	gap := max(m.t35, time.Millisecond)
	buf := make([]byte, MaxFrame+1)
	got := 0
	for {
		want := req.responseLen(buf[:got])
		foreign := got >= 2 && (buf[0] != req.Unit || (buf[1] != req.Function && buf[1] != req.Function|0x80))
		if !foreign {
			if want > MaxFrame {
				return buf[:got], garbage("byte count %d makes a frame longer than %d bytes", buf[2], MaxFrame)
			}
			if want > 0 && got >= want {
				break
			}
		}
		if got == len(buf) {
			return buf[:got], garbage("more than %d bytes: % x", MaxFrame, buf[:16])
		}
		left := time.Until(deadline)
		if left <= 0 {
			if got == 0 {
				return nil, fmt.Errorf("%w: no answer within %s", hardware.ErrTimeout, m.timeout)
			}
			return buf[:got], garbage("short frame: %d bytes in %s: % x", got, m.timeout, buf[:got])
		}
		wait := left
		if foreign {
			wait = min(left, gap)
		}
		n, err := m.port.Read(ctx, buf[got:], wait)
		got += n
		if n > 0 {
			m.quietFrom = time.Now()
		}
		if err != nil {
			if !errors.Is(err, hardware.ErrTimeout) {
				return buf[:got], err
			}
			if foreign {
				return buf[:got], nil // silence after bytes that are not our answer
			}
		}
	}
	want := req.responseLen(buf[:got])
	if got > want {
		return buf[:got], garbage("%d more bytes right after the frame: % x", got-want, buf[want:got])
	}
	// The frame must be followed by silence. Waiting for it is also the
	// silent interval before the next request.
	var extra [64]byte
	n, err := m.port.Read(ctx, extra[:], gap)
	if n > 0 {
		m.quietFrom = time.Now()
		return append(buf[:got], extra[:n]...), garbage("%d more bytes right after the frame: % x", n, extra[:n])
	}
	if err != nil && !errors.Is(err, hardware.ErrTimeout) {
		return buf[:got], err
	}
	return buf[:got], nil
}
