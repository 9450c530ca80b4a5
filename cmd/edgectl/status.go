package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"edge/daemon/api"
)

func version() string { return api.Version }

// runStatus prints this node and the site's members.
func runStatus(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object (with -w: one per line, at every change)")
	var watch bool
	fs.BoolVar(&watch, "w", false, "watch: print again at every membership change, and every 2 s")
	fs.BoolVar(&watch, "watch", false, "the same as -w")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if watch {
		return watchStatus(ctx, e, *asJSON)
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, st)
	}
	return printStatus(e, st)
}

// watchRefresh bounds the wait for a membership change, so that ages and
// device states are redrawn too.
const watchRefresh = 2 * time.Second

// watchStatus prints the status at every membership change (a blocking
// query) and at least every watchRefresh, until interrupted; on a terminal
// each print replaces the last.
func watchStatus(ctx context.Context, e *env, asJSON bool) error {
	tty := isTerminal(e.stdout)
	var index uint64
	for n := 0; ; n++ {
		st, err := e.client.WaitStatus(ctx, index, watchRefresh)
		if ctx.Err() != nil {
			return nil // Ctrl-C ends a watch: not an error
		}
		if err != nil {
			return err
		}
		index = st.Index
		switch {
		case asJSON:
			if err := printJSONLine(e, st); err != nil {
				return err
			}
		default:
			if tty {
				fmt.Fprint(e.stdout, "\x1b[H\x1b[2J") // home, clear
			} else if n > 0 {
				fmt.Fprintf(e.stdout, "--- %s\n", time.Now().Format(time.TimeOnly))
			}
			if err := printStatus(e, st); err != nil {
				return err
			}
		}
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printStatus prints the human status.
func printStatus(e *env, st api.Status) error {
	counts := map[string]int{}
	for _, m := range st.Members {
		counts[m.Status]++
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "node\t%s\n", st.Node.Name)
	fmt.Fprintf(w, "site\t%s\n", st.Node.Site)
	fmt.Fprintf(w, "version\t%s\n", st.Node.Version)
	fmt.Fprintf(w, "gossip\t%s (key id %s)\n", st.Node.Addr, st.Node.KeyID)
	if !st.Node.Started.IsZero() {
		fmt.Fprintf(w, "uptime\t%s\n", time.Since(st.Node.Started).Round(time.Second))
	}
	if r := st.Raft; r != nil {
		leader := r.Leader
		if leader == "" {
			leader = "none (no quorum: the site config cannot change from here)"
		}
		if r.Role == "forming" {
			fmt.Fprintf(w, "raft\tforming: a new site starts raft once its first nodes are seen (bootstrap_expect)\n")
		} else {
			fmt.Fprintf(w, "raft\tleader %s, this node %s, voters %s\n", leader, r.Role, strings.Join(r.Voters, ","))
		}
	} else {
		fmt.Fprintf(w, "raft\toff (no TLS credentials: see edgectl tls)\n")
	}
	if c := st.Config; c != nil {
		line := fmt.Sprintf("generation %d", c.Generation)
		if c.PendingChange != "" {
			line += fmt.Sprintf(", change %s %s", c.PendingChange, c.State)
		}
		if c.Applied != c.Generation {
			line += fmt.Sprintf(", this node at generation %d", c.Applied)
		}
		fmt.Fprintf(w, "config\t%s\n", line)
	}
	if line := mixedVersions(st.Members); line != "" {
		fmt.Fprintf(w, "warning\t%s\n", line)
	}
	for _, line := range incompatible(st) {
		fmt.Fprintf(w, "warning\t%s\n", line)
	}
	fmt.Fprintf(w, "members\t%d alive, %d suspect, %d failed, %d left\n",
		counts[api.StatusAlive], counts[api.StatusSuspect], counts[api.StatusFailed], counts[api.StatusLeft])
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	if err := printMembers(e.stdout, st.Members); err != nil {
		return err
	}
	if len(st.Devices) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	return printDevices(e.stdout, st.Devices)
}

// mixedVersions warns when the site's edged nodes (those not gone) run
// more than one release, most common first: "" when they all run one.
func mixedVersions(members []api.Member) string {
	count := map[string]int{}
	for _, m := range members {
		if m.Tags[api.TagRole] != api.RoleEdged || m.Status == api.StatusLeft {
			continue
		}
		v := m.Tags[api.TagVersion]
		if v == "" {
			v = "unknown"
		}
		count[v]++
	}
	if len(count) < 2 {
		return ""
	}
	vs := slices.Collect(maps.Keys(count))
	slices.SortFunc(vs, func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%s on %d", v, count[v])
	}
	return "mixed releases: " + strings.Join(parts, ", ") + " nodes (see edgectl members)"
}

// incompatible warns about each edged member (not gone) whose protocol
// range shares no version with the one the raft voters all speak (with raft
// off: with this node's): the leader gives such a node no raft replica.
func incompatible(st api.Status) []string {
	tags := map[string]string{}
	for _, m := range st.Members {
		if m.Tags[api.TagRole] == api.RoleEdged {
			tags[m.Name] = m.Tags[api.TagProto]
		}
	}
	refs, whose := []string{st.Node.Name}, "this node's"
	if st.Raft != nil && len(st.Raft.Voters) > 0 {
		refs, whose = st.Raft.Voters, "the voters'"
	}
	var ranges []api.Proto
	for _, n := range refs {
		tag, known := tags[n]
		if p, err := api.ParseProto(tag); known && err == nil {
			ranges = append(ranges, p)
		}
	}
	site, ok := api.CommonProto(ranges...)
	if len(ranges) == 0 || !ok {
		return nil // nothing to compare with (the voters' own mismatch shows in their rows)
	}
	var out []string
	for _, m := range st.Members {
		if m.Tags[api.TagRole] != api.RoleEdged || m.Status == api.StatusLeft {
			continue
		}
		tag := m.Tags[api.TagProto]
		p, err := api.ParseProto(tag)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("incompatible: %s advertises protocol %q, not a version range: it gets no raft replica (see docs/upgrade.md)", m.Name, tag))
		case !p.Overlaps(site):
			out = append(out, fmt.Sprintf("incompatible: %s speaks protocol %s, %s range is %s: it gets no raft replica until its release matches (see docs/upgrade.md)", m.Name, p, whose, site))
		}
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printJSONLine(e *env, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
