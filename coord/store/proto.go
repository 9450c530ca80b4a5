package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"edge/daemon/api"
)

// Protocol versions in the raft group.
//
// Every command and snapshot has a format version (Command.Version and the
// snapshot's "version"); 0 or absent is 1, the format of the releases
// before versions existed, which ignore the field (encoding/json skips
// unknown keys). So a release that speaks protocols 1-2 keeps writing
// version-1 commands, which every release reads the same way, until every
// raft server speaks 2 (ServersSpeak): the Consul "servers meet minimum
// version" rule. An older release would apply a newer command as if it
// were version 1, so the rule is what keeps replicas equal; a replica that
// does see a version it does not speak refuses it instead of guessing.

// ErrProtoGate: a command or format newer than some raft server speaks.
var ErrProtoGate = errors.New("protocol version not spoken by every raft server")

// ServersSpeak returns nil when every server of cfg advertises (in peers)
// a protocol range that reaches v, else an error wrapping ErrProtoGate that
// names the servers that do not (or are not known). Version 1 is spoken by
// every release.
func ServersSpeak(cfg raft.Configuration, peers []Peer, v int) error {
	if v <= 1 {
		return nil
	}
	byName := map[string]Peer{}
	for _, p := range peers {
		byName[p.Name] = p
	}
	var short []string
	for _, s := range cfg.Servers {
		id := string(s.ID)
		p, known := byName[id]
		if !known {
			short = append(short, id+" (unknown)")
			continue
		}
		r, err := api.ParseProto(p.Proto)
		switch {
		case err != nil:
			short = append(short, fmt.Sprintf("%s (%v)", id, err))
		case r.Max < v:
			short = append(short, fmt.Sprintf("%s (speaks %s)", id, r))
		}
	}
	if len(short) > 0 {
		slices.Sort(short)
		return fmt.Errorf("%w: version %d: %s", ErrProtoGate, v, strings.Join(short, ", "))
	}
	return nil
}

// ProtoFit tells which peers may hold a replica: a peer whose protocol
// range overlaps the range every voter of cfg speaks. The voters' ranges
// come from peers; voters not known there, or with a malformed tag, do not
// narrow it. A peer with a malformed tag never fits.
func ProtoFit(cfg raft.Configuration, peers []Peer) func(Peer) bool {
	byName := map[string]Peer{}
	for _, p := range peers {
		byName[p.Name] = p
	}
	var voters []api.Proto
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		p, ok := byName[string(s.ID)]
		if !ok {
			continue
		}
		if r, err := api.ParseProto(p.Proto); err == nil {
			voters = append(voters, r)
		}
	}
	site, ok := api.CommonProto(voters...)
	return func(p Peer) bool {
		r, err := api.ParseProto(p.Proto)
		return ok && err == nil && r.Overlaps(site)
	}
}

// checkVersion refuses a format version this release does not speak.
func checkVersion(what string, v int) error {
	if v == 0 {
		v = 1
	}
	if !api.ThisProto().Speaks(v) {
		return fmt.Errorf("%s version %d: this release speaks protocol %s (upgrade edged on this node)", what, v, api.ThisProto())
	}
	return nil
}
