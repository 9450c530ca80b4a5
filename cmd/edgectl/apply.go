package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"edge/daemon/api"
)

// stallTimeout: edgectl stops following a change that shows no progress.
const stallTimeout = 2 * time.Minute

// maxDocSize bounds a site document read by edgectl.
const maxDocSize = 1 << 20

func readDoc(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDocSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxDocSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxDocSize)
	}
	return b, nil
}

type baseFlag struct {
	set bool
	v   uint64
}

func (b *baseFlag) String() string { return strconv.FormatUint(b.v, 10) }
func (b *baseFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a generation number, got %q", s)
	}
	b.set, b.v = true, v
	return nil
}

func author() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// runApply changes the site config and follows the change to its end.
func runApply(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	file := fs.String("f", "", "site document `file` (- for stdin)")
	var base baseFlag
	fs.Var(&base, "base", "refuse unless the site is at this `generation` (compare-and-swap)")
	allowMissing := fs.Bool("allow-missing", false, "apply even if target nodes are down (they converge when they return)")
	autoConfirm := fs.Bool("auto-confirm", false, "confirm once every node read back the new values")
	noWait := fs.Bool("no-wait", false, "return once the change is accepted")
	asJSON := fs.Bool("json", false, "print the final change as one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%w: -f FILE is required", errUsage)
	}
	doc, err := readDoc(*file)
	if err != nil {
		return err
	}
	req := api.ApplyRequest{File: *file, Doc: doc, AllowMissing: *allowMissing, AutoConfirm: *autoConfirm, Author: author()}
	if base.set {
		req.Base = &base.v
	}
	res, err := e.client.Apply(ctx, req)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "change %s: generation %d on %s\n", res.ChangeID, res.Gen, strings.Join(res.Targets, ", "))
		if len(res.Missing) > 0 {
			fmt.Fprintf(e.stdout, "down, will converge when back: %s\n", strings.Join(res.Missing, ", "))
		}
	}
	if *noWait {
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		return nil
	}
	return follow(ctx, e, res.ChangeID, *asJSON)
}

// follow prints a change's progress until it settles; a change that did not
// take is an error (exit 1).
func follow(ctx context.Context, e *env, id string, asJSON bool) error {
	return followUntil(ctx, e, id, asJSON, false)
}

// followUntil follows a change; untilFinal also waits through a tentative
// APPLIED until the change is confirmed or rolled back.
func followUntil(ctx context.Context, e *env, id string, asJSON, untilFinal bool) error {
	var index uint64
	seen := map[string]string{}
	state := ""
	progress := time.Now()
	for {
		c, idx, err := e.client.Change(ctx, id, index, 30*time.Second)
		if err != nil {
			return err
		}
		if idx != index {
			progress = time.Now()
		} else if time.Since(progress) > stallTimeout && !c.Final {
			return fmt.Errorf("change %s: no progress for %s (state %s; is this node cut off from the leader?); it goes on without edgectl: follow it with `edgectl changes %s -w`", id, stallTimeout, c.State, id)
		}
		index = idx
		if !asJSON {
			for _, n := range c.Nodes {
				key := n.Phase + n.Reason
				if seen[n.Node] != key {
					seen[n.Node] = key
					line := fmt.Sprintf("  %-12s %s", n.Node, n.Phase)
					if n.Reason != "" {
						line += ": " + n.Reason
					}
					fmt.Fprintln(e.stdout, line)
				}
			}
			if c.State != state {
				state = c.State
				line := strings.ToUpper(c.State)
				if c.Reason != "" {
					line += ": " + c.Reason
				}
				fmt.Fprintln(e.stdout, line)
			}
		}
		switch {
		case c.State == "applied" && !c.AutoConfirm && !untilFinal:
			if asJSON {
				return printJSON(e.stdout, c)
			}
			fmt.Fprintf(e.stdout, "tentative: run `edgectl confirm` before %s or every node reverts to generation %d\n", c.ConfirmBy.Local().Format(time.TimeOnly), c.Base)
			return nil
		case c.Final:
			if asJSON {
				if err := printJSON(e.stdout, c); err != nil {
					return err
				}
			}
			if c.State == "confirmed" {
				return nil
			}
			return fmt.Errorf("change %s %s: %s", c.ID, c.State, c.Reason)
		}
	}
}

// runDiff shows what a document would change, per node and device, with
// the native commands.
func runDiff(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	file := fs.String("f", "", "site document `file` (- for stdin)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%w: -f FILE is required", errUsage)
	}
	doc, err := readDoc(*file)
	if err != nil {
		return err
	}
	d, err := e.client.Diff(ctx, api.ApplyRequest{File: *file, Doc: doc})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, d)
	}
	for _, w := range d.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	if len(d.Nodes) == 0 {
		fmt.Fprintf(e.stdout, "no change: the site already has these settings (generation %d)\n", d.Base)
		return nil
	}
	fmt.Fprintf(e.stdout, "against generation %d:\n", d.Base)
	var refused []string
	for _, n := range d.Nodes {
		state := ""
		if !n.Alive {
			state = " (down)"
		}
		fmt.Fprintf(e.stdout, "%s%s\n", n.Node, state)
		for _, c := range n.Changes {
			to := fmtVal(c.New)
			if c.New == nil {
				to = "(back to the node config)"
			}
			fmt.Fprintf(e.stdout, "  %s.%s: %s -> %s\n", c.Device, c.Setting, fmtVal(c.Old), to)
		}
		for _, cmd := range n.Commands {
			fmt.Fprintf(e.stdout, "    %s\n", cmd)
		}
		if n.Error != "" {
			fmt.Fprintf(e.stdout, "    (%s)\n", n.Error)
			if n.Alive {
				refused = append(refused, n.Node)
			}
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("the drivers of %s cannot plan this change (see above)", strings.Join(refused, ", "))
	}
	return nil
}

func fmtVal(v any) string {
	if v == nil {
		return "-"
	}
	if l, ok := v.([]any); ok {
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = fmt.Sprint(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// runChanges lists the changes, or shows one with its progress per node.
func runChanges(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("changes", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	watch := fs.Bool("w", false, "follow the change until it settles")
	fs.SetOutput(io.Discard)
	id := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if id != "" {
		if *watch {
			return followUntil(ctx, e, id, *asJSON, true)
		}
		c, _, err := e.client.Change(ctx, id, 0, 0)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, c)
		}
		return printChange(e.stdout, c)
	}
	cs, err := e.client.Changes(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, cs)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tGEN\tBASE\tSTATE\tNODES\tAUTHOR\tREASON")
	for _, c := range cs.Changes {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", c.ID, c.Kind, c.Gen, c.Base, c.State, len(c.Nodes), c.Author, c.Reason)
	}
	return w.Flush()
}

func printChange(out io.Writer, c api.Change) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "change\t%s (%s)\n", c.ID, c.Kind)
	fmt.Fprintf(w, "generation\t%d (base %d)\n", c.Gen, c.Base)
	fmt.Fprintf(w, "state\t%s\n", c.State)
	if c.Reason != "" {
		fmt.Fprintf(w, "reason\t%s\n", c.Reason)
	}
	fmt.Fprintf(w, "author\t%s\n", c.Author)
	if !c.ConfirmBy.IsZero() && c.State == "applied" {
		fmt.Fprintf(w, "confirm by\t%s\n", c.ConfirmBy.Local().Format(time.RFC3339))
	}
	if len(c.Missing) > 0 {
		fmt.Fprintf(w, "down\t%s\n", strings.Join(c.Missing, ", "))
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tPHASE\tREASON")
	for _, n := range c.Nodes {
		r := n.Reason
		if r == "" {
			r = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", n.Node, n.Phase, r)
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tSTATE\tREASON")
	for _, t := range c.History {
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.Time.Local().Format(time.TimeOnly), t.State, t.Reason)
	}
	return w.Flush()
}

// runConfirm confirms the tentative change.
func runConfirm(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("confirm", flag.ContinueOnError)
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	gen, err := e.client.Confirm(ctx, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "confirmed: the site is at generation %d\n", gen)
	return nil
}

// runRollback rolls back the change in progress, or returns the site to an
// earlier generation.
func runRollback(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	var to baseFlag
	fs.Var(&to, "to", "return to this `generation` (default: the change in progress, else the one before the current)")
	noWait := fs.Bool("no-wait", false, "return once the rollback is accepted")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	req := api.RollbackRequest{Author: author()}
	if to.set {
		req.To = &to.v
	}
	res, err := e.client.Rollback(ctx, req)
	if err != nil {
		return err
	}
	if res.InProgress {
		fmt.Fprintf(e.stdout, "rolling back change %s: %s return to generation %d\n", res.ChangeID, strings.Join(res.Targets, ", "), res.Gen)
	} else {
		from := "the previous generation"
		if req.To != nil {
			from = fmt.Sprintf("generation %d", *req.To)
		}
		fmt.Fprintf(e.stdout, "change %s: back to the settings of %s, as new generation %d, on %s\n", res.ChangeID, from, res.Gen, strings.Join(res.Targets, ", "))
	}
	if *noWait {
		return nil
	}
	err = followUntil(ctx, e, res.ChangeID, false, true)
	if err != nil && strings.Contains(err.Error(), " rolled_back: ") {
		return nil // rolling the change in progress back ends rolled_back: that is success
	}
	return err
}

// runHistory lists the generations.
func runHistory(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	h, err := e.client.History(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, h)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "GEN\tSTATE\tCHANGE\tAUTHOR\tWHEN\tFILE")
	for _, g := range h.Generations {
		mark := ""
		if g.Confirmed {
			mark = " *"
		}
		fmt.Fprintf(w, "%d%s\t%s\t%s\t%s\t%s\t%s\n", g.Gen, mark, g.State, g.ChangeID, g.Author, g.Created.Local().Format("2006-01-02 15:04:05"), g.File)
	}
	fmt.Fprintf(w, "\n* the site's confirmed generation (%d)\n", h.Confirmed)
	return w.Flush()
}
