package client

import (
	"context"

	"edge/daemon/api"
)

// RaftPeers returns this node's last known raft configuration; it answers
// without a quorum.
func (c *Client) RaftPeers(ctx context.Context) (api.RaftPeers, error) {
	var out api.RaftPeers
	err := c.get(ctx, api.PathRaftPeers, nil, &out)
	return out, err
}
