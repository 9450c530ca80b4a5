package client

import (
	"context"
	"net/http"

	"edge/daemon/api"
)

// Keys lists the site's gossip keys, by id, as the alive nodes report them.
func (c *Client) Keys(ctx context.Context) (api.Keyring, error) {
	var out api.Keyring
	err := c.get(ctx, api.PathKeys, nil, &out)
	return out, err
}

// InstallKey installs a gossip key (base64) on every node.
func (c *Client) InstallKey(ctx context.Context, key string) (api.KeyResult, error) {
	return c.keyOp(ctx, api.PathKeyInstall, api.KeyRequest{Key: key})
}

// UseKey makes an installed key (the key or its id) the primary key of
// every node.
func (c *Client) UseKey(ctx context.Context, key string) (api.KeyResult, error) {
	return c.keyOp(ctx, api.PathKeyUse, api.KeyRequest{Key: key})
}

// RemoveKey removes a key (the key or its id) from every node; the primary
// key is refused.
func (c *Client) RemoveKey(ctx context.Context, key string) (api.KeyResult, error) {
	return c.keyOp(ctx, api.PathKeyRemove, api.KeyRequest{Key: key})
}

// RotateKey puts a new gossip key in use on every node; with removeOld the
// other keys are removed afterwards.
func (c *Client) RotateKey(ctx context.Context, removeOld bool) (api.KeyResult, error) {
	return c.keyOp(ctx, api.PathKeyRotate, api.KeyRotateRequest{RemoveOld: removeOld})
}

func (c *Client) keyOp(ctx context.Context, path string, body any) (api.KeyResult, error) {
	var out api.KeyResult
	err := c.do(ctx, http.MethodPost, path, nil, body, &out)
	return out, err
}
