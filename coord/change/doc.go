// Package change carries site-wide configuration changes through their
// lifecycle. The Controller runs on the raft leader and moves a change from
// PROPOSED through VALIDATED, APPLYING and APPLIED to CONFIRMED, or to
// REJECTED, ABORTED or ROLLED_BACK, deciding only from the replicated state
// (so a new leader resumes where the old one stopped). The Agent runs on
// every node: it validates changes with its own drivers, brings its
// hardware to the generation the replicated state says, reports its
// progress, and keeps a journal in data_dir so that a crash, a reboot or a
// partition never leaves half a change on the hardware: a tentative change
// not confirmed in time is reverted by the node itself.
package change
