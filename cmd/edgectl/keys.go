package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"edge/daemon/api"
)

// runKeys lists and changes the site's gossip keyring. The changes go to
// every node through the local edged; keys are shown by their id only.
func runKeys(ctx context.Context, e *env, args []string) error {
	op := func(name string) verb {
		return verb{name, func(ctx context.Context, e *env, args []string) error { return runKeysOp(ctx, e, name, args) }}
	}
	return runVerb(ctx, e, "keys", args, []verb{{"list", runKeysList}, op("install"), op("use"), op("remove"), {"rotate", runKeysRotate}}, keysUsage)
}

func keysUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgectl keys list [--json]")
	fmt.Fprintln(w, "       edgectl keys install KEY|- [--json]")
	fmt.Fprintln(w, "       edgectl keys use KEY|ID|- [--json]")
	fmt.Fprintln(w, "       edgectl keys remove KEY|ID|- [--json]")
	fmt.Fprintln(w, "       edgectl keys rotate [--remove-old] [--json]")
	fmt.Fprintln(w, "\nThe site's gossip keys, on every alive node. KEY is base64 (edgectl keygen);")
	fmt.Fprintln(w, "- reads it from stdin. ID is a key id as keys list shows it.")
	fmt.Fprintln(w, "rotate: a new key, installed everywhere, then made primary; --remove-old")
	fmt.Fprintln(w, "then removes the others.")
}

// runKeysList prints the site's keys.
func runKeysList(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	kr, err := e.client.Keys(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, kr)
	}
	return printKeyring(e, kr)
}

// printKeyring prints the keys as a table, then the nodes that did not
// answer on stderr.
func printKeyring(e *env, kr api.Keyring) error {
	n := len(kr.Nodes)
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "KEY ID\tPRIMARY\tINSTALLED\tMISSING ON")
	for _, k := range kr.Keys {
		primary := ""
		switch {
		case len(k.Primary) == n && n > 0:
			primary = "*"
		case len(k.Primary) > 0:
			primary = fmt.Sprintf("%d/%d", len(k.Primary), n)
		}
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\n", k.ID, primary, len(k.Nodes), n, missingOn(kr.Nodes, k.Nodes))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, f := range kr.Failed {
		fmt.Fprintf(e.stderr, "edgectl keys: %s: %s\n", f.Node, f.Error)
	}
	return nil
}

// missingOn lists the nodes of all that are not in has, "-" for none.
func missingOn(all, has []string) string {
	var out []string
	for _, n := range all {
		found := false
		for _, h := range has {
			found = found || h == n
		}
		if !found {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// runKeysOp runs install, use or remove.
func runKeysOp(ctx context.Context, e *env, op string, args []string) error {
	fs := flag.NewFlagSet("keys "+op, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the site's keyring after it as one JSON object")
	// KEY may come first, before the flags.
	var key string
	if len(args) > 0 && (args[0] == "-" || !strings.HasPrefix(args[0], "-")) {
		key, args = args[0], args[1:]
	}
	if err := parseFlagsArgs(fs, args, e.stderr); err != nil {
		return err
	}
	if key == "" {
		if fs.NArg() != 1 {
			what := "KEY or ID"
			if op == "install" {
				what = "KEY"
			}
			return fmt.Errorf("%w: want one %s (- reads it from stdin)", errUsage, what)
		}
		key = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if key == "-" {
		var err error
		if key, err = readKey(os.Stdin); err != nil {
			return err
		}
	}
	var res api.KeyResult
	var err error
	switch op {
	case "install":
		res, err = e.client.InstallKey(ctx, key)
	case "use":
		res, err = e.client.UseKey(ctx, key)
	case "remove":
		res, err = e.client.RemoveKey(ctx, key)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	nodes := len(res.Keyring.Nodes)
	switch op {
	case "install":
		fmt.Fprintf(e.stdout, "key %s installed on %s; make it primary with: edgectl keys use %s\n", res.ID, plural(nodes, "node"), res.ID)
	case "use":
		fmt.Fprintf(e.stdout, "key %s is the primary key on %s\n", res.ID, plural(nodes, "node"))
	case "remove":
		fmt.Fprintf(e.stdout, "key %s removed from %s\n", res.ID, plural(nodes, "node"))
	}
	return printKeyring(e, res.Keyring)
}

// runKeysRotate puts a new key in use on every node.
func runKeysRotate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	removeOld := fs.Bool("remove-old", false, "remove the other keys once every alive node uses the new one")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	res, err := e.client.RotateKey(ctx, *removeOld)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	nodes := len(res.Keyring.Nodes)
	fmt.Fprintf(e.stdout, "new key %s installed on %s and primary on all of them\n", res.ID, plural(nodes, "node"))
	if len(res.Removed) > 0 {
		fmt.Fprintf(e.stdout, "removed the old keys: %s\n", strings.Join(res.Removed, ", "))
	}
	var old []string
	for _, k := range res.Keyring.Keys {
		if k.ID != res.ID {
			old = append(old, k.ID)
		}
	}
	if err := printKeyring(e, res.Keyring); err != nil {
		return err
	}
	switch {
	case len(old) == 1:
		fmt.Fprintf(e.stdout, "the old key stays installed; remove it with: edgectl keys remove %s\n", old[0])
	case len(old) > 1:
		fmt.Fprintf(e.stdout, "the old keys stay installed; remove each with: edgectl keys remove ID (%s)\n", strings.Join(old, ", "))
	}
	return nil
}

// readKey reads one base64 key from r (a pipe from edgectl keygen, or a
// key file).
func readKey(r io.Reader) (string, error) {
	s := bufio.NewScanner(io.LimitReader(r, 4096))
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" {
			return line, nil
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("read key from stdin: %w", err)
	}
	return "", errors.New("no key on stdin")
}

// parseFlagsArgs is parseFlags that leaves positional arguments in fs.
func parseFlagsArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
