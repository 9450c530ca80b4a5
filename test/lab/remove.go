package lab

// RemoveNode destroys a node for good, as a box that dies and is taken
// away: its process is killed (SIGKILL), its namespace deleted and its
// folder removed, with its data_dir and credentials. A node of the same
// name can be added again afterwards (a replacement box, see
// NodeSpec.Index for its address).
func (l *Lab) RemoveNode(name string) error {
	n, _, err := l.lookup(name)
	if err != nil {
		return err
	}
	return l.removeNode(n)
}
