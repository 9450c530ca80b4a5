package api

// Paths of the gossip keyring API: GET PathKeys lists the site's keys; POST
// to PathKeys + "/install", "/use", "/remove" (body KeyRequest) and
// "/rotate" (body KeyRotateRequest) change them on every node.
const (
	PathKeys       = "/v1/keys"
	PathKeyInstall = PathKeys + "/install"
	PathKeyUse     = PathKeys + "/use"
	PathKeyRemove  = PathKeys + "/remove"
	PathKeyRotate  = PathKeys + "/rotate"
)

// Keyring is the site's gossip keyring as the alive edged nodes report it:
// the answer of GET /v1/keys and `edgectl keys list --json`. Keys are shown
// by their id only (the first bytes of the key's SHA-256), never in full.
type Keyring struct {
	// Nodes are the alive edged members that were asked, by name.
	Nodes []string `json:"nodes"`
	// Keys are the keys installed on any of them, the primary key of most
	// nodes first.
	Keys []KeyInfo `json:"keys"`
	// Failed are the nodes that did not answer, with why.
	Failed []NodeError `json:"failed,omitempty"`
}

// KeyInfo is one gossip key and where it is installed.
type KeyInfo struct {
	ID string `json:"id"`
	// Nodes hold the key: they can read gossip encrypted with it.
	Nodes []string `json:"nodes"`
	// Primary use it to encrypt what they send.
	Primary []string `json:"primary"`
}

// NodeError is a node that failed a keyring operation, and why.
type NodeError struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

// KeyRequest names a key: the key itself (base64, as made by `edgectl
// keygen`) for install; the key or its id for use and remove.
type KeyRequest struct {
	Key string `json:"key"`
}

// KeyRotateRequest asks for a new primary key on every node.
type KeyRotateRequest struct {
	// RemoveOld removes every other key once all alive nodes use the new one.
	RemoveOld bool `json:"remove_old"`
}

// KeyResult is the answer of a keyring change: the key it was about and the
// site's keyring after it.
type KeyResult struct {
	// ID of the key installed, made primary or removed (for a rotation: the
	// new key).
	ID string `json:"id"`
	// Removed are the ids of the keys a rotation with RemoveOld removed.
	Removed []string `json:"removed,omitempty"`
	Keyring Keyring  `json:"keyring"`
}
