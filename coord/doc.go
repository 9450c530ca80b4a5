// Package coord keeps the site together: serf membership with encrypted
// gossip, and the joiner that turns discovery's sightings and the configured
// seeds into joins until every peer is a member. The raft-replicated store and
// the change controller join this package in later work.
package coord
