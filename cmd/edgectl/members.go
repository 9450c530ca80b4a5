package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"edge/daemon/api"
)

// runMembers lists the site's members as this node sees them.
func runMembers(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("members", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	m, err := e.client.Members(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, m)
	}
	return printMembers(e.stdout, m.Members)
}

func printMembers(out io.Writer, members []api.Member) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tADDR\tSTATUS\tROLE\tVERSION\tSINCE")
	for _, m := range members {
		role := m.Tags[api.TagRole]
		if role == "" {
			role = "-" // a serf agent that is not edged
		}
		ver := m.Tags[api.TagVersion]
		if ver == "" {
			ver = "-"
		}
		since := "-"
		if !m.Since.IsZero() {
			since = time.Since(m.Since).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Addr, m.Status, role, ver, since)
	}
	return w.Flush()
}
