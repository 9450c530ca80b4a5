package bench

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

// Traffic classes counted on each node's eth0, by port: what a node sends
// and receives on the site network, never loopback.
const (
	trafficGossip = "gossip" // serf/memberlist, UDP and TCP on the gossip port
	trafficRaft   = "raft"   // raft and node RPC, TCP on the raft port (mutual TLS)
	trafficMDNS   = "mdns"   // mDNS, UDP 5353
	trafficOther  = "other"
)

var trafficClasses = []string{trafficGossip, trafficRaft, trafficMDNS, trafficOther}

// trafficRules is an nftables table of named counters, one per class and
// direction, loaded into a node's namespace. Rules only count and accept: the
// node's traffic is untouched.
var trafficRules = template.Must(template.New("nft").Parse(`table inet edgebench {
{{- range .Classes}}
	counter {{.}}_tx { }
	counter {{.}}_rx { }
{{- end}}
{{- range .Chains}}
	chain {{.Name}} {
		type filter hook {{.Hook}} priority 0; policy accept;
		{{.Iface}} != "eth0" accept
		meta l4proto { tcp, udp } th sport {{$.Gossip}} counter name "gossip_{{.Dir}}" accept
		meta l4proto { tcp, udp } th dport {{$.Gossip}} counter name "gossip_{{.Dir}}" accept
		tcp sport {{$.Raft}} counter name "raft_{{.Dir}}" accept
		tcp dport {{$.Raft}} counter name "raft_{{.Dir}}" accept
		udp dport 5353 counter name "mdns_{{.Dir}}" accept
		udp sport 5353 counter name "mdns_{{.Dir}}" accept
		counter name "other_{{.Dir}}"
	}
{{- end}}
}
`))

// trafficChain is one hook of the table: what a node sends (output, tx) or
// receives (input, rx).
type trafficChain struct{ Name, Hook, Iface, Dir string }

var trafficChains = []trafficChain{
	{"out", "output", "oifname", "tx"},
	{"in", "input", "iifname", "rx"},
}

// trafficTable renders the counters' table for the given ports.
func trafficTable(gossipPort, raftPort int) string {
	var b strings.Builder
	err := trafficRules.Execute(&b, struct {
		Classes      []string
		Chains       []trafficChain
		Gossip, Raft int
	}{trafficClasses, trafficChains, gossipPort, raftPort})
	if err != nil {
		panic(err) // a fixed template
	}
	return b.String()
}

// counters is one reading of a node's counters: bytes by "class_tx" or
// "class_rx" (IP packet lengths).
type counters map[string]uint64

// parseCounters reads `nft -j list counters table inet edgebench`.
func parseCounters(out []byte) (counters, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name  string `json:"name"`
				Table string `json:"table"`
				Bytes uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft counters: %w", err)
	}
	c := counters{}
	for _, e := range doc.Nftables {
		if e.Counter != nil && e.Counter.Table == "edgebench" {
			c[e.Counter.Name] = e.Counter.Bytes
		}
	}
	for _, cl := range trafficClasses {
		for _, dir := range []string{"_tx", "_rx"} {
			if _, ok := c[cl+dir]; !ok {
				return nil, fmt.Errorf("nft counters: no counter %s%s", cl, dir)
			}
		}
	}
	return c, nil
}

// rates returns bytes per second of each counter between two readings.
func rates(a, b counters, seconds float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if seconds > 0 && v >= a[k] {
			out[k] = float64(v-a[k]) / seconds
		}
	}
	return out
}
