// Command edgelab runs the site lab: N edged nodes in network namespaces on
// one bridge (package edge/test/lab). Linux only, root only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edge/test/lab"
)

const usage = `usage: edgelab COMMAND [--dir DIR (default /run/edgelab)] [-v (debug log)] [ARG]
  up -n N [--prefix P] [--edged PATH] [--site S] [--log-level L] [--no-devices]
                      prints "NODE SOCKET" lines when all are ready; every node gets
                      two simulated devices (radio0, rect0) unless --no-devices
  down [--prefix P]   remove every namespace, process and file of the lab (--prefix: if lab.json is lost)
  status | kill NODE | stop NODE | start NODE | heal
  partition A,B/C,D   nodes in different groups exchange no packet (unlisted nodes: one more group)
  loss PCT            drop PCT% of packets to every node (0 removes it)
`

// nargs is the number of positional arguments of each command.
var nargs = map[string]int{"up": 0, "down": 0, "status": 0, "heal": 0, "kill": 1, "stop": 1, "start": 1, "partition": 1, "loss": 1}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgelab:", strings.ReplaceAll(err.Error(), "\n", "; ")) // joined errors: one line
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	cmd, args := args[0], args[1:]
	if _, ok := nargs[cmd]; !ok {
		return fmt.Errorf("unknown command %q (see edgelab help)", cmd)
	}
	cfg := lab.DefaultConfig()
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "state directory")
	verbose := fs.Bool("v", false, "debug log")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "namespace name prefix (up, down)")
	fs.IntVar(&cfg.Nodes, "n", cfg.Nodes, "number of nodes (up)")
	fs.StringVar(&cfg.Edged, "edged", "", "edged binary (up)")
	fs.StringVar(&cfg.Site, "site", cfg.Site, "site name (up)")
	fs.StringVar(&cfg.LogLevel, "log-level", "", "log_level of every node (up)")
	noDevices := fs.Bool("no-devices", false, "no simulated devices on the nodes (up)")
	var pos []string // flags may come before or after the argument
	for {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != nargs[cmd] {
		return fmt.Errorf("%s: want %d argument(s), got %d (see edgelab help)", cmd, nargs[cmd], len(pos))
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	switch cmd {
	case "up":
		if !*noDevices {
			cfg.Extra = lab.SimDevices
		}
		l, err := lab.Up(ctx, cfg)
		if err != nil {
			return err
		}
		for _, n := range l.Nodes() {
			fmt.Fprintln(stdout, n.Name, n.Socket)
		}
		return nil
	case "down":
		return lab.Clean(cfg.Dir, cfg.Prefix, cfg.Logger)
	}
	l, err := lab.Open(cfg.Dir, cfg.Logger)
	if err != nil {
		return err
	}
	switch cmd {
	case "status":
		return l.WriteStatus(stdout)
	case "kill":
		return l.Kill(pos[0])
	case "stop":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return l.Stop(ctx, pos[0])
	case "start":
		return l.Start(ctx, pos[0])
	case "partition":
		return l.Partition(lab.ParseGroups(pos[0])...)
	case "heal":
		return l.Heal()
	}
	pct, err := strconv.Atoi(strings.TrimSuffix(pos[0], "%"))
	if err != nil {
		return fmt.Errorf("loss: %q is not a percentage", pos[0])
	}
	return l.Loss(pct)
}
