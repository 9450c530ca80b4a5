// Package client is the typed client of edged's local API. Its zero value
// talks to the default socket, /run/edged/edged.sock.
package client

import (
	"bytes"
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

// WaitStatus blocks until membership changes past index (or wait passes)
// and returns the status then.
func (c *Client) WaitStatus(ctx context.Context, index uint64, wait time.Duration) (api.Status, error) {
	var st api.Status
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {wait.String()}}
	err := c.get(ctx, api.PathStatus, q, &st)
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

// Apply proposes a site config change.
func (c *Client) Apply(ctx context.Context, req api.ApplyRequest) (api.ApplyResult, error) {
	var out api.ApplyResult
	err := c.do(ctx, http.MethodPost, api.PathApply, nil, req, &out)
	return out, err
}

// Diff shows what a site document would change, per node, with the
// native commands.
func (c *Client) Diff(ctx context.Context, req api.ApplyRequest) (api.Diff, error) {
	var out api.Diff
	err := c.do(ctx, http.MethodPost, api.PathDiff, nil, req, &out)
	return out, err
}

// Changes lists the changes, newest first.
func (c *Client) Changes(ctx context.Context) (api.Changes, error) {
	var out api.Changes
	err := c.get(ctx, api.PathChanges, nil, &out)
	return out, err
}

// Change returns one change; with wait > 0 it first waits for the
// replicated state to pass index.
func (c *Client) Change(ctx context.Context, id string, index uint64, wait time.Duration) (api.Change, uint64, error) {
	var out api.Changes
	var q url.Values
	if wait > 0 {
		q = url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {wait.String()}}
	}
	if err := c.get(ctx, api.PathChanges+"/"+url.PathEscape(id), q, &out); err != nil {
		return api.Change{}, 0, err
	}
	if len(out.Changes) != 1 {
		return api.Change{}, 0, fmt.Errorf("change %s: unexpected answer", id)
	}
	return out.Changes[0], out.Index, nil
}

// Confirm confirms the applied change (id "" for the one in progress).
func (c *Client) Confirm(ctx context.Context, id string) (uint64, error) {
	var out map[string]uint64
	err := c.do(ctx, http.MethodPost, api.PathConfirm, nil, api.ConfirmRequest{ChangeID: id}, &out)
	return out["generation"], err
}

// Rollback rolls the change in progress back, or returns the site to an
// earlier generation.
func (c *Client) Rollback(ctx context.Context, req api.RollbackRequest) (api.ApplyResult, error) {
	var out api.ApplyResult
	err := c.do(ctx, http.MethodPost, api.PathRollback, nil, req, &out)
	return out, err
}

// History lists the generations, newest first.
func (c *Client) History(ctx context.Context) (api.History, error) {
	var out api.History
	err := c.get(ctx, api.PathHistory, nil, &out)
	return out, err
}

// Events streams the site's event feed after seq to fn until ctx ends, fn
// fails, or (follow false) the feed is drained.
func (c *Client) Events(ctx context.Context, after uint64, follow bool, fn func(api.Event) error) error {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "follow": {strconv.FormatBool(follow)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edged"+api.PathEvents+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return fmt.Errorf("%w at %s: %w (is edged running? try --socket)", ErrUnreachable, c.socket(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("edged: %s", resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e api.Event
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("events: edged closed the stream (stopped or restarted)")
			}
			return fmt.Errorf("events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Lock takes a slot of a site-wide lock, waiting up to req.Wait.
func (c *Client) Lock(ctx context.Context, req api.LockRequest) (api.LockResult, error) {
	var out api.LockResult
	err := c.do(ctx, http.MethodPost, api.PathLock, nil, req, &out)
	return out, err
}

// Unlock releases a slot.
func (c *Client) Unlock(ctx context.Context, req api.LockRequest) error {
	var out map[string]bool
	return c.do(ctx, http.MethodDelete, api.PathLock, nil, req, &out)
}

// Get returns the raw answer of a GET of path (any endpoint of the API,
// /debug/pprof/ included).
func (c *Client) Get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	var raw []byte
	err := c.do(ctx, http.MethodGet, path, q, nil, &raw)
	return raw, err
}

// Config returns the node config file, secrets redacted.
func (c *Client) Config(ctx context.Context) (api.ConfigFile, error) {
	var out api.ConfigFile
	err := c.get(ctx, api.PathConfig, nil, &out)
	return out, err
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := "http://edged" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
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
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(answer, &e) == nil && e.Error != "" {
			return fmt.Errorf("edged: %s", e.Error)
		}
		return fmt.Errorf("edged: %s", resp.Status)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = answer
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}
