package api

import "time"

// Paths of the site-config API.
const (
	PathApply    = "/v1/apply"
	PathDiff     = "/v1/diff"
	PathChanges  = "/v1/changes"
	PathConfirm  = "/v1/confirm"
	PathRollback = "/v1/rollback"
	PathHistory  = "/v1/history"
	PathLock     = "/v1/lock"
)

// Config is the site-config section of `edgectl status`.
type Config struct {
	// Generation is the confirmed generation (0: none yet).
	Generation uint64 `json:"generation"`
	// State is the state of the change in progress, or "confirmed" /
	// "none" when nothing is in progress.
	State string `json:"state"`
	// PendingChange is the id of the change in progress, "" when none.
	PendingChange string `json:"pending_change"`
	// Applied is the generation this node's hardware is driven to.
	Applied uint64 `json:"applied"`
}

// ApplyRequest is the body of POST /v1/apply and /v1/diff.
type ApplyRequest struct {
	File string `json:"file"`
	Doc  []byte `json:"doc"`
	// Base, when set, must be the current generation (compare-and-swap).
	Base         *uint64 `json:"base,omitempty"`
	AllowMissing bool    `json:"allow_missing,omitempty"`
	AutoConfirm  bool    `json:"auto_confirm,omitempty"`
	Author       string  `json:"author,omitempty"`
}

// SettingChange is one setting that a change moves.
type SettingChange struct {
	Node    string `json:"node"`
	Device  string `json:"device"`
	Setting string `json:"setting"`
	Old     any    `json:"old"`
	New     any    `json:"new"`
}

// NodePlan is what a change does on one node.
type NodePlan struct {
	Node     string          `json:"node"`
	Changes  []SettingChange `json:"changes"`
	Commands []string        `json:"commands"`
	// Error: the node could not plan (down, or its drivers refuse).
	Error string `json:"error,omitempty"`
	Alive bool   `json:"alive"`
}

// Diff is the answer of POST /v1/diff.
type Diff struct {
	Base     uint64     `json:"base"`
	Nodes    []NodePlan `json:"nodes"`
	Warnings []string   `json:"warnings"`
}

// ApplyResult is the answer of POST /v1/apply.
type ApplyResult struct {
	ChangeID string   `json:"change_id"`
	Gen      uint64   `json:"gen"`
	Targets  []string `json:"targets"`
	Missing  []string `json:"missing,omitempty"`
	Warnings []string `json:"warnings"`
	// InProgress: a rollback of the change in progress (Gen is the base it
	// returns to), not a new change.
	InProgress bool `json:"in_progress,omitempty"`
}

// NodeProgress is one node's part in a change.
type NodeProgress struct {
	Node    string    `json:"node"`
	Phase   string    `json:"phase"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// Transition is one step of a change.
type Transition struct {
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// Change is a site-wide change and its progress per node.
type Change struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Gen      uint64 `json:"gen"`
	Base     uint64 `json:"base"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Author   string `json:"author"`
	Strategy string `json:"strategy"`
	Atomic   bool   `json:"atomic"`
	// AutoConfirm: the leader confirms once every node applied.
	AutoConfirm bool           `json:"auto_confirm"`
	Created     time.Time      `json:"created"`
	Updated     time.Time      `json:"updated"`
	ConfirmBy   time.Time      `json:"confirm_by,omitzero"`
	Missing     []string       `json:"missing,omitempty"`
	Nodes       []NodeProgress `json:"nodes"`
	History     []Transition   `json:"history"`
	Final       bool           `json:"final"`
}

// Changes is the answer of GET /v1/changes.
type Changes struct {
	Changes []Change `json:"changes"`
	Index   uint64   `json:"index"`
}

// Generation is one entry of the history.
type Generation struct {
	Gen       uint64    `json:"gen"`
	ChangeID  string    `json:"change_id"`
	State     string    `json:"state"`
	Author    string    `json:"author"`
	File      string    `json:"file"`
	Hash      string    `json:"hash"`
	Created   time.Time `json:"created"`
	Confirmed bool      `json:"confirmed"`
}

// History is the answer of GET /v1/history.
type History struct {
	Confirmed   uint64       `json:"confirmed"`
	Generations []Generation `json:"generations"`
}

// ConfirmRequest is the body of POST /v1/confirm.
type ConfirmRequest struct {
	ChangeID string `json:"change_id,omitempty"`
}

// RollbackRequest is the body of POST /v1/rollback.
type RollbackRequest struct {
	// To is the generation to return to; nil: the change in progress, or
	// the generation before the confirmed one.
	To     *uint64 `json:"to,omitempty"`
	Author string  `json:"author,omitempty"`
}

// LockRequest is the body of POST and DELETE /v1/lock.
type LockRequest struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	Limit  int    `json:"limit"`
	// Wait: block up to this long for a free slot.
	Wait time.Duration `json:"wait,omitempty"`
}

// LockResult is the answer of POST /v1/lock: the fencing token (a raft
// index: it only grows).
type LockResult struct {
	Token uint64 `json:"token"`
}
