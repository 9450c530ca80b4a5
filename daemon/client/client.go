// Package client is the typed client of edged's local API. Its zero value
// talks to the default socket, /run/edged/edged.sock.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"edge/daemon/api"
)

// DefaultSocket is where edged listens unless its config says otherwise.
const DefaultSocket = "/run/edged/edged.sock"

// ErrUnreachable means no edged answered on the socket.
var ErrUnreachable = errors.New("edged is not reachable")

// Client talks to one edged over its unix socket.
type Client struct {
	// Socket is the API socket path; "" means DefaultSocket.
	Socket string

	once sync.Once
	hc   *http.Client
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) http() *http.Client {
	c.once.Do(func() {
		path := c.socket()
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns:    2,
			IdleConnTimeout: 30 * time.Second,
		}}
	})
	return c.hc
}

// Status returns the node and the members it sees.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.get(ctx, api.PathStatus, nil, &st)
	return st, err
}

// Members returns the members this node sees.
func (c *Client) Members(ctx context.Context) (api.Members, error) {
	var m api.Members
	err := c.get(ctx, api.PathMembers, nil, &m)
	return m, err
}

// Devices returns this node's devices.
func (c *Client) Devices(ctx context.Context) (api.Devices, error) {
	var d api.Devices
	err := c.get(ctx, api.PathDevices, nil, &d)
	return d, err
}

// WaitDevices blocks until a device changes past index (or wait passes)
// and returns the devices then.
func (c *Client) WaitDevices(ctx context.Context, index uint64, wait time.Duration) (api.Devices, error) {
	var d api.Devices
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {wait.String()}}
	err := c.get(ctx, api.PathDevices, q, &d)
	return d, err
}

// WaitMembers blocks until membership changes past index (or wait passes)
// and returns the members then. Use the Index of the previous answer.
func (c *Client) WaitMembers(ctx context.Context, index uint64, wait time.Duration) (api.Members, error) {
	var m api.Members
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {wait.String()}}
	err := c.get(ctx, api.PathMembers, q, &m)
	return m, err
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := "http://edged" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return fmt.Errorf("%w at %s: %w (is edged running? try --socket)", ErrUnreachable, c.socket(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("edged: %s", e.Error)
		}
		return fmt.Errorf("edged: %s", resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}
