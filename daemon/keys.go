package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"time"

	"edge/coord"
	"edge/daemon/api"
	"edge/internal/pki"
)

// KeyringFile is the file in data_dir that keeps the gossip keyring once a
// key operation changed it; when present it wins over key_file at start.
const KeyringFile = "gossip.keyring"

// Gossip keyring timings.
const (
	// keyringCheck: how often the keyring is checked for a change a peer
	// made through serf (then saved).
	keyringCheck = 500 * time.Millisecond
	// keyringAsk: a peer is asked for its keyring at most this often.
	keyringAsk = 30 * time.Second
	// keyOpTimeout bounds one keyring operation of the API.
	keyOpTimeout = 2 * time.Minute
)

// gossipKeys fills the keys of mc: the keyring file in data_dir when there
// is one, else the key of key_file (already in mc.Key). An unreadable
// keyring file is an error: starting from an older key would cut the node
// off.
func (d *Daemon) gossipKeys(mc *coord.MembershipConfig) error {
	path := filepath.Join(d.cfg.DataDir, KeyringFile)
	mc.KeyringFile = path
	kr, err := coord.LoadKeyring(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Info("gossip key from key_file", "key_file", d.cfg.KeyFile, "key_id", coord.KeyID(mc.Key))
		return nil
	case err != nil:
		return fmt.Errorf("%w (data_dir's keyring wins over key_file once keys were rotated; remove the file to start from key_file again)", err)
	}
	fromFile := mc.Key
	mc.Key, mc.Keyring, mc.Retired = kr.Keys[0], kr.Keys[1:], kr.Retired
	d.log.Info("gossip keyring from data_dir (written by key rotation); key_file is not used", "keyring", path,
		"primary_key_id", coord.KeyID(mc.Key), "keys", len(kr.Keys))
	known := false
	for _, k := range kr.Keys {
		known = known || bytes.Equal(k, fromFile)
	}
	if !known {
		d.log.Info("key_file holds a key the site no longer uses; put the current key there for new installs",
			"key_file", d.cfg.KeyFile, "key_file_key_id", coord.KeyID(fromFile))
	}
	return nil
}

// keyringStuck hands a candidate the joiner cannot join to the keyring
// recovery (JoinerConfig.Recover); set only on a node with TLS credentials.
func (d *Daemon) keyringStuck(c coord.Candidate) {
	if r := d.recovery; r != nil {
		r.Stuck(c)
	}
}

// keyringChanged follows a new primary gossip key: the key id advertised
// over mDNS and the joiner's diagnostics.
func (d *Daemon) keyringChanged(primaryID string) {
	d.joiner.SetKeyID(primaryID)
	if err := d.discovery.SetKeyID(primaryID); err != nil {
		d.log.Warn("cannot advertise the new gossip key id over mDNS", "key_id", primaryID, "err", err)
	}
}

// keyHandlers adds the gossip keyring API.
func (d *Daemon) keyHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathKeys, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), keyOpTimeout)
		defer cancel()
		kr, err := d.member.ListKeys(ctx)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, kr)
	})
	mux.HandleFunc("POST "+api.PathKeyInstall, d.keyOp(func(ctx context.Context, s string) (api.KeyResult, error) {
		key, err := coord.ParseKey(s)
		if err != nil {
			return api.KeyResult{}, err
		}
		kr, err := d.member.InstallKey(ctx, key)
		return api.KeyResult{ID: coord.KeyID(key), Keyring: kr}, err
	}))
	mux.HandleFunc("POST "+api.PathKeyUse, d.keyOp(func(ctx context.Context, s string) (api.KeyResult, error) {
		kr, key, err := d.member.UseKey(ctx, s)
		return api.KeyResult{ID: keyIDOf(key), Keyring: kr}, err
	}))
	mux.HandleFunc("POST "+api.PathKeyRemove, d.keyOp(func(ctx context.Context, s string) (api.KeyResult, error) {
		kr, key, err := d.member.RemoveKey(ctx, s)
		return api.KeyResult{ID: keyIDOf(key), Keyring: kr}, err
	}))
	mux.HandleFunc("POST "+api.PathKeyRotate, func(w http.ResponseWriter, r *http.Request) {
		var req api.KeyRotateRequest
		if !decodeBody(w, r, &req) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), keyOpTimeout)
		defer cancel()
		res, err := d.member.RotateKey(ctx, req.RemoveOld)
		if err != nil {
			writeErr(w, keyErrCode(err), err)
			return
		}
		writeJSON(w, res)
	})
}

// keyOp is the handler of a keyring change named by a KeyRequest.
func (d *Daemon) keyOp(op func(ctx context.Context, key string) (api.KeyResult, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.KeyRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if req.Key == "" {
			writeErr(w, http.StatusBadRequest, errors.New("no key given"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), keyOpTimeout)
		defer cancel()
		res, err := op(ctx, req.Key)
		if err != nil {
			writeErr(w, keyErrCode(err), err)
			return
		}
		writeJSON(w, res)
	}
}

func keyErrCode(err error) int {
	switch {
	case errors.Is(err, coord.ErrBadKey):
		return http.StatusBadRequest
	case errors.Is(err, coord.ErrPrimaryKey):
		return http.StatusConflict
	}
	return http.StatusBadGateway
}

func keyIDOf(key []byte) string {
	if key == nil {
		return ""
	}
	return coord.KeyID(key)
}

// tlsOnOff names, in the reload's log, the one TLS change that waits for a
// restart: adding the three tls_* keys to a node without them, or removing
// them. Renewed or replaced files are put in use by the reload.
const tlsOnOff = "tls_ca/tls_cert/tls_key (turned on or off)"

// credsMatch checks that TLS credentials belong to this node of this site.
func credsMatch(cfg Config, creds *pki.Credentials) error {
	if creds.Node() != cfg.Node {
		return fmt.Errorf("tls_cert %s is issued for node %q, this node is %q", cfg.TLSCert, creds.Node(), cfg.Node)
	}
	if creds.Site() != "" && creds.Site() != cfg.Site {
		return fmt.Errorf("tls_ca %s is the CA of site %q, this node is in site %q", cfg.TLSCA, creds.Site(), cfg.Site)
	}
	return nil
}

// prepareTLS reads and checks the TLS files of next (the same paths or new
// ones) for a reload, and returns what puts them in use: new connections
// then show the new certificate and trust the new CA bundle, and the
// connections already set up stay. restart reports that TLS was turned on
// or off, which takes a restart. A bad file is an error that names the key
// and the file, and changes nothing.
func (d *Daemon) prepareTLS(next Config) (apply func(), restart bool, err error) {
	noop := func() {}
	if d.raft == nil || next.TLSCA == "" {
		return noop, (d.raft == nil) != (next.TLSCA == ""), nil
	}
	creds, err := pki.Load(next.TLSCA, next.TLSCert, next.TLSKey)
	if err != nil {
		return nil, false, err
	}
	if err := credsMatch(next, creds); err != nil {
		return nil, false, err
	}
	cur := d.raft.Credentials()
	if creds.Equal(cur) {
		return noop, false, nil
	}
	return func() {
		if err := d.raft.SetCredentials(creds); err != nil {
			d.log.Error("TLS credentials not reloaded", "err", err)
			return
		}
		d.creds = creds
		d.log.Info("TLS credentials reloaded: new connections use them", "tls_cert", next.TLSCert,
			"serial", creds.Serial(), "not_after", creds.NotAfter().UTC().Format(time.RFC3339),
			"previous_serial", cur.Serial(), "tls_ca", next.TLSCA, "cas", len(creds.CAs()))
	}, false, nil
}
