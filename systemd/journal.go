package systemd

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// NewJournalHandler returns a slog handler that writes text records to w,
// each line prefixed with its syslog priority ("<3>" for errors, "<4>"
// warnings, "<6>" info, "<7>" debug). journald reads and strips the prefix
// from a service's output (SyslogLevelPrefix=, on by default), so the
// journal shows each record at its level and `journalctl -u edged -p
// warning` filters on it.
func NewJournalHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	pw := &prefixWriter{w: w}
	return &journalHandler{mu: new(sync.Mutex), pw: pw, h: slog.NewTextHandler(pw, opts)}
}

type journalHandler struct {
	mu *sync.Mutex // shared by the handlers derived from one another
	pw *prefixWriter
	h  slog.Handler
}

// prefixWriter writes the prefix of the record being handled in the same
// write as its line, so that lines never interleave with prefixes.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priority maps a slog level to a syslog priority prefix.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.h.Enabled(ctx, l)
}

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pw.prefix = priority(r.Level)
	return j.h.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{mu: j.mu, pw: j.pw, h: j.h.WithAttrs(attrs)}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{mu: j.mu, pw: j.pw, h: j.h.WithGroup(name)}
}
