package coord

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

// logBridge turns the "[LEVEL] subsystem: message" lines that serf and
// memberlist print through a *log.Logger into structured slog records, and
// recognises the few lines an operator must understand (a peer with the wrong
// key, a node name used twice) to say them plainly.
type logBridge struct {
	log *slog.Logger

	mu       sync.Mutex
	buf      []byte
	lastWarn map[string]time.Time // rate limit of the plain-language warnings
	now      func() time.Time

	// onConflict is called when serf gave up our name to another node.
	onConflict func(other string)
	conflictAt string
}

func newLogBridge(l *slog.Logger) *logBridge {
	return &logBridge{log: l, lastWarn: map[string]time.Time{}, now: time.Now}
}

func (b *logBridge) logger() *log.Logger { return log.New(b, "", 0) }

var (
	levelRE    = regexp.MustCompile(`^\[(DEBUG|INFO|WARN|ERR|ERROR)\]\s*(?:(serf|memberlist):\s*)?`)
	fromRE     = regexp.MustCompile(`from=(\S+)`)
	conflictRE = regexp.MustCompile(`conflicts with another node at (\S+)`)
)

// Write takes whole lines; *log.Logger writes one line per call.
func (b *logBridge) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	var lines []string
	for {
		i := bytes.IndexByte(b.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b.buf[:i]))
		b.buf = b.buf[i+1:]
	}
	b.mu.Unlock()
	for _, l := range lines {
		b.line(l)
	}
	return len(p), nil
}

func (b *logBridge) line(line string) {
	level := slog.LevelInfo
	component := "serf"
	if m := levelRE.FindStringSubmatch(line); m != nil {
		switch m[1] {
		case "DEBUG":
			level = slog.LevelDebug
		case "INFO":
			// serf's INFO lines repeat the events edged logs itself.
			level = slog.LevelDebug
		case "WARN":
			level = slog.LevelWarn
		case "ERR", "ERROR":
			level = slog.LevelError
		}
		if m[2] != "" {
			component = m[2]
		}
		line = line[len(m[0]):]
	}
	lower := strings.ToLower(line)
	switch {
	case strings.Contains(lower, "no installed keys could decrypt the message"),
		strings.Contains(lower, "encryption is configured but remote state is not encrypted"),
		strings.Contains(lower, "failed to decrypt"):
		from := "unknown"
		if m := fromRE.FindStringSubmatch(line); m != nil {
			from = m[1]
		}
		if b.once("key:"+hostOf(from), time.Minute) {
			b.log.Warn("gossip rejected: the peer does not use this site's gossip key; check key_file on both nodes",
				"peer", from)
		}
		level = slog.LevelDebug
	case strings.Contains(line, "conflicts with another node at"):
		if m := conflictRE.FindStringSubmatch(line); m != nil {
			b.mu.Lock()
			b.conflictAt = strings.TrimRight(m[1], ".,")
			b.mu.Unlock()
		}
	case strings.Contains(line, "minority in name conflict resolution"):
		b.mu.Lock()
		other, fn := b.conflictAt, b.onConflict
		b.mu.Unlock()
		if fn != nil {
			fn(other)
		}
	}
	b.log.Log(context.Background(), level, line, "component", component)
}

// once reports whether key has not been reported within every.
func (b *logBridge) once(key string, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if t, ok := b.lastWarn[key]; ok && now.Sub(t) < every {
		return false
	}
	if len(b.lastWarn) > 1024 { // bounded: drop the memory, keep working
		clear(b.lastWarn)
	}
	b.lastWarn[key] = now
	return true
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
