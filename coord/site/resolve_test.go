package site

import (
	"reflect"
	"strings"
	"testing"

	"edge/hardware"
)

func mustParse(t testing.TB, in string) *Document {
	t.Helper()
	d, err := Parse("site.yaml", []byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

type S = hardware.Settings

func TestResolve(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		nodes    []string
		want     Desired
		warnings []string
	}{
		{
			name: "precedence: all, group, glob, name",
			doc: `version: 1
site: s
groups:
  radios: [ru-*]
nodes:
  ru-01:            # written first, applies last
    radio0: {frequency_mhz: 3550}
  ru-0*:
    radio0: {frequency_mhz: 3560, power_dbm: 20}
  "@radios":
    radio0: {frequency_mhz: 3570, power_dbm: 10, mode: auto}
  "*":
    radio0: {frequency_mhz: 3580, power_dbm: 0, mode: off, enabled: true}
`,
			nodes: []string{"ru-01", "ru-02", "ru-10", "ctl"},
			want: Desired{
				"ru-01": {"radio0": S{"frequency_mhz": int64(3550), "power_dbm": int64(20), "mode": "auto", "enabled": true}},
				"ru-02": {"radio0": S{"frequency_mhz": int64(3560), "power_dbm": int64(20), "mode": "auto", "enabled": true}},
				"ru-10": {"radio0": S{"frequency_mhz": int64(3570), "power_dbm": int64(10), "mode": "auto", "enabled": true}},
				"ctl":   {"radio0": S{"frequency_mhz": int64(3580), "power_dbm": int64(0), "mode": "off", "enabled": true}},
			},
		},
		{
			name: "devices merge, settings of other devices kept",
			doc: `version: 1
site: s
nodes:
  "*":
    rect0: {float_voltage: 54.0}
  n1:
    radio0: {ports: [b, a]}
`,
			nodes: []string{"n1", "n2"},
			want: Desired{
				"n1": {"rect0": S{"float_voltage": 54.0}, "radio0": S{"ports": []string{"b", "a"}}},
				"n2": {"rect0": S{"float_voltage": 54.0}},
			},
		},
		{
			name: "same kind: the later one wins, with a warning",
			doc: `version: 1
site: s
groups:
  a: [n1, n2]
  b: [n2, n3]
nodes:
  "@b":
    radio0: {power_dbm: 10, mode: auto}
  "@a":
    radio0: {power_dbm: 20, mode: auto}
  "n[12]":
    rect0: {limit: 1}
  "n[23]":
    rect0: {limit: 2}
`,
			nodes: []string{"n1", "n2", "n3"},
			want: Desired{
				"n1": {"radio0": S{"power_dbm": int64(20), "mode": "auto"}, "rect0": S{"limit": int64(1)}},
				"n2": {"radio0": S{"power_dbm": int64(20), "mode": "auto"}, "rect0": S{"limit": int64(2)}},
				"n3": {"radio0": S{"power_dbm": int64(10), "mode": "auto"}, "rect0": S{"limit": int64(2)}},
			},
			warnings: []string{
				"site.yaml:9: nodes.@a.radio0.power_dbm: 20 overrides 10 from nodes.@b (line 7) on n2: both are group selectors, so the one further down wins",
				"site.yaml:13: nodes.n[23].rect0.limit: 2 overrides 1 from nodes.n[12] (line 11) on n2: both are glob selectors, so the one further down wins",
			},
		},
		{
			name: "selectors and group members matching no node warn",
			doc: `version: 1
site: s
groups:
  radios: [ru-*, rru-9]
  spare: [spare-*]
nodes:
  "@spare":
    radio0: {enabled: false}
  "@radios":
    radio0: {enabled: true}
  ru-09:
    radio0: {frequency_mhz: 3550}
  "x*":
    radio0: {frequency_mhz: 3560}
`,
			nodes: []string{"ru-01"},
			want:  Desired{"ru-01": {"radio0": S{"enabled": true}}},
			warnings: []string{
				`site.yaml:4: groups.radios[1]: "rru-9" matches none of the 1 node`,
				`site.yaml:5: groups.spare[0]: "spare-*" matches none of the 1 node`,
				"site.yaml:7: nodes.@spare: matches none of the 1 node",
				"site.yaml:11: nodes.ru-09: matches none of the 1 node",
				"site.yaml:13: nodes.x*: matches none of the 1 node",
			},
		},
		{
			name:  "no nodes",
			doc:   "version: 1\nsite: s\nnodes:\n  \"*\":\n    radio0: {enabled: true}\n",
			nodes: nil,
			want:  Desired{},
			warnings: []string{
				"site.yaml:4: nodes.*: matches none of the 0 nodes",
			},
		},
		{
			name: "shell negation [!x] and ?",
			doc: `version: 1
site: s
nodes:
  "n[!1]":
    r: {a: 1}
  "?1":
    r: {b: 2}
`,
			nodes: []string{"n1", "n2", "x1"},
			want: Desired{
				"n1": {"r": S{"b": int64(2)}},
				"n2": {"r": S{"a": int64(1)}},
				"x1": {"r": S{"b": int64(2)}},
			},
		},
		{
			name: "equal values of one kind do not warn",
			doc: `version: 1
site: s
nodes:
  "n*":
    r: {a: 1}
  "*1":
    r: {a: 1.0}
`,
			nodes: []string{"n1"},
			want:  Desired{"n1": {"r": S{"a": 1.0}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustParse(t, tt.doc)
			got, warnings, err := d.Resolve(tt.nodes)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve:\n got %v\nwant %v", got, tt.want)
			}
			if strings.Join(warnings, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings:\n got %s\nwant %s", strings.Join(warnings, "\n"), strings.Join(tt.warnings, "\n"))
			}
		})
	}
}

func TestResolveDoesNotShare(t *testing.T) {
	d := mustParse(t, "version: 1\nsite: s\nnodes:\n  \"*\":\n    r: {l: [a, b]}\n")
	got, _, err := d.Resolve([]string{"n1", "n2"})
	if err != nil {
		t.Fatal(err)
	}
	got["n1"]["r"]["l"].([]string)[0] = "changed"
	got["n1"]["r"]["x"] = 1
	if l := got["n2"]["r"]["l"].([]string); l[0] != "a" {
		t.Errorf("nodes share a list: %v", l)
	}
	if _, ok := got["n2"]["r"]["x"]; ok {
		t.Error("nodes share settings")
	}
	if l := d.Nodes[0].Devices["r"]["l"].([]string); l[0] != "a" || len(d.Nodes[0].Devices["r"]) != 1 {
		t.Errorf("Resolve's result shares the document: %v", d.Nodes[0].Devices["r"])
	}
}

func TestResolveErrors(t *testing.T) {
	d := mustParse(t, "version: 1\nsite: s\n")
	for _, tt := range []struct {
		nodes []string
		want  string
	}{
		{[]string{"a", "b a"}, `site: resolve: "b a" is not a valid node name`},
		{[]string{""}, `site: resolve: "" is not a valid node name`},
		{[]string{"a", "b", "a"}, `site: resolve: node "a" listed twice`},
	} {
		if _, _, err := d.Resolve(tt.nodes); err == nil || err.Error() != tt.want {
			t.Errorf("Resolve(%q) = %v, want %s", tt.nodes, err, tt.want)
		}
	}
}

func TestDiffDesired(t *testing.T) {
	old := Desired{
		"a": {"radio0": S{"frequency_mhz": int64(3550), "power_dbm": int64(30), "ports": []string{"x"}}},
		"b": {"rect0": S{"float_voltage": 54.0}},
		"c": {"radio0": S{"mode": "auto"}},
	}
	new := Desired{
		"a": {"radio0": S{"frequency_mhz": int64(3570), "power_dbm": 30.0, "ports": []string{"x", "y"}}},
		"b": {"rect0": S{"float_voltage": 54.0}, "radio0": S{"enabled": true}},
		"d": {"uplink": S{"mtu": int64(9000)}},
	}
	got := DiffDesired(old, new)
	want := []Change{
		{"a", "radio0", "frequency_mhz", int64(3550), int64(3570)},
		{"a", "radio0", "ports", []string{"x"}, []string{"x", "y"}},
		{"b", "radio0", "enabled", nil, true},
		{"c", "radio0", "mode", "auto", nil},
		{"d", "uplink", "mtu", nil, int64(9000)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DiffDesired:\n got %v\nwant %v", got, want)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	wantLines := "a radio0.frequency_mhz: 3550 -> 3570\na radio0.ports: [x] -> [x, y]\nb radio0.enabled: - -> true\nc radio0.mode: auto -> -\nd uplink.mtu: - -> 9000"
	if s := strings.Join(lines, "\n"); s != wantLines {
		t.Errorf("Change.String:\n got %s\nwant %s", s, wantLines)
	}
	if c := DiffDesired(old, old); len(c) != 0 {
		t.Errorf("DiffDesired(old, old) = %v", c)
	}
	if c := DiffDesired(nil, nil); len(c) != 0 {
		t.Errorf("DiffDesired(nil, nil) = %v", c)
	}
	if c := DiffDesired(nil, Desired{"a": {"r": S{}}}); len(c) != 0 {
		t.Errorf("a device without settings is a change: %v", c)
	}
}

func TestHash(t *testing.T) {
	base := `version: 1
site: s
groups:
  a: [n1, n2]
  b: [n3]
nodes:
  "*":
    rect0: {float_voltage: 54.0, limit: 40}
    radio0: {enabled: true}
  "@a":
    radio0: {mode: auto}
constraints:
  - equal: rect0.float_voltage
`
	same := []string{
		// comments, layout, quoting, default policy written out, order of
		// groups, members and keys within a selector
		`# the site
version: 1
site: "s"
policy: {strategy: parallel, confirm_timeout: 5m, atomic: true, auto_confirm: false}
groups:
  b: ["n3"]
  a: [n2, n1]
nodes:
  '*':
    radio0:
      enabled: true
    rect0:
      limit: 40
      float_voltage: 54
  "@a": {radio0: {mode: "auto"}}
constraints: [{equal: rect0.float_voltage}]
`,
	}
	different := []string{
		strings.Replace(base, "site: s", "site: t", 1),
		strings.Replace(base, "limit: 40", "limit: 41", 1),
		strings.Replace(base, "limit: 40", `limit: "40"`, 1),
		strings.Replace(base, "mode: auto", "mode: Auto", 1),
		strings.Replace(base, "[n3]", "[n4]", 1),
		strings.Replace(base, "equal:", "unique:", 1),
		strings.Replace(base, "version: 1\n", "version: 1\npolicy: {auto_confirm: true}\n", 1),
		strings.Replace(base, "version: 1\n", "version: 1\npolicy: {confirm_timeout: 6m}\n", 1),
		strings.Replace(base, "version: 1\n", "version: 1\npolicy: {strategy: rolling}\n", 1),
		strings.Replace(base, "version: 1\n", "version: 1\npolicy: {strategy: rolling, max_unavailable: 2}\n", 1),
		strings.Replace(base, "  - equal: rect0.float_voltage\n", "  - range: rect0.limit\n    max: 50\n", 1),
		strings.Replace(base, "  - equal: rect0.float_voltage\n", "  - range: rect0.limit\n    min: 50\n", 1),
	}
	h := mustParse(t, base).Hash()
	if len(h) != 64 {
		t.Fatalf("Hash = %q, want 64 hex digits", h)
	}
	for i, s := range same {
		if got := mustParse(t, s).Hash(); got != h {
			t.Errorf("same[%d]: hash %s, want %s", i, got, h)
		}
	}
	seen := map[string]int{h: -1}
	for i, s := range different {
		got := mustParse(t, s).Hash()
		if j, dup := seen[got]; dup {
			t.Errorf("different[%d]: same hash as %d", i, j)
		}
		seen[got] = i
	}
}
