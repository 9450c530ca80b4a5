package coord

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"edge/internal/pki"
)

// keyringRPCPath is the node RPC that hands this node's gossip keyring to
// another node of the site, over mutual TLS.
const keyringRPCPath = "/rpc/v1/keyring"

// peerKeyring is the answer of keyringRPCPath.
type peerKeyring struct {
	// Keys are the keys in base64, the primary first.
	Keys []string `json:"keys"`
	// Retired are the ids of the keys the peer stopped using.
	Retired []string `json:"retired"`
}

// ServeKeyring answers other nodes' requests for this node's gossip keyring
// (the keys, and the ids of the keys it retired). Only a caller that showed
// a certificate of the site's CA gets there: the transport refuses anyone
// else in the TLS handshake. Call it before Run.
func (r *Raft) ServeKeyring() {
	r.HandleRPC("POST "+keyringRPCPath, func(w http.ResponseWriter, req *http.Request) {
		peer := ""
		if req.TLS != nil {
			peer = pki.PeerNode(*req.TLS)
		}
		ks := r.members.keys
		kr := Keyring{Keys: ks.keys()}
		ks.mu.Lock()
		kr.Retired = slices.Clone(ks.retired)
		ks.mu.Unlock()
		kf := kr.file()
		ans := peerKeyring(kf)
		r.log.Info("gossip keyring sent to a node of the site", "peer", peer, "primary_key_id", KeyID(kr.Keys[0]))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
}

// keyringAddrs are the raft addresses to ask c for its keyring at: the one
// in the raft configuration for its name, then each of its addresses with
// the default raft port (its gossip port + 1) and with this node's.
func (r *Raft) keyringAddrs(c Candidate) []string {
	var out []string
	if c.Name != "" {
		if f := r.store.Raft().GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if string(s.ID) == c.Name {
					out = append(out, string(s.Address))
				}
			}
		}
	}
	for _, a := range c.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if p, err := strconv.Atoi(port); err == nil && p < 65535 {
			out = append(out, net.JoinHostPort(host, strconv.Itoa(p+1)))
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(r.cfg.Port)))
	}
	var uniq []string
	for _, a := range out {
		if !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	return uniq
}

// fetchKeyring asks node ("" for any node of the site) at one of addrs for
// its keyring, over mutual TLS.
func (r *Raft) fetchKeyring(ctx context.Context, node string, addrs []string) (peerKeyring, string, error) {
	if len(addrs) == 0 {
		return peerKeyring{}, "", errors.New("no address to ask")
	}
	client := r.mux.RPCClientFor(node)
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	var errs []error
	for _, addr := range addrs {
		pk, err := r.fetchKeyringAt(ctx, client, addr)
		if err == nil {
			return pk, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return peerKeyring{}, "", errors.Join(errs...)
}

func (r *Raft) fetchKeyringAt(ctx context.Context, client *http.Client, addr string) (peerKeyring, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+keyringRPCPath, strings.NewReader("{}"))
	if err != nil {
		return peerKeyring{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return peerKeyring{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyringFile))
	if err != nil {
		return peerKeyring{}, fmt.Errorf("%s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return peerKeyring{}, fmt.Errorf("%s: %s: %s", addr, resp.Status, bytes.TrimSpace(b))
	}
	var pk peerKeyring
	if err := json.Unmarshal(b, &pk); err != nil {
		return peerKeyring{}, fmt.Errorf("%s: keyring answer: %w", addr, err)
	}
	return pk, nil
}

// adoptKeyring makes a peer's keyring this node's when it is the newer one:
// this node's primary key is one the peer retired, so this node missed a
// rotation. Then the peer's keys replace this node's, its primary key
// becomes this node's, and the keyring is saved. A keyring unrelated to
// this node's (neither knows the other's primary key: a wrong key_file, or
// two rotations made apart) is never taken: a node without the site's key
// does not join, whatever its credentials. It reports whether the keyring
// changed and, when not, why.
func (m *Membership) adoptKeyring(pk peerKeyring) (bool, string, error) {
	theirs, err := keyringFile(pk).decode()
	if err != nil {
		return false, "", fmt.Errorf("the peer's keyring: %w", err)
	}
	ks := m.keys
	ks.ops.Lock()
	defer ks.ops.Unlock()
	ourID, theirID := m.PrimaryKeyID(), KeyID(theirs.Keys[0])
	switch {
	case ourID == theirID:
		return false, "it has the same primary key as this node", nil
	case ks.isRetired(theirID):
		return false, fmt.Sprintf("its primary key %s is one this node retired: the peer is the one that missed a rotation", theirID), nil
	case !slices.Contains(theirs.Retired, ourID):
		return false, fmt.Sprintf("neither keyring is newer: the peer never used this node's primary key %s, this node never used its primary key %s (check key_file, or install the site's key: edgectl keys install KEY, then edgectl keys use KEY)", ourID, theirID), nil
	}
	ours := ks.keys()
	for _, k := range theirs.Keys {
		if err := ks.ring.AddKey(k); err != nil {
			return false, "", fmt.Errorf("install key %s: %w", KeyID(k), err)
		}
	}
	if err := ks.ring.UseKey(theirs.Keys[0]); err != nil {
		return false, "", fmt.Errorf("use key %s: %w", theirID, err)
	}
	for _, k := range ours {
		if !slices.ContainsFunc(theirs.Keys, func(t []byte) bool { return bytes.Equal(t, k) }) {
			if err := ks.ring.RemoveKey(k); err != nil {
				return false, "", fmt.Errorf("remove key %s: %w", KeyID(k), err)
			}
		}
	}
	ks.mu.Lock()
	for _, id := range theirs.Retired {
		if id != theirID {
			ks.retire(id)
		}
	}
	ks.mu.Unlock()
	ks.sync()
	return true, "", nil
}

// KeyRecovery gets the site's gossip keyring for a node that cannot join
// because the site rotated its gossip key while the node was down: it asks a
// peer the joiner cannot join for its keyring over mutual TLS (the site CA
// is the trust root), adopts it when it is the newer one, and joins the peer
// at once.
type KeyRecovery struct {
	raft  *Raft
	log   *slog.Logger
	reqs  chan Candidate
	every time.Duration
	last  map[string]time.Time
	// warned: peers already warned about; the next times are debug.
	warned map[string]bool
}

// NewKeyRecovery returns a KeyRecovery of the node that runs r; it does
// nothing until Run. Each peer is asked at most once per every.
func NewKeyRecovery(r *Raft, every time.Duration, log *slog.Logger) *KeyRecovery {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyRecovery{raft: r, log: log, reqs: make(chan Candidate, 16), every: every, last: map[string]time.Time{}, warned: map[string]bool{}}
}

// Stuck reports a candidate the joiner cannot join (JoinerConfig.Recover).
// It never blocks.
func (k *KeyRecovery) Stuck(c Candidate) {
	select {
	case k.reqs <- c:
	default:
	}
}

// Run handles the candidates reported stuck until ctx is done; it returns
// nil then.
func (k *KeyRecovery) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-k.reqs:
			k.recover(ctx, c)
		}
	}
}

func (k *KeyRecovery) recover(ctx context.Context, c Candidate) {
	who := c.Name
	if who == "" {
		who = strings.Join(c.Addrs, ",")
	}
	now := time.Now()
	if t, ok := k.last[who]; ok && now.Sub(t) < k.every {
		return
	}
	if len(k.last) > 1024 {
		clear(k.last)
	}
	k.last[who] = now
	m := k.raft.members
	attrs := []any{"peer", who, "peer_key_id", c.KeyID, "our_key_id", m.PrimaryKeyID()}
	if c.KeyID != "" && m.keys.isRetired(c.KeyID) {
		// The peer is the one behind: it asks this node, if it can.
		k.log.Log(ctx, k.once(who), "a peer uses a gossip key this site retired: it missed a key rotation; with TLS credentials it takes the site's keyring by itself, else install the site's key on it (edgectl keys install KEY, then edgectl keys use KEY)", attrs...)
		return
	}
	pk, addr, err := k.raft.fetchKeyring(ctx, c.Name, k.raft.keyringAddrs(c))
	if err != nil {
		level := slog.LevelDebug
		if refusedTLS(err) {
			level = k.once(who)
		}
		k.log.Log(ctx, level, "cannot join a peer, and cannot fetch its gossip keyring over TLS either", append(attrs, "err", err)...)
		return
	}
	adopted, why, err := m.adoptKeyring(pk)
	switch {
	case err != nil:
		k.log.Warn("fetched a peer's gossip keyring over TLS, but cannot use it", append(attrs, "from", addr, "err", err)...)
		return
	case !adopted:
		k.log.Debug("fetched a peer's gossip keyring over TLS and kept this node's", append(attrs, "from", addr, "reason", why)...)
		return
	}
	k.log.Info("this node missed a gossip key rotation: took the site's keyring from a peer over TLS; joining",
		append(attrs, "from", addr, "primary_key_id", m.PrimaryKeyID())...)
	if _, err := m.Join(c.Addrs); err != nil {
		k.log.Warn("join after taking the site's keyring failed; the joiner retries", "peer", who, "err", err)
	}
}

// once is the level of a warning about peer: warn the first time, debug
// after.
func (k *KeyRecovery) once(peer string) slog.Level {
	if k.warned[peer] {
		return slog.LevelDebug
	}
	if len(k.warned) > 1024 {
		clear(k.warned)
	}
	k.warned[peer] = true
	return slog.LevelWarn
}

// refusedTLS reports whether a fetch failed in the TLS handshake (a
// certificate refused by either side), rather than on a peer that is down.
func refusedTLS(err error) bool {
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	return errors.As(err, &verify) || errors.As(err, &op) && op.Op == "remote error"
}
