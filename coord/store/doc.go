// Package store is this node's replica of the site state, kept by
// hashicorp/raft over the site's mutual-TLS transport: site config
// generations, change records with per-node progress, and locks with fencing
// tokens. The FSM is deterministic (commands carry their time) and its
// history is bounded so snapshots stay small on flash. PlanMembership is the
// promoter that keeps 3 voters (5 at 7+ nodes) and a replica on every node.
package store
