// Command edged is the edge daemon: it runs on every node of a site, finds
// the other nodes over mDNS and keeps them in one encrypted serf cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"edge/daemon"
	"edge/daemon/api"
	"edge/systemd"
)

// exitConfig (EX_CONFIG) tells systemd not to restart: the config must change.
const exitConfig = 78

func main() {
	configPath := flag.String("config", daemon.DefaultConfigPath, "node config `file`")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("edged", api.Version)
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "edged: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	os.Exit(run(*configPath))
}

// gcPercent is the Go GC target unless GOGC says otherwise: these are small
// boxes; a heap of 1.5x the live data (a few MB) is plenty. (A hard memory
// limit would make the raft leader, whose live heap is larger, collect
// without end.)
const gcPercent = 50

func run(configPath string) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	level := new(slog.LevelVar)
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		// journald stamps every line itself.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if os.Getenv("JOURNAL_STREAM") != "" {
		// Each line carries its priority, which journald reads.
		h = systemd.NewJournalHandler(os.Stderr, opts)
	}
	log := slog.New(h)

	cfg, err := daemon.LoadConfig(configPath)
	if err != nil {
		fatal(os.Stderr, err)
		return exitConfig
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Level: level})
	if err != nil {
		return fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = d.Reload() // Reload logs its own outcome
		}
	}()
	if err := d.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

func fail(err error) int {
	fatal(os.Stderr, err)
	if errors.Is(err, daemon.ErrConfig) {
		return exitConfig
	}
	return 1
}

// fatal prints why edged stops, one "edged: " line per line of err. Under
// systemd each line carries the error priority (<3>), so `journalctl -p err`
// shows why edged did not start.
func fatal(w io.Writer, err error) {
	prefix := "edged: "
	if os.Getenv("JOURNAL_STREAM") != "" {
		prefix = "<3>edged: "
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	io.WriteString(w, b.String())
}
