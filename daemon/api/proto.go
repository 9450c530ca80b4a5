package api

import (
	"fmt"
	"strconv"
	"strings"
)

// The wire-protocol versions this release speaks. One number covers every
// format nodes exchange: the serf tags, the node-to-node RPC bodies, the
// raft log's commands and the raft snapshots. A release speaks a range, so
// that release N and N+1 can share a site: N+1 keeps speaking what N
// writes, and starts writing a newer version only once every raft server
// speaks it (see store.ServersSpeak).
//
// Releases before protocol versions existed advertise nothing; they speak
// protocol 1.
const (
	ProtoMin = 1
	ProtoMax = 1
)

// TagProto is the serf tag (and mDNS TXT key) carrying the protocol range a
// node speaks: "1", or "1-2" for a range.
const TagProto = "proto"

// Proto is a range of protocol versions, Min to Max inclusive.
type Proto struct {
	Min, Max int
}

// ThisProto is the range this release speaks.
func ThisProto() Proto { return Proto{Min: ProtoMin, Max: ProtoMax} }

// String returns the tag form: "1", or "1-2".
func (p Proto) String() string {
	if p.Min == p.Max {
		return strconv.Itoa(p.Min)
	}
	return fmt.Sprintf("%d-%d", p.Min, p.Max)
}

// Speaks reports whether v is in the range.
func (p Proto) Speaks(v int) bool { return p.Min <= v && v <= p.Max }

// Overlaps reports whether two ranges share a version.
func (p Proto) Overlaps(o Proto) bool { return p.Min <= o.Max && o.Min <= p.Max }

// Intersect returns the versions both ranges speak; ok is false when they
// share none.
func (p Proto) Intersect(o Proto) (Proto, bool) {
	r := Proto{Min: max(p.Min, o.Min), Max: min(p.Max, o.Max)}
	return r, r.Min <= r.Max
}

// maxProto bounds the numbers ParseProto accepts.
const maxProto = 1 << 16

// ParseProto parses a TagProto value. An empty value is a node of a release
// before protocol versions: protocol 1.
func ParseProto(s string) (Proto, error) {
	if s == "" {
		return Proto{Min: 1, Max: 1}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	switch {
	case errA != nil || errB != nil:
		return Proto{}, fmt.Errorf("protocol %q: want N or MIN-MAX", s)
	case a < 1 || b > maxProto:
		return Proto{}, fmt.Errorf("protocol %q: versions are 1 to %d", s, maxProto)
	case a > b:
		return Proto{}, fmt.Errorf("protocol %q: %d is above %d", s, a, b)
	}
	return Proto{Min: a, Max: b}, nil
}

// CommonProto returns the versions every range of ps speaks (their
// intersection); ok is false when they share none. No ranges at all share
// every version.
func CommonProto(ps ...Proto) (Proto, bool) {
	r := Proto{Min: 1, Max: maxProto}
	for _, p := range ps {
		var ok bool
		if r, ok = r.Intersect(p); !ok {
			return r, false
		}
	}
	return r, true
}
