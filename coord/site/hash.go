package site

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// canonical is the document's meaning in a fixed form: comments, layout,
// quoting, defaults written out or left out, the order of groups, of group
// members and of keys within a selector do not change it.
type canonical struct {
	Schema      string            `json:"schema"`
	Version     int               `json:"version"`
	Site        string            `json:"site"`
	Policy      canonicalPolicy   `json:"policy"`
	Groups      []canonicalGroup  `json:"groups"`
	Nodes       []canonicalNodes  `json:"nodes"`
	Constraints []canonicalConstr `json:"constraints"`
}

type canonicalPolicy struct {
	Strategy              string `json:"strategy"`
	MaxUnavailable        int    `json:"max_unavailable"`
	MaxUnavailablePercent int    `json:"max_unavailable_percent"`
	ConfirmTimeoutMS      int64  `json:"confirm_timeout_ms"`
	Atomic                bool   `json:"atomic"`
	AutoConfirm           bool   `json:"auto_confirm"`
}

type canonicalGroup struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// canonicalNodes keeps the selectors in document order: it decides between
// selectors of one kind.
type canonicalNodes struct {
	Selector string                    `json:"selector"`
	Devices  map[string]map[string]any `json:"devices"` // json sorts map keys
}

type canonicalConstr struct {
	Rule    string   `json:"rule"`
	Setting string   `json:"setting"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
}

// Hash identifies the document by its meaning: the hex SHA-256 of a
// canonical form. Two documents with the same hash resolve to the same
// desired state with the same policy and constraints; comments, layout,
// quoting, defaults spelled out or not, and the order of groups and of keys
// within a selector do not change it. Use it for change ids and to tell a
// repeated apply from a new one. Hash panics on a non-finite number, which
// no parsed document holds.
func (d *Document) Hash() string {
	c := canonical{
		Schema:  "edge/site",
		Version: d.Version,
		Site:    d.Site,
		Policy: canonicalPolicy{
			Strategy:              string(d.Policy.Strategy),
			MaxUnavailable:        d.Policy.MaxUnavailable,
			MaxUnavailablePercent: d.Policy.MaxUnavailablePercent,
			ConfirmTimeoutMS:      d.Policy.ConfirmTimeout.Milliseconds(),
			Atomic:                d.Policy.Atomic,
			AutoConfirm:           d.Policy.AutoConfirm,
		},
		Groups:      []canonicalGroup{},
		Nodes:       []canonicalNodes{},
		Constraints: []canonicalConstr{},
	}
	for _, g := range d.Groups {
		c.Groups = append(c.Groups, canonicalGroup{Name: g.Name, Members: slices.Sorted(slices.Values(g.Members))})
	}
	slices.SortFunc(c.Groups, func(a, b canonicalGroup) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range d.Nodes {
		devs := map[string]map[string]any{}
		for dev, set := range s.Devices {
			devs[dev] = map[string]any(set)
		}
		c.Nodes = append(c.Nodes, canonicalNodes{Selector: s.Key, Devices: devs})
	}
	for _, k := range d.Constraints {
		c.Constraints = append(c.Constraints, canonicalConstr{Rule: string(k.Rule), Setting: k.Setting, Min: k.Min, Max: k.Max})
	}
	data, err := json.Marshal(c)
	if err != nil {
		// Only finite numbers, strings, bools and lists get here.
		panic("site: canonical form: " + err.Error())
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
