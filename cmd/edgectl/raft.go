package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"edge/daemon/api"
)

// runRaft shows this node's view of the site's raft group: `raft peers`
// the last configuration it knows (also without a quorum), and with
// --peers-json a recovery file for a lost quorum (docs/recovery.md).
func runRaft(ctx context.Context, e *env, args []string) error {
	return runVerb(ctx, e, "raft", args, []verb{{"peers", runRaftPeers}}, raftUsage)
}

func raftUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgectl raft peers [--json | --peers-json [--force]]")
	fmt.Fprintln(w, "\npeers shows the raft configuration this node last knew, with each")
	fmt.Fprintln(w, "server's member status; it works without a quorum. --peers-json prints")
	fmt.Fprintln(w, "a recovery file (raft's peers.json): this node the only voter, the other")
	fmt.Fprintln(w, "servers alive now non-voters. See docs/recovery.md before you use it.")
}

func runRaftPeers(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("raft peers", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	peersJSON := fs.Bool("peers-json", false, "print a recovery file: this node the voter (lost quorum only)")
	force := fs.Bool("force", false, "with --peers-json: print it even though a leader is known")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if *asJSON && *peersJSON {
		return fmt.Errorf("%w: --json and --peers-json exclude each other", errUsage)
	}
	if *force && !*peersJSON {
		return fmt.Errorf("%w: --force goes with --peers-json", errUsage)
	}
	p, err := e.client.RaftPeers(ctx)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		return printJSON(e.stdout, p)
	case *peersJSON:
		entries, left, err := recoveryFile(p, *force)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			fmt.Fprintf(e.stderr, "edgectl raft peers: left out (not alive): %s\n", strings.Join(left, ", "))
		}
		return printPeersJSON(e.stdout, entries)
	}
	return printRaftPeers(e.stdout, p)
}

// recoveryFile selects the servers of a recovery file: this node, the only
// voter, so that it has a quorum of its own and no other node needs the
// file; and the other servers alive now, as non-voters (they follow it
// without a file and the leader gives them votes again once stable). left
// names the servers left out, with their status.
func recoveryFile(p api.RaftPeers, force bool) (entries []api.PeersJSONEntry, left []string, err error) {
	if p.Leader != "" && !force {
		return nil, nil, fmt.Errorf("the site has a raft leader (%s): a recovery file is only for a lost quorum (see docs/recovery.md; --force prints it anyway)", p.Leader)
	}
	if len(p.Servers) == 0 {
		return nil, nil, fmt.Errorf("%s knows no raft configuration (a site still forming, or a node never added): nothing to recover", p.Node)
	}
	self := false
	for _, s := range p.Servers {
		switch {
		case s.ID == p.Node:
			self = true
			entries = append(entries, api.PeersJSONEntry{ID: s.ID, Address: s.Address})
		case s.Status == api.StatusAlive:
			entries = append(entries, api.PeersJSONEntry{ID: s.ID, Address: s.Address, NonVoter: true})
		default:
			left = append(left, s.ID+" ("+s.Status+")")
		}
	}
	if !self {
		return nil, nil, fmt.Errorf("%s is not in the raft configuration it knows: make the recovery file on a node that is", p.Node)
	}
	return entries, left, nil
}

// printPeersJSON writes entries as a peers.json file, one server a line.
func printPeersJSON(w io.Writer, entries []api.PeersJSONEntry) error {
	var b strings.Builder
	b.WriteString("[\n")
	for i, en := range entries {
		line, err := json.Marshal(en)
		if err != nil {
			return err
		}
		b.WriteString("  ")
		b.Write(line)
		if i < len(entries)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func printRaftPeers(out io.Writer, p api.RaftPeers) error {
	leader := p.Leader
	if leader == "" {
		leader = "none (no quorum)"
	}
	fmt.Fprintf(out, "raft configuration as %s knows it; leader %s\n", p.Node, leader)
	if len(p.Servers) == 0 {
		fmt.Fprintln(out, "no servers yet: a new site forms once its first nodes are seen (bootstrap_expect)")
	} else {
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tADDRESS\tSUFFRAGE\tSTATUS\tLEADER")
		for _, s := range p.Servers {
			mark := ""
			if s.Leader {
				mark = "*"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Address, s.Suffrage, s.Status, mark)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "this node's log: last index %d (term %d), applied %d, generation %d\n", p.LastIndex, p.LastTerm, p.AppliedIndex, p.Generation)
	return err
}
