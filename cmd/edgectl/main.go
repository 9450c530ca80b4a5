// Command edgectl is the operator's CLI for edge. It talks only to the local
// edged over its unix socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"edge/daemon/api"
	"edge/daemon/client"
)

// command is one edgectl subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *env, args []string) error
}

// env is what every subcommand gets.
type env struct {
	client *client.Client
	stdout io.Writer
	stderr io.Writer
}

// errUsage marks bad command-line input (exit 2).
var errUsage = errors.New("usage")

var commands = []command{
	{"status", "show this node and the site at a glance", runStatus},
	{"members", "list the members of the site's cluster", runMembers},
	{"devices", "show this node's devices: state, sync, drift, last error", runDevices},
	{"apply", "change the site config: apply -f site.yaml [--base N] [--auto-confirm] [--allow-missing]", runApply},
	{"diff", "show what a site document would change, per node, with the native commands", runDiff},
	{"confirm", "confirm the tentative change (else every node reverts at the timeout)", runConfirm},
	{"rollback", "roll back the change in progress, or return to a generation: rollback [--to GEN]", runRollback},
	{"changes", "list changes, or show one with its progress per node: changes [ID] [-w]", runChanges},
	{"history", "list the site config generations", runHistory},
	{"events", "stream the site's events: members, changes, devices (--no-follow, --json)", runEvents},
	{"lock", "run a command under a site-wide lock: lock NAME [--limit N] -- CMD ...", runLock},
	{"unlock", "free a lock held by a command that died: unlock NAME [--holder H]", runUnlock},
	{"keygen", "print a new gossip key (base64, 32 bytes)", runKeygen},
	{"tls", "make the site CA and node certificates for mutual TLS", runTLS},
	{"version", "print the version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgectl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", client.DefaultSocket, "edged API socket `path`")
	version := fs.Bool("version", false, "print the version")
	fs.Usage = func() {} // errors are one line; --help prints usage below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "edgectl: %v (see edgectl --help)\n", err)
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, "edgectl", api.Version)
		return 0
	}
	if fs.NArg() == 0 {
		usage(stderr)
		return 2
	}
	name := fs.Arg(0)
	for _, c := range commands {
		if c.name != name {
			continue
		}
		e := &env{client: &client.Client{Socket: *socket}, stdout: stdout, stderr: stderr}
		err := c.run(ctx, e, fs.Args()[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(exitError)):
			var ee exitError
			errors.As(err, &ee)
			return ee.code
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "edgectl %s: %v\n", name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "edgectl %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "edgectl: unknown command %q (see edgectl --help)\n", name)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgectl [--socket PATH] COMMAND [--json]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n--socket defaults to %s. Exit codes: 0 ok, 1 error (one line on stderr), 2 bad usage.\n", client.DefaultSocket)
}

// parseFlags parses a subcommand's flags; extra arguments are a usage error.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard) // errors are reported by run, in one line
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
