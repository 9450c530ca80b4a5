package systemd

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestJournalHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJournalHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}}))
	log.Debug("probe", "n", 1)
	log.Info("edged started", "node", "rru-3")
	log.With("part", "raft").Warn("no quorum")
	log.WithGroup("dev").Error("failed", "name", "radio0")
	want := `<7>level=DEBUG msg=probe n=1
<6>level=INFO msg="edged started" node=rru-3
<4>level=WARN msg="no quorum" part=raft
<3>level=ERROR msg=failed dev.name=radio0
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// Records logged at once from many goroutines, through handlers derived
// from one another, never mix a prefix with another record's line.
func TestJournalHandlerConcurrent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJournalHandler(&buf, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("g", i)
			for range 200 {
				if i%2 == 0 {
					l.Warn("w")
				} else {
					l.Info("i")
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		ok := strings.HasPrefix(l, "<4>") && strings.Contains(l, "level=WARN") ||
			strings.HasPrefix(l, "<6>") && strings.Contains(l, "level=INFO")
		if !ok {
			t.Fatalf("line %q: prefix and level disagree", l)
		}
	}
}
