package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"edge/daemon/api"
)

// runDevices lists this node's devices: state, sync, drift, last error.
func runDevices(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	d, err := e.client.Devices(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, d)
	}
	return printDevices(e.stdout, d.Devices)
}

func printDevices(out io.Writer, devs []api.Device) error {
	if len(devs) == 0 {
		_, err := fmt.Fprintln(out, "no devices configured")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tDRIVER\tPORT\tSTATE\tSYNC\tVERIFIED\tLAST ERROR")
	for _, d := range devs {
		sync := "yes"
		if !d.InSync {
			sync = "no"
			if len(d.Drift) > 0 {
				var parts []string
				for _, dr := range d.Drift {
					parts = append(parts, fmt.Sprintf("%s %s->%s", dr.Setting, dr.Desired, dr.Actual))
				}
				sync = "drift: " + strings.Join(parts, ", ")
			}
		}
		verified := "never"
		if !d.LastVerified.IsZero() {
			verified = time.Since(d.LastVerified).Round(time.Second).String() + " ago"
		}
		port := d.Port
		if port == "" {
			port = "-"
		}
		lastErr := d.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		state := d.State
		if d.BreakerOpen {
			state += " (breaker open)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Driver, port, state, sync, verified, lastErr)
	}
	return w.Flush()
}
