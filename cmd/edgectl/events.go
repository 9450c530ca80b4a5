package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"edge/daemon/api"
)

// runEvents streams the site's events: members, changes, devices.
func runEvents(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	noFollow := fs.Bool("no-follow", false, "print what there is and exit")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	return e.client.Events(ctx, 0, !*noFollow, func(ev api.Event) error {
		if *asJSON {
			return printJSONLine(e, ev)
		}
		subject := ev.Subject
		if subject != "" {
			subject = " " + subject
		}
		_, err := fmt.Fprintf(e.stdout, "%s  %-6s %s%s: %s\n", ev.Time.Local().Format(time.TimeOnly+".000"), ev.Kind, ev.Node, subject, ev.Message)
		return err
	})
}
