package api

import "time"

// PathEvents streams the site's events (GET, newline-delimited JSON).
const PathEvents = "/v1/events"

// Event is one entry of the site's event feed: a membership change, a
// change of the site config, or a device changing state (on any node).
type Event struct {
	// Seq numbers this node's feed; pass ?after=SEQ to resume.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is member, change or device.
	Kind string `json:"kind"`
	// Node is the node the event is about (or from).
	Node    string `json:"node"`
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
}
