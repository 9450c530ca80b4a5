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
	{"status", "this node and the site at a glance", runStatus},
	{"members", "the members of the site's cluster", runMembers},
	{"devices", "this node's devices: state, sync, drift, errors", runDevices},
	{"apply", "change the site config: apply -f site.yaml", runApply},
	{"diff", "what a site document would change, per node", runDiff},
	{"confirm", "keep the tentative change (else all revert)", runConfirm},
	{"rollback", "undo the change in progress, or [--to GEN]", runRollback},
	{"changes", "changes, or one with its progress: [ID] [-w]", runChanges},
	{"history", "the site config generations", runHistory},
	{"events", "the site's events: members, changes, devices", runEvents},
	{"lock", "run a command under a site-wide lock", runLock},
	{"unlock", "free a lock whose holder died", runUnlock},
	{"raft", "raft peers: the raft servers; recovery after a lost quorum", runRaft},
	{"support-bundle", "a tarball of state, config and logs for support", runBundle},
	{"keygen", "print a new gossip key", runKeygen},
	{"keys", "the site's gossip keys: list, install, use, remove, rotate", runKeys},
	{"tls", "make the site CA and node certificates", runTLS},
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
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintf(w, "\n--socket defaults to %s.\n", client.DefaultSocket)
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 error (one line on stderr), 2 bad usage.")
	fmt.Fprintln(w, "edgectl COMMAND --help shows a command's flags.")
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
