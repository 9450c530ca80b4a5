// Package coord keeps the site together: serf membership with encrypted
// gossip, and the joiner that turns discovery's sightings and the configured
// seeds into joins until every peer is a member. The raft-replicated store and
// the change controller join this package in later work.
//
// The gossip keyring (keyring.go) is rotated on every node through serf's
// key queries and saved in the node's keyring file; a node that missed a
// rotation takes the site's keyring from a peer over mutual TLS
// (keyrecovery.go, KeyRecovery).
package coord
