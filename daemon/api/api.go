package api

import "time"

// Version is the edge release, set at link time with
// -ldflags "-X edge/daemon/api.Version=...".
var Version = "dev"

// Member statuses, as shown by `edgectl members` and in JSON.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	StatusFailed  = "failed"
	StatusLeft    = "left"
)

// Tag keys that edged puts on its serf member. Members without TagRole =
// RoleEdged are other serf agents (for example a stock `serf agent` an
// operator pointed at the site); they are shown but never managed.
const (
	TagRole       = "role"
	TagSite       = "site"
	TagVersion    = "version"
	TagGossipPort = "gossip_port"

	RoleEdged = "edged"
)

// Node describes the node answering the API.
type Node struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Version string `json:"version"`
	// Addr is the gossip address, host:port.
	Addr string `json:"addr"`
	// KeyID identifies the primary gossip key (first bytes of its SHA-256),
	// so two nodes can be compared without showing the key.
	KeyID string `json:"key_id,omitempty"`
	// Started is when this edged process started.
	Started time.Time `json:"started"`
}

// Member is one member of the site's serf cluster, as this node sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's gossip address, host:port.
	Addr string `json:"addr"`
	// Status is one of alive, suspect, failed, left.
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	// Since is when this node last saw the member's status change.
	Since time.Time `json:"since"`
}

// Device states.
const (
	DeviceOK           = "ok"
	DeviceDegraded     = "degraded"
	DeviceDisconnected = "disconnected"
	DeviceError        = "error"
)

// Drift is one setting whose actual value differs from the desired one.
type Drift struct {
	Setting string `json:"setting"`
	Desired string `json:"desired"`
	Actual  string `json:"actual"`
}

// Device is one device of this node, as its supervisor sees it.
type Device struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// Port is the serial port or network link.
	Port string `json:"port"`
	// State is one of ok, degraded, disconnected, error.
	State  string  `json:"state"`
	InSync bool    `json:"in_sync"`
	Drift  []Drift `json:"drift"`
	// LastError is the last failure, "" once the device is healthy again.
	LastError    string    `json:"last_error"`
	LastVerified time.Time `json:"last_verified"`
	Failures     int       `json:"failures"`
	BreakerOpen  bool      `json:"breaker_open"`
	// Actual holds the values last read back.
	Actual map[string]any `json:"actual,omitempty"`
}

// Devices is the answer of GET /v1/devices and `edgectl devices --json`.
type Devices struct {
	Devices []Device `json:"devices"`
	// Index grows on every device change; pass it back as ?index= to wait
	// for the next one.
	Index uint64 `json:"index"`
}

// Raft is this node's view of the site's raft group.
type Raft struct {
	// Leader is the leader's node name, "" when none is known.
	Leader string `json:"leader"`
	// Role is leader, follower, nonvoter, candidate, forming (a new site
	// waiting for its first voters) or none.
	Role   string   `json:"role"`
	Voters []string `json:"voters"`
	// Quorum: a leader is known, so the site config can change.
	Quorum bool `json:"quorum"`
}

// Status is the answer of GET /v1/status and of `edgectl status --json`.
type Status struct {
	Node    Node     `json:"node"`
	Members []Member `json:"members"`
	Devices []Device `json:"devices"`
	Raft    *Raft    `json:"raft,omitempty"`
	Config  *Config  `json:"config,omitempty"`
	// Index grows on every membership change; pass it back as ?index= to
	// wait for the next change.
	Index uint64 `json:"index"`
}

// Members is the answer of GET /v1/members and `edgectl members --json`.
type Members struct {
	Members []Member `json:"members"`
	Index   uint64   `json:"index"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Paths of the local API.
const (
	PathStatus  = "/v1/status"
	PathMembers = "/v1/members"
	PathDevices = "/v1/devices"
	// PathConfig answers the node config file as it is on disk, with the
	// values of secret-looking keys redacted (for support bundles).
	PathConfig = "/v1/config"
)

// ConfigFile is the answer of GET /v1/config.
type ConfigFile struct {
	Path string `json:"path"`
	Text string `json:"text"`
	// Redacted lists the keys whose values were replaced by "<redacted>".
	Redacted []string `json:"redacted"`
}
