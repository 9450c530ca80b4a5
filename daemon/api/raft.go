package api

// PathRaftPeers answers this node's last known raft configuration
// (RaftPeers). It reads the local replica only, so it answers without a
// quorum: the operator's source for a recovery file (docs/recovery.md).
const PathRaftPeers = "/v1/raft/peers"

// Raft suffrages.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
)

// RaftServer is one server of the raft configuration.
type RaftServer struct {
	// ID is the node name.
	ID string `json:"id"`
	// Address is the raft address, IP:port.
	Address string `json:"address"`
	// Suffrage is voter or nonvoter.
	Suffrage string `json:"suffrage"`
	// Status is the node's member status as this node sees it (alive,
	// suspect, failed, left), or "unknown" when it is not a member.
	Status string `json:"status"`
	// Leader: this node knows it as the leader.
	Leader bool `json:"leader"`
}

// RaftPeers is the answer of GET /v1/raft/peers and of
// `edgectl raft peers --json`.
type RaftPeers struct {
	// Node is the node that answers.
	Node string `json:"node"`
	// Leader is the leader's node name, "" when none is known (no quorum).
	Leader string `json:"leader"`
	// Servers is the configuration, by id; empty on a site still forming.
	Servers []RaftServer `json:"servers"`
	// LastIndex and LastTerm are of the last entry of this node's raft log,
	// AppliedIndex the last one its replica applied: after a lost quorum,
	// the survivor with the highest last index holds the most.
	LastIndex    uint64 `json:"last_index"`
	LastTerm     uint64 `json:"last_term"`
	AppliedIndex uint64 `json:"applied_index"`
	// Generation is the site config generation of this replica.
	Generation uint64 `json:"generation"`
}

// PeersJSONEntry is one server of a recovery file, raft's peers.json
// (format version 3, as Consul uses it).
type PeersJSONEntry struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}
