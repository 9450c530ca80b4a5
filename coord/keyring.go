package coord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"edge/daemon/api"
)

// Bounds of a keyring.
const (
	// maxKeys bounds the keys of a keyring: a rotation needs two or three.
	maxKeys = 16
	// maxRetired bounds the ids of retired keys a node remembers.
	maxRetired = 32
	// maxKeyringFile bounds the keyring file and a peer's answer.
	maxKeyringFile = 64 << 10
)

// keysQuery is the serf query every edged answers with the ids of its keys.
const keysQuery = "edge-keyring"

// Errors of the keyring operations that are the caller's, not the site's.
var (
	// ErrPrimaryKey: asked to remove a key that is in use.
	ErrPrimaryKey = errors.New("the primary key cannot be removed")
	// ErrBadKey: not a gossip key, or no such key on this node.
	ErrBadKey = errors.New("bad gossip key")
)

// Keyring is a node's gossip keyring, as kept in its keyring file.
type Keyring struct {
	// Keys are the gossip keys, the primary key (the one gossip is
	// encrypted with) first; every key decrypts.
	Keys [][]byte
	// Retired are the ids of keys this node used as primary, or had
	// installed, and stopped using, oldest first: a peer whose primary key
	// is one of them missed a rotation.
	Retired []string
}

// keyringFile is the keyring file's JSON.
type keyringFile struct {
	Keys    []string `json:"keys"`
	Retired []string `json:"retired"`
}

// LoadKeyring reads a keyring file written by edged. A missing file is an
// error that wraps fs.ErrNotExist.
func LoadKeyring(path string) (Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyringFile+1))
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring %s: %w", path, err)
	}
	if len(b) > maxKeyringFile {
		return Keyring{}, fmt.Errorf("keyring %s: larger than %d bytes", path, maxKeyringFile)
	}
	var kf keyringFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return Keyring{}, fmt.Errorf("keyring %s: %w", path, err)
	}
	kr, err := kf.decode()
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// decode checks a keyring as read from a file or a peer.
func (kf keyringFile) decode() (Keyring, error) {
	if len(kf.Keys) == 0 {
		return Keyring{}, errors.New("no keys")
	}
	if len(kf.Keys) > maxKeys {
		return Keyring{}, fmt.Errorf("%d keys, at most %d", len(kf.Keys), maxKeys)
	}
	var kr Keyring
	for i, s := range kf.Keys {
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Keyring{}, fmt.Errorf("key %d: not base64", i+1)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return Keyring{}, fmt.Errorf("key %d: %w", i+1, err)
		}
		if slices.ContainsFunc(kr.Keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return Keyring{}, fmt.Errorf("key %d: listed twice", i+1)
		}
		kr.Keys = append(kr.Keys, k)
	}
	for i, id := range kf.Retired {
		if !isKeyID(id) {
			return Keyring{}, fmt.Errorf("retired entry %d: not a key id", i+1)
		}
	}
	kr.Retired = kf.Retired
	if len(kr.Retired) > maxRetired {
		kr.Retired = kr.Retired[len(kr.Retired)-maxRetired:]
	}
	return kr, nil
}

func (kr Keyring) file() keyringFile {
	kf := keyringFile{Keys: make([]string, len(kr.Keys)), Retired: kr.Retired}
	for i, k := range kr.Keys {
		kf.Keys[i] = base64.StdEncoding.EncodeToString(k)
	}
	if kf.Retired == nil {
		kf.Retired = []string{}
	}
	return kf
}

// writeKeyring writes the keyring file atomically (mode 0600) and fsyncs
// its folder, so that a power cut leaves the old file or the new one.
func writeKeyring(path string, kr Keyring) error {
	b, err := json.MarshalIndent(kr.file(), "", "  ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(path, append(b, '\n'), 0o600, renameio.WithStaticPermissions(0o600)); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}

func isKeyID(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 8
}

// keyState is this node's keyring: serf's, plus what edged remembers of it.
type keyState struct {
	ring *memberlist.Keyring
	file string // "" keeps nothing on disk
	log  *slog.Logger

	ops    sync.Mutex // one keyring operation at a time from this node
	notify sync.Mutex // one onChange call at a time

	mu       sync.Mutex
	retired  []string
	last     []string // key ids, primary first, as last saved
	failing  bool     // the last save failed (logged once)
	onChange func(primaryID string)
}

func newKeyState(cfg MembershipConfig, log *slog.Logger) (*keyState, error) {
	ring, err := memberlist.NewKeyring(cfg.Keyring, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	ks := &keyState{ring: ring, file: cfg.KeyringFile, log: log, retired: slices.Clone(cfg.Retired)}
	ks.last = ks.ids()
	return ks, nil
}

// keys copies the ring's keys, primary first.
func (ks *keyState) keys() [][]byte {
	var out [][]byte
	for _, k := range ks.ring.GetKeys() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

func (ks *keyState) ids() []string {
	var out []string
	for _, k := range ks.ring.GetKeys() {
		out = append(out, KeyID(k))
	}
	return out
}

// sync notes a change of the ring (made here, or by a peer through serf):
// it retires the keys that stopped being used, saves the keyring and calls
// onChange when the primary key changed.
func (ks *keyState) sync() {
	ks.mu.Lock()
	now := ks.ids()
	if slices.Equal(now, ks.last) && !ks.failing {
		ks.mu.Unlock()
		return
	}
	old := ks.last
	for i, id := range old {
		if !slices.Contains(now, id) || (i == 0 && now[0] != id) {
			ks.retire(id)
		}
	}
	ks.retired = slices.DeleteFunc(ks.retired, func(id string) bool { return id == now[0] })
	kr := Keyring{Keys: ks.keys(), Retired: slices.Clone(ks.retired)}
	if ks.file != "" {
		if err := writeKeyring(ks.file, kr); err != nil {
			if !ks.failing {
				ks.log.Error("gossip keyring changed but cannot be saved; retrying", "file", ks.file, "err", err)
			}
			ks.failing = true
			ks.mu.Unlock()
			return
		}
	}
	ks.failing = false
	ks.last = now
	fn := ks.onChange
	ks.mu.Unlock()
	if !slices.Equal(now, old) {
		ks.log.Info("gossip keyring changed", "primary_key_id", now[0], "key_ids", strings.Join(now, ","), "file", ks.file)
	}
	if fn != nil && (len(old) == 0 || old[0] != now[0]) {
		// In order: two changes in a row could otherwise report the
		// older primary last.
		ks.notify.Lock()
		fn(KeyID(ks.ring.GetPrimaryKey()))
		ks.notify.Unlock()
	}
}

// retire adds id to the retired keys, if new there; ks.mu is held.
func (ks *keyState) retire(id string) {
	if slices.Contains(ks.retired, id) {
		return
	}
	ks.retired = append(ks.retired, id)
	if len(ks.retired) > maxRetired {
		ks.retired = ks.retired[len(ks.retired)-maxRetired:]
	}
}

func (ks *keyState) isRetired(id string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return slices.Contains(ks.retired, id)
}

// find returns the installed key named by s: the key in base64, or its id.
func (ks *keyState) find(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	for _, k := range ks.keys() {
		if KeyID(k) == s || base64.StdEncoding.EncodeToString(k) == s {
			return k, true
		}
	}
	return nil, false
}

// PrimaryKeyID is the id of the key this node encrypts gossip with now.
func (m *Membership) PrimaryKeyID() string { return KeyID(m.keys.ring.GetPrimaryKey()) }

// WatchKeyring saves the keyring whenever it changes, checking every
// interval (a peer's key operation reaches this node through serf, which
// changes the keyring without telling), and calls onChange with the new
// primary key's id after it changed; until ctx is done. It returns nil.
func (m *Membership) WatchKeyring(ctx context.Context, every time.Duration, onChange func(primaryID string)) error {
	m.keys.mu.Lock()
	m.keys.onChange = onChange
	m.keys.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.keys.sync() // a change seen last goes to disk too
			return nil
		case <-t.C:
			m.keys.sync()
		}
	}
}

// keysAnswer is a node's answer to keysQuery: ids only, never keys.
type keysAnswer struct {
	Keys    []string `json:"keys"`
	Primary string   `json:"primary"`
}

// answerQuery answers the serf queries edged defines.
func (m *Membership) answerQuery(q *serf.Query) {
	if q.Name != keysQuery {
		return
	}
	ids := m.keys.ids()
	b, err := json.Marshal(keysAnswer{Keys: ids, Primary: ids[0]})
	if err == nil {
		err = q.Respond(b)
	}
	if err != nil {
		m.log.Debug("keyring query: no answer sent", "from", q.SourceNode(), "err", err)
	}
}

// ListKeys asks every alive edged member for the ids of its keys.
func (m *Membership) ListKeys(ctx context.Context) (api.Keyring, error) {
	s := m.agent()
	if s == nil {
		return api.Keyring{}, errors.New("membership: not started")
	}
	expect := map[string]bool{}
	mems, _ := m.Members()
	out := api.Keyring{Nodes: []string{}, Keys: []api.KeyInfo{}}
	for _, mem := range mems {
		if mem.Tags[api.TagRole] == api.RoleEdged && (mem.Status == api.StatusAlive || mem.Status == api.StatusSuspect) {
			expect[mem.Name] = true
			out.Nodes = append(out.Nodes, mem.Name)
		}
	}
	params := s.DefaultQueryParams()
	params.FilterTags = map[string]string{api.TagRole: "^" + api.RoleEdged + "$"}
	resp, err := s.Query(keysQuery, nil, params)
	if err != nil {
		return api.Keyring{}, fmt.Errorf("membership: keyring query: %w", err)
	}
	defer resp.Close()
	answers := map[string]keysAnswer{}
	bad := map[string]string{}
	pending := len(expect)
	for pending > 0 {
		var r serf.NodeResponse
		var ok bool
		select {
		case r, ok = <-resp.ResponseCh():
		case <-ctx.Done():
			return api.Keyring{}, ctx.Err()
		}
		if !ok {
			break
		}
		_, seen := answers[r.From]
		_, seenBad := bad[r.From]
		var a keysAnswer
		if err := json.Unmarshal(r.Payload, &a); err != nil || len(a.Keys) == 0 {
			bad[r.From] = "unreadable answer"
		} else {
			answers[r.From] = a
		}
		if expect[r.From] && !seen && !seenBad {
			pending--
		}
	}
	byID := map[string]*api.KeyInfo{}
	for _, name := range slices.Sorted(maps.Keys(answers)) {
		a := answers[name]
		for _, id := range a.Keys {
			ki := byID[id]
			if ki == nil {
				ki = &api.KeyInfo{ID: id, Nodes: []string{}, Primary: []string{}}
				byID[id] = ki
			}
			ki.Nodes = append(ki.Nodes, name)
			if id == a.Primary {
				ki.Primary = append(ki.Primary, name)
			}
		}
		if !expect[name] {
			out.Nodes = append(out.Nodes, name) // joined since the list was made
		}
	}
	slices.Sort(out.Nodes)
	for _, ki := range byID {
		out.Keys = append(out.Keys, *ki)
	}
	slices.SortFunc(out.Keys, func(a, b api.KeyInfo) int {
		if c := len(b.Primary) - len(a.Primary); c != 0 {
			return c
		}
		if c := len(b.Nodes) - len(a.Nodes); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, name := range out.Nodes {
		if why, ok := bad[name]; ok {
			out.Failed = append(out.Failed, api.NodeError{Node: name, Error: why})
		} else if _, ok := answers[name]; !ok {
			out.Failed = append(out.Failed, api.NodeError{Node: name, Error: "did not answer"})
		}
	}
	return out, nil
}

// keyOp runs one of serf's cluster-wide keyring operations, saves this
// node's keyring, and returns the site's keyring then, with the nodes that
// reported a failure (the error names them).
func (m *Membership) keyOp(ctx context.Context, what string, key []byte, op func(*serf.KeyManager, string) (*serf.KeyResponse, error)) (api.Keyring, []api.NodeError, error) {
	s := m.agent()
	if s == nil {
		return api.Keyring{}, nil, errors.New("membership: not started")
	}
	resp, opErr := op(s.KeyManager(), base64.StdEncoding.EncodeToString(key))
	m.keys.sync()
	var failed []api.NodeError
	if resp != nil {
		for _, n := range slices.Sorted(maps.Keys(resp.Messages)) {
			msg := resp.Messages[n]
			if msg == "" {
				continue
			}
			failed = append(failed, api.NodeError{Node: n, Error: msg})
		}
	}
	kr, err := m.ListKeys(ctx)
	if err != nil {
		return api.Keyring{}, failed, err
	}
	if opErr != nil && len(failed) == 0 {
		m.log.Debug("keyring operation incomplete", "op", what, "key_id", KeyID(key), "err", opErr)
	}
	return kr, failed, nil
}

// holders returns the nodes of kr that hold id (as primary when primary).
func holders(kr api.Keyring, id string, primary bool) map[string]bool {
	out := map[string]bool{}
	for _, ki := range kr.Keys {
		if ki.ID != id {
			continue
		}
		list := ki.Nodes
		if primary {
			list = ki.Primary
		}
		for _, n := range list {
			out[n] = true
		}
	}
	return out
}

// lacking lists the nodes of kr that are not in has, with why, including
// the nodes that failed the operation or did not answer.
func lacking(kr api.Keyring, has map[string]bool, failed []api.NodeError) []api.NodeError {
	why := map[string]string{}
	for _, f := range kr.Failed {
		why[f.Node] = f.Error
	}
	for _, f := range failed {
		why[f.Node] = f.Error
	}
	var out []api.NodeError
	for _, n := range kr.Nodes {
		if !has[n] {
			out = append(out, api.NodeError{Node: n, Error: why[n]})
		}
	}
	return out
}

// nodeList renders nodes for an error: "node3 (did not answer), node5".
func nodeList(errs []api.NodeError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Node
		if e.Error != "" {
			parts[i] += " (" + e.Error + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// keyAttempts is how many times an install or a use is sent again to the
// nodes that did not take it (a node that was suspect, a lost answer).
const keyAttempts = 3

// InstallKey installs key on every node of the site and checks that every
// alive edged member holds it; the error names the nodes that do not.
func (m *Membership) InstallKey(ctx context.Context, key []byte) (api.Keyring, error) {
	if err := memberlist.ValidateKey(key); err != nil {
		return api.Keyring{}, fmt.Errorf("%w: %w (make one with edgectl keygen)", ErrBadKey, err)
	}
	m.keys.ops.Lock()
	defer m.keys.ops.Unlock()
	return m.installKey(ctx, key)
}

func (m *Membership) installKey(ctx context.Context, key []byte) (api.Keyring, error) {
	id := KeyID(key)
	var kr api.Keyring
	var missing []api.NodeError
	for range keyAttempts {
		var failed []api.NodeError
		var err error
		kr, failed, err = m.keyOp(ctx, "install", key, (*serf.KeyManager).InstallKey)
		if err != nil {
			return api.Keyring{}, err
		}
		if missing = lacking(kr, holders(kr, id, false), failed); len(missing) == 0 {
			m.log.Info("gossip key installed on every node", "key_id", id, "nodes", len(kr.Nodes))
			return kr, nil
		}
	}
	return kr, fmt.Errorf("key %s is not installed on %s", id, nodeList(missing))
}

// UseKey makes the installed key named by s (the key or its id) the primary
// key of every node. It refuses when an alive node does not hold it yet.
func (m *Membership) UseKey(ctx context.Context, s string) (api.Keyring, []byte, error) {
	m.keys.ops.Lock()
	defer m.keys.ops.Unlock()
	key, ok := m.keys.find(s)
	if !ok {
		return api.Keyring{}, nil, fmt.Errorf("%w: no such key on this node: %s (install it first: edgectl keys install KEY)", ErrBadKey, keyName(s))
	}
	kr, err := m.useKey(ctx, key)
	return kr, key, err
}

func (m *Membership) useKey(ctx context.Context, key []byte) (api.Keyring, error) {
	id := KeyID(key)
	kr, err := m.ListKeys(ctx)
	if err != nil {
		return api.Keyring{}, err
	}
	if missing := lacking(kr, holders(kr, id, false), nil); len(missing) > 0 {
		return kr, fmt.Errorf("key %s is not installed on %s: install it there first (edgectl keys install KEY), or they could no longer read the others' gossip", id, nodeList(missing))
	}
	var missing []api.NodeError
	for range keyAttempts {
		var failed []api.NodeError
		kr, failed, err = m.keyOp(ctx, "use", key, (*serf.KeyManager).UseKey)
		if err != nil {
			return api.Keyring{}, err
		}
		if missing = lacking(kr, holders(kr, id, true), failed); len(missing) == 0 {
			m.log.Info("gossip key is the primary key on every node", "key_id", id, "nodes", len(kr.Nodes))
			return kr, nil
		}
	}
	return kr, fmt.Errorf("key %s is not the primary key on %s", id, nodeList(missing))
}

// RemoveKey removes the key named by s (the key or its id) from every node.
// The primary key of this node, or of any alive node, is refused
// (ErrPrimaryKey).
func (m *Membership) RemoveKey(ctx context.Context, s string) (api.Keyring, []byte, error) {
	m.keys.ops.Lock()
	defer m.keys.ops.Unlock()
	key, ok := m.keys.find(s)
	if !ok {
		return api.Keyring{}, nil, fmt.Errorf("%w: no such key on this node: %s (edgectl keys list shows the ids)", ErrBadKey, keyName(s))
	}
	kr, err := m.removeKey(ctx, key)
	return kr, key, err
}

func (m *Membership) removeKey(ctx context.Context, key []byte) (api.Keyring, error) {
	id := KeyID(key)
	if bytes.Equal(key, m.keys.ring.GetPrimaryKey()) {
		return api.Keyring{}, fmt.Errorf("key %s: %w: gossip is encrypted with it; make another key primary first (edgectl keys use KEY)", id, ErrPrimaryKey)
	}
	kr, err := m.ListKeys(ctx)
	if err != nil {
		return api.Keyring{}, err
	}
	if users := holders(kr, id, true); len(users) > 0 {
		return kr, fmt.Errorf("key %s: %w: it is the primary key of %s; make another key primary first (edgectl keys use KEY)",
			id, ErrPrimaryKey, strings.Join(slices.Sorted(maps.Keys(users)), ", "))
	}
	kr, failed, err := m.keyOp(ctx, "remove", key, (*serf.KeyManager).RemoveKey)
	if err != nil {
		return api.Keyring{}, err
	}
	var still []api.NodeError
	for n := range holders(kr, id, false) {
		still = append(still, api.NodeError{Node: n})
	}
	still = append(still, kr.Failed...)
	for _, f := range failed {
		if !slices.ContainsFunc(still, func(e api.NodeError) bool { return e.Node == f.Node }) {
			still = append(still, f)
		}
	}
	if len(still) > 0 {
		slices.SortFunc(still, func(a, b api.NodeError) int { return strings.Compare(a.Node, b.Node) })
		return kr, fmt.Errorf("key %s is still installed on %s, or they did not answer", id, nodeList(still))
	}
	m.log.Info("gossip key removed from every node", "key_id", id, "nodes", len(kr.Nodes))
	return kr, nil
}

// RotateKey makes a new key and puts it in use on every node: it installs
// it, checks that every alive node holds it, and makes it the primary key.
// The old keys stay installed, unless removeOld: then they are removed once
// every alive node uses the new key. It returns the new key's id and the ids
// of the keys removed.
func (m *Membership) RotateKey(ctx context.Context, removeOld bool) (api.KeyResult, error) {
	m.keys.ops.Lock()
	defer m.keys.ops.Unlock()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return api.KeyResult{}, fmt.Errorf("new key: %w", err)
	}
	id := KeyID(key)
	res := api.KeyResult{ID: id}
	if _, err := m.installKey(ctx, key); err != nil {
		// Installed somewhere, in use nowhere: harmless, and removable.
		return res, fmt.Errorf("rotate: %w; the new key is not in use: run edgectl keys rotate again, or remove it with edgectl keys remove %s", err, id)
	}
	kr, err := m.useKey(ctx, key)
	if err != nil {
		return res, fmt.Errorf("rotate: new key %s installed on every node, but: %w; run edgectl keys use %s again", id, err, id)
	}
	res.Keyring = kr
	if !removeOld {
		return res, nil
	}
	for _, k := range m.keys.keys() {
		if bytes.Equal(k, key) {
			continue
		}
		if res.Keyring, err = m.removeKey(ctx, k); err != nil {
			return res, fmt.Errorf("rotate: key %s is in use on every node, but: %w", id, err)
		}
		res.Removed = append(res.Removed, KeyID(k))
	}
	for _, ki := range res.Keyring.Keys {
		if ki.ID != id {
			return res, fmt.Errorf("rotate: key %s is in use on every node, but key %s is still installed on %s and not on this node: remove it with the key itself (edgectl keys remove KEY)",
				id, ki.ID, strings.Join(ki.Nodes, ", "))
		}
	}
	return res, nil
}

// keyName shows what an operator named a key by, without echoing a key: a
// key id as it is, anything longer by its id.
func keyName(s string) string {
	s = strings.TrimSpace(s)
	if isKeyID(s) {
		return s
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) > 0 {
		return "key id " + KeyID(k)
	}
	return "(neither a key nor a key id)"
}

// ParseKey decodes a gossip key given in base64 (the format of key_file
// and edgectl keygen); errors never show the key.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 (make one with edgectl keygen)", ErrBadKey)
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("%w: %w (make one with edgectl keygen)", ErrBadKey, err)
	}
	return k, nil
}
