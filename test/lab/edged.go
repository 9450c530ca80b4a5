package lab

import (
	"fmt"
	"slices"
)

// SetEdged makes the node run the edged binary at path from its next Start:
// stop the node, swap its binary, start it again (an upgrade or a
// downgrade). A running node keeps its process until it is stopped. The
// node config stays as it is, so the binary must accept it. Only a node
// that runs edged (not one added with NodeSpec.Argv) can swap. The path is
// resolved like Config.Edged.
func (l *Lab) SetEdged(name, path string) error {
	if path == "" {
		return fmt.Errorf("lab: node %s: no edged binary given", name)
	}
	p, err := findEdged(path)
	if err != nil {
		return fmt.Errorf("lab: node %s: %w", name, err)
	}
	return l.update(func(st *state) error {
		n, err := st.node(name)
		if err != nil {
			return err
		}
		if edgedOf(n.Argv, n.Config) == "" {
			return fmt.Errorf("lab: node %s: runs %q, not edged --config: no binary to swap", name, n.Argv)
		}
		argv := slices.Clone(n.Argv)
		argv[0] = p
		n.Argv = argv
		l.log.Info("edged binary set", "node", name, "edged", p)
		return nil
	})
}

// Edged returns the edged binary the node runs (from its next Start if it
// was swapped while running); "" for a node with a command of its own.
func (n Node) Edged() string { return edgedOf(n.Argv, n.Config) }

// edgedOf returns EDGED of a command "EDGED --config CONFIG", else "".
func edgedOf(argv []string, config string) string {
	if len(argv) == 3 && argv[1] == "--config" && argv[2] == config {
		return argv[0]
	}
	return ""
}
