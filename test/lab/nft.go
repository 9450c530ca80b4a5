package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// nftTable is the table Partition and Loss own in the bridge namespace.
const nftTable = "bridge edgelab"

// Partition splits the lab: nodes in different groups can exchange no frame
// at all (unicast, multicast, broadcast, ARP, IPv4 or IPv6). Nodes named in no
// group form one more group together, so Partition([]string{"node3"})
// isolates node3 from the rest. It replaces any earlier partition and leaves
// Loss alone.
func (l *Lab) Partition(groups ...[]string) error {
	if len(groups) == 0 {
		return fmt.Errorf("lab: partition: no groups")
	}
	return l.update(func(st *state) error {
		seen := map[string]bool{}
		var gs [][]string
		for _, g := range groups {
			if len(g) == 0 {
				return fmt.Errorf("lab: partition: empty group")
			}
			for _, name := range g {
				if _, err := st.node(name); err != nil {
					return err
				}
				if seen[name] {
					return fmt.Errorf("lab: partition: node %s is in two groups", name)
				}
				seen[name] = true
			}
			gs = append(gs, append([]string(nil), g...))
		}
		st.Partition = gs
		if err := applyFilter(context.Background(), st); err != nil {
			return fmt.Errorf("lab: partition: %w", err)
		}
		return nil
	})
}

// Heal removes the partition.
func (l *Lab) Heal() error {
	return l.update(func(st *state) error {
		st.Partition = nil
		if err := applyFilter(context.Background(), st); err != nil {
			return fmt.Errorf("lab: heal: %w", err)
		}
		return nil
	})
}

// Loss drops pct percent of the frames delivered to every node, at random and
// independently per frame and receiver (nftables "numgen random mod 100 <
// pct"). Loss(0) removes it. It leaves any partition alone.
func (l *Lab) Loss(pct int) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("lab: loss %d%%: want 0 to 100", pct)
	}
	return l.update(func(st *state) error {
		st.Loss = pct
		if err := applyFilter(context.Background(), st); err != nil {
			return fmt.Errorf("lab: loss: %w", err)
		}
		return nil
	})
}

// Faults returns the current partition groups (nil when healed; the group of
// unlisted nodes is not shown) and loss percentage.
func (l *Lab) Faults() (partition [][]string, loss int) {
	_ = l.view(func(st *state) error {
		partition, loss = st.Partition, st.Loss
		return nil
	})
	return partition, loss
}

// applyFilter replaces the lab's nftables table in the bridge namespace with
// one that matches st, in one transaction.
func applyFilter(ctx context.Context, st *state) error {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return fmt.Errorf("nft not found (apt-get install nftables): %w", err)
	}
	script := filterScript(st)
	if _, err := run(ctx, script, "ip", "netns", "exec", st.Bridge, nft, "-f", "-"); err != nil {
		return fmt.Errorf("netns %s: nft: %w", st.Bridge, err)
	}
	return nil
}

// filterScript renders the table: a chain "partition" dropping frames
// between ports of different groups, and a chain "loss".
func filterScript(st *state) string {
	var b strings.Builder
	// Create-then-delete makes the delete safe when the table is absent.
	fmt.Fprintf(&b, "table %s {}\ndelete table %s\n", nftTable, nftTable)
	if len(st.Partition) == 0 && st.Loss == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "table %s {\n", nftTable)
	if len(st.Partition) > 0 {
		b.WriteString("\tchain partition {\n\t\ttype filter hook forward priority 0; policy accept;\n")
		veth := map[string]string{}
		for _, n := range st.Nodes {
			veth[n.Name] = n.Veth
		}
		groups := st.Partition
		listed := map[string]bool{}
		for _, g := range groups {
			for _, name := range g {
				listed[name] = true
			}
		}
		var rest []string
		for _, n := range st.Nodes {
			if !listed[n.Name] {
				rest = append(rest, n.Name)
			}
		}
		if len(rest) > 0 {
			groups = append(groups[:len(groups):len(groups)], rest)
		}
		for _, g := range groups {
			var ports []string
			for _, name := range g {
				if v, ok := veth[name]; ok {
					ports = append(ports, strconv.Quote(v))
				}
			}
			if len(ports) == 0 {
				continue
			}
			set := "{ " + strings.Join(ports, ", ") + " }"
			fmt.Fprintf(&b, "\t\tiifname %s oifname != %s counter drop\n", set, set)
		}
		b.WriteString("\t}\n")
	}
	if st.Loss > 0 {
		match := fmt.Sprintf("numgen random mod 100 < %d ", st.Loss)
		if st.Loss >= 100 {
			match = "" // nft rejects "< 100" for a value in 0-99
		}
		fmt.Fprintf(&b, "\tchain loss {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\t%scounter drop\n\t}\n", match)
	}
	b.WriteString("}\n")
	return b.String()
}

// ParseGroups parses the CLI form of partition groups, "a,b/c,d,e", into
// [[a b] [c d e]].
func ParseGroups(s string) [][]string {
	var groups [][]string
	for _, g := range strings.Split(s, "/") {
		groups = append(groups, strings.FieldsFunc(g, func(r rune) bool { return r == ',' || r == ' ' }))
	}
	return groups
}
