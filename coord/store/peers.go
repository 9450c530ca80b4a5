package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/hashicorp/raft"

	"edge/internal/strictyaml"
)

// Manual recovery from a lost quorum, as Consul does it: with edged stopped,
// the operator writes PeersFile into the raft folder (<data_dir>/raft/)
// listing the servers of the new configuration, in raft's own peers.json
// format (version 3, raft.ReadConfigJSON):
//
//	[
//	  {"id": "node1", "address": "192.0.2.11:7947", "non_voter": false}
//	]
//
// At the next start Open parses it strictly, rewrites the local raft state
// with raft.RecoverCluster (every command this replica holds is kept; only
// the configuration changes), and renames the file to PeersAppliedFile so
// that it is never applied twice and the operator can see what was done.
const (
	PeersFile        = "peers.json"
	PeersAppliedFile = "peers.json.applied"
)

// maxPeersFile bounds the recovery file: a site has at most a few dozen
// nodes.
const maxPeersFile = 64 << 10

// RecoveryServer is one entry of a peers.json file.
type RecoveryServer struct {
	ID       string
	Address  string
	NonVoter bool
	// Line is where the entry starts in the file.
	Line int
}

// peersKeys are the keys of one entry, as raft.ReadConfigJSON takes them.
const peersKeys = `"id", "address" and "non_voter"`

// ReadPeers reads and parses a peers.json file (see ParsePeers). A missing
// file is fs.ErrNotExist.
func ReadPeers(path string) ([]RecoveryServer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxPeersFile {
		return nil, &strictyaml.Error{File: path, Msg: fmt.Sprintf("larger than %d KiB: not a peers.json file", maxPeersFile>>10)}
	}
	return ParsePeers(path, data)
}

// ParsePeers parses data, the text of file, as a peers.json list. Unknown
// and duplicate keys, wrong types, a server listed twice (by id or address),
// an address that is not IP:port and a list without a voter are errors that
// name the file, the line and the key.
func ParsePeers(file string, data []byte) ([]RecoveryServer, error) {
	p := peersParser{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	return p.parse()
}

type peersParser struct {
	file string
	data []byte
	dec  *json.Decoder
}

// lineAt is the line of byte offset off (1-based).
func (p *peersParser) lineAt(off int64) int {
	off = min(max(off, 0), int64(len(p.data)))
	return bytes.Count(p.data[:off], []byte{'\n'}) + 1
}

// lastLine is the line of the token just read.
func (p *peersParser) lastLine() int { return p.lineAt(p.dec.InputOffset() - 1) }

func (p *peersParser) errAt(line int, key, format string, args ...any) error {
	return &strictyaml.Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// token reads the next token; a syntax error names its line.
func (p *peersParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, p.errAt(p.lineAt(se.Offset), "", "not valid JSON: %v", se)
	case errors.Is(err, io.EOF):
		if len(bytes.TrimSpace(p.data)) == 0 {
			return nil, p.errAt(0, "", "empty file: want a JSON list of servers, each with %s", peersKeys)
		}
		return nil, p.errAt(p.lineAt(int64(len(p.data))), "", "not valid JSON: unexpected end of file")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, p.errAt(p.lineAt(int64(len(p.data))), "", "not valid JSON: unexpected end of file")
	}
	return nil, p.errAt(p.lineAt(p.dec.InputOffset()), "", "not valid JSON: %v", err)
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "a list"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	case json.Number:
		return "the number " + v.String()
	}
	return fmt.Sprintf("%v", tok)
}

func (p *peersParser) parse() ([]RecoveryServer, error) {
	p.dec.UseNumber()
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, p.errAt(p.lastLine(), "", "want a JSON list of servers, each with %s; got %s", peersKeys, describeToken(tok))
	}
	listLine := p.lastLine()
	var out []RecoveryServer
	byID := map[string]int{}
	byAddr := map[string]int{}
	for p.dec.More() {
		i := len(out)
		s, err := p.server(i)
		if err != nil {
			return nil, err
		}
		if line, ok := byID[s.ID]; ok {
			return nil, p.errAt(s.Line, fmt.Sprintf("[%d].id", i), "%s is already listed at line %d", s.ID, line)
		}
		if line, ok := byAddr[s.Address]; ok {
			return nil, p.errAt(s.Line, fmt.Sprintf("[%d].address", i), "%s is already listed at line %d", s.Address, line)
		}
		byID[s.ID], byAddr[s.Address] = s.Line, s.Line
		out = append(out, s)
	}
	if _, err := p.token(); err != nil { // the closing ]
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, p.errAt(p.lineAt(p.dec.InputOffset()), "", "more after the list of servers: want exactly one JSON list")
	}
	if len(out) == 0 {
		return nil, p.errAt(listLine, "", "empty list: name at least this node, as a voter")
	}
	voters := 0
	for _, s := range out {
		if !s.NonVoter {
			voters++
		}
	}
	if voters == 0 {
		return nil, p.errAt(listLine, "", "no voter: at least one server needs \"non_voter\": false")
	}
	return out, nil
}

// server parses the object of entry i.
func (p *peersParser) server(i int) (RecoveryServer, error) {
	tok, err := p.token()
	if err != nil {
		return RecoveryServer{}, err
	}
	s := RecoveryServer{Line: p.lastLine()}
	at := fmt.Sprintf("[%d]", i)
	if tok != json.Delim('{') {
		return s, p.errAt(s.Line, at, "want an object with %s; got %s", peersKeys, describeToken(tok))
	}
	seen := map[string]int{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return s, err
		}
		key, _ := tok.(string) // inside an object, the decoder gives only string keys
		line := p.lastLine()
		kp := at + "." + key
		if first, dup := seen[key]; dup {
			return s, p.errAt(line, kp, "duplicate key (first at line %d)", first)
		}
		seen[key] = line
		val, err := p.token()
		if err != nil {
			return s, err
		}
		line = p.lastLine()
		switch key {
		case "id":
			v, ok := val.(string)
			if !ok {
				return s, p.errAt(line, kp, "want the node name as a string; got %s", describeToken(val))
			}
			if err := checkServerID(v); err != nil {
				return s, p.errAt(line, kp, "%v", err)
			}
			s.ID = v
		case "address":
			v, ok := val.(string)
			if !ok {
				return s, p.errAt(line, kp, "want the raft address as a string, IP:port such as \"192.0.2.11:7947\"; got %s", describeToken(val))
			}
			ap, err := netip.ParseAddrPort(v)
			if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().IsUnspecified() {
				return s, p.errAt(line, kp, "%q: want the raft address as IP:port, such as \"192.0.2.11:7947\" (see edgectl raft peers)", v)
			}
			s.Address = ap.String()
		case "non_voter":
			v, ok := val.(bool)
			if !ok {
				return s, p.errAt(line, kp, "want true or false; got %s", describeToken(val))
			}
			s.NonVoter = v
		default:
			return s, p.errAt(line, kp, "unknown key: want %s", peersKeys)
		}
	}
	if _, err := p.token(); err != nil { // the closing }
		return s, err
	}
	for _, k := range []string{"id", "address"} {
		if _, ok := seen[k]; !ok {
			return s, p.errAt(s.Line, at+"."+k, "missing: every server needs \"id\" and \"address\"")
		}
	}
	return s, nil
}

// checkServerID accepts a node name: printable, no spaces, at most 128
// bytes.
func checkServerID(id string) error {
	if id == "" {
		return errors.New("empty: want the node name")
	}
	if len(id) > 128 {
		return errors.New("longer than 128 bytes: want the node name")
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q: want the node name (no spaces or control characters)", id)
		}
	}
	return nil
}

// RecoveryConfiguration is the raft configuration the entries describe.
func RecoveryConfiguration(servers []RecoveryServer) raft.Configuration {
	var c raft.Configuration
	for _, s := range servers {
		suf := raft.Voter
		if s.NonVoter {
			suf = raft.Nonvoter
		}
		c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: suf})
	}
	return c
}

// readRecovery reads dir's peers.json; nil when there is none.
func readRecovery(dir string) ([]RecoveryServer, error) {
	servers, err := ReadPeers(filepath.Join(dir, PeersFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return servers, err
}

// CheckRecovery checks dir's peers.json, if there is one, as Open will
// before it recovers: the file parses and names node at self (its raft
// address; nil skips that check). A daemon calls it before it joins the
// site, so that a bad file refuses the start before anything happens.
func CheckRecovery(dir, node string, self net.Addr) error {
	servers, err := readRecovery(dir)
	if err != nil || servers == nil {
		return err
	}
	return checkSelf(filepath.Join(dir, PeersFile), servers, node, self)
}

// checkSelf checks that this node is in the recovery file, at its own raft
// address (self, when known): a node recovers only into a configuration that
// holds it.
func checkSelf(file string, servers []RecoveryServer, node string, self net.Addr) error {
	for i, s := range servers {
		if s.ID != node {
			continue
		}
		if self == nil {
			return nil
		}
		own, err := netip.ParseAddrPort(self.String())
		if err == nil && own.String() != s.Address {
			return &strictyaml.Error{File: file, Line: s.Line, Key: fmt.Sprintf("[%d].address", i),
				Msg: fmt.Sprintf("%s is listed at %s, but its raft address is %s", node, s.Address, own)}
		}
		return nil
	}
	return &strictyaml.Error{File: file, Msg: fmt.Sprintf("this node, %s, is not listed: write the file on a node it names, or add this node", node)}
}

// recoverCluster rewrites the local raft state to hold the configuration of
// dir's peers.json (servers, already parsed), then renames the file. It runs
// before raft starts, with the same stores and transport.
func recoverCluster(dir string, servers []RecoveryServer, rc *raft.Config, logs raft.LogStore, stable raft.StableStore,
	snaps raft.SnapshotStore, trans raft.Transport, log *slog.Logger,
) error {
	file := filepath.Join(dir, PeersFile)
	var list []string
	for _, s := range servers {
		suf := "voter"
		if s.NonVoter {
			suf = "nonvoter"
		}
		list = append(list, fmt.Sprintf("%s=%s(%s)", s.ID, s.Address, suf))
	}
	last, _ := logs.LastIndex()
	log.Warn("MANUAL RAFT RECOVERY: replacing this node's raft configuration with the servers of "+PeersFile,
		"file", file, "servers", strings.Join(list, " "), "last_index", last)
	// A throwaway FSM: RecoverCluster replays the log into it to write a
	// snapshot; raft restores the real one from that snapshot.
	if err := raft.RecoverCluster(rc, NewFSM(), logs, stable, snaps, trans, RecoveryConfiguration(servers)); err != nil {
		return &strictyaml.Error{File: file, Msg: fmt.Sprintf("recovery refused, nothing changed: %v", err)}
	}
	applied := filepath.Join(dir, PeersAppliedFile)
	if err := os.Rename(file, applied); err != nil {
		return fmt.Errorf("%s: the raft configuration was recovered, but the file could not be renamed (remove it before the next start, or it is applied again): %w", file, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: the raft configuration was recovered, but the rename to %s may not be on disk (check that %s is gone before the next start): %w", file, PeersAppliedFile, file, err)
	}
	log.Warn("MANUAL RAFT RECOVERY done: this node starts with the configuration of "+PeersFile+"; the file is renamed so that it is not applied again",
		"renamed_to", applied, "servers", strings.Join(list, " "), "last_index", last)
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
