package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// verb is one subcommand of a command that has them (tls ca, keys list,
// raft peers).
type verb struct {
	name string
	run  func(ctx context.Context, e *env, args []string) error
}

// runVerb runs the verb args[0] of command cmd; -h prints usage.
func runVerb(ctx context.Context, e *env, cmd string, args []string, verbs []verb, usage func(io.Writer)) error {
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	want := joinOr(names)
	if len(args) == 0 {
		return fmt.Errorf("%w: missing subcommand: %s (see edgectl %s --help)", errUsage, want, cmd)
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, e, args[1:])
		}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stderr)
		return flag.ErrHelp
	}
	return fmt.Errorf("%w: unknown subcommand %q: want %s", errUsage, args[0], want)
}

// joinOr joins words as "a, b or c".
func joinOr(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
