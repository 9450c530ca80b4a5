package site

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"edge/hardware"
	"edge/internal/strictyaml"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// errLineRE is the shape of every line of a parse error:
// file[:line]: [key: ]message.
var errLineRE = regexp.MustCompile(`^testdata/parse/[a-z_]+\.yaml(:[1-9][0-9]*)?: \S.*$`)

// TestParseErrors parses every testdata/parse/bad_*.yaml and compares the
// error, one line per problem, with the .golden file next to it. Run with
// -update to rewrite the golden files, then read the diff: the line numbers
// must point at the mistake.
func TestParseErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/parse/bad_*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("found %d bad_*.yaml files, want at least 30", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			doc, err := Load(file)
			if err == nil {
				t.Fatalf("Load = %+v, want an error", doc)
			}
			if doc != nil {
				t.Errorf("Load returned a document with its error: %+v", doc)
			}
			for _, e := range unjoin(err) {
				var se *strictyaml.Error
				if !errors.As(e, &se) {
					t.Errorf("error %T %q is not a *strictyaml.Error", e, e)
				}
			}
			got := err.Error() + "\n"
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !errLineRE.MatchString(line) {
					t.Errorf("error line %q is not file:line: key: message", line)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) error:\n got:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func f64(v float64) *float64 { return &v }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Document
	}{
		{
			name: "minimal",
			in:   "version: 1\nsite: mast-17\n",
			want: &Document{Version: 1, Site: "mast-17", Policy: DefaultPolicy()},
		},
		{
			name: "rolling defaults to one node at a time",
			in:   "version: 1\nsite: s\npolicy: {strategy: rolling}\n",
			want: &Document{Version: 1, Site: "s", Policy: Policy{Strategy: Rolling, MaxUnavailable: 1, ConfirmTimeout: 5 * time.Minute, Atomic: true}},
		},
		{
			name: "rolling by percentage",
			in: `version: 1
site: s
policy:
  strategy: rolling
  max_unavailable: 25%
  confirm_timeout: 90s
  atomic: false
  auto_confirm: true
`,
			want: &Document{Version: 1, Site: "s", Policy: Policy{Strategy: Rolling, MaxUnavailablePercent: 25, ConfirmTimeout: 90 * time.Second, AutoConfirm: true}},
		},
		{
			name: "selectors, values and constraints",
			in: `version: 1
site: s
groups:
  radios: [ru-*, "node[!0]", node1]
nodes:
  "*":
    rect0: {float_voltage: 54.0, limit: 40, on: true, mode: float, ports: [a, 1, "b"], hex: 0x10, big: 1_000}
  "@radios":
    radio0: {}
  ru-?1:
    radio0: {frequency_mhz: 3550.5}
  node1:
    my.dev: {x-y: "54"}
constraints:
  - unique: radio0.frequency_mhz
  - range: "*.float_voltage"
    max: 58
  - range: rect0.limit
    min: 0
    max: 100
  - equal: "rect[0-9].*"
`,
			want: &Document{
				Version: 1, Site: "s", Policy: DefaultPolicy(),
				Groups: []Group{{Name: "radios", Members: []string{"ru-*", "node[!0]", "node1"}, Line: 4, MemberLines: []int{4, 4, 4}}},
				Nodes: []Selector{
					{Key: "*", Kind: KindAll, Line: 6, Devices: map[string]hardware.Settings{"rect0": {
						"float_voltage": 54.0, "limit": int64(40), "on": true, "mode": "float",
						"ports": []string{"a", "1", "b"}, "hex": int64(16), "big": int64(1000)}}},
					{Key: "@radios", Kind: KindGroup, Group: "radios", Line: 8, Devices: map[string]hardware.Settings{"radio0": {}}},
					{Key: "ru-?1", Kind: KindGlob, Line: 10, Devices: map[string]hardware.Settings{"radio0": {"frequency_mhz": 3550.5}}},
					{Key: "node1", Kind: KindNode, Line: 12, Devices: map[string]hardware.Settings{"my.dev": {"x-y": "54"}}},
				},
				Constraints: []Constraint{
					{Rule: Unique, Setting: "radio0.frequency_mhz", Line: 15},
					{Rule: Range, Setting: "*.float_voltage", Max: f64(58), Line: 16},
					{Rule: Range, Setting: "rect0.limit", Min: f64(0), Max: f64(100), Line: 18},
					{Rule: Equal, Setting: "rect[0-9].*", Line: 21},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("site.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !bytes.Equal(got.Raw, []byte(tt.in)) {
				t.Errorf("Raw = %q, want the input", got.Raw)
			}
			tt.want.File, tt.want.Raw, tt.want.siteLine = "site.yaml", got.Raw, 2
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestExample: the documented example parses, resolves and passes its own
// constraints.
func TestExample(t *testing.T) {
	d, err := Load("../../examples/site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"ru-01", "ru-02", "ru-03", "rru-3", "pwr-1", "ctl-1"}
	desired, warnings, err := d.Resolve(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if err := d.Check(desired); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := d.Policy.Validate(); err != nil {
		t.Errorf("Policy.Validate: %v", err)
	}
	want := hardware.Settings{"enabled": true, "mode": "auto", "power_dbm": int64(33), "frequency_mhz": int64(3590)}
	if got := desired["ru-03"]["radio0"]; !reflect.DeepEqual(got, want) {
		t.Errorf("ru-03 radio0 = %v, want %v", got, want)
	}
	// The documented example must be the file.
	doc, err := os.ReadFile("../../docs/site-config.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, d.Raw) {
		t.Errorf("docs/site-config.md does not quote examples/site.yaml in full")
	}
}

func TestParseLimits(t *testing.T) {
	big := append([]byte("version: 1\nsite: s\n#"), bytes.Repeat([]byte("x"), MaxSize)...)
	if _, err := Parse("big.yaml", big); err == nil || err.Error() != "big.yaml: larger than 1048576 bytes" {
		t.Errorf("Parse of %d bytes: %v", len(big), err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || err.Error() != path+": larger than 1048576 bytes" {
		t.Errorf("Load of a large file: %v", err)
	}
	missing := filepath.Join(dir, "nope.yaml")
	if _, err := Load(missing); err == nil || !errors.Is(err, os.ErrNotExist) || err.Error() != "site config: open "+missing+": no such file or directory" {
		t.Errorf("Load of a missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || err.Error() != "site config "+dir+": read "+dir+": is a directory" {
		t.Errorf("Load of a folder: %v", err)
	}
	if _, err := Parse("", []byte("version: 1\n")); err == nil || err.Error() != "<site>: site: required: the site's name, as in every node's edged.yaml" {
		t.Errorf("Parse without a name: %v", err)
	}
}

func TestCheckSite(t *testing.T) {
	d, err := Parse("site.yaml", []byte("# mast\nversion: 1\nsite: mast-17\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSite("mast-17"); err != nil {
		t.Errorf("CheckSite(mast-17) = %v", err)
	}
	want := `site.yaml:3: site: this document is for site "mast-17", this cluster is site "mast-18"`
	if err := d.CheckSite("mast-18"); err == nil || err.Error() != want {
		t.Errorf("CheckSite(mast-18) = %v, want %s", err, want)
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		err     string
		batches map[int]int // targets -> batch size
	}{
		{"default", DefaultPolicy(), "", map[int]int{0: 0, 1: 1, 30: 30}},
		{"rolling 2", Policy{Strategy: Rolling, MaxUnavailable: 2, ConfirmTimeout: time.Minute}, "", map[int]int{1: 1, 2: 2, 30: 2}},
		{"rolling 25%", Policy{Strategy: Rolling, MaxUnavailablePercent: 25, ConfirmTimeout: time.Minute}, "", map[int]int{1: 1, 3: 1, 8: 2, 30: 7}},
		{"rolling 100%", Policy{Strategy: Rolling, MaxUnavailablePercent: 100, ConfirmTimeout: time.Minute}, "", map[int]int{5: 5}},
		{"zero", Policy{}, "policy.strategy: must be one of parallel|rolling, got \"\"\npolicy.confirm_timeout: must be 10s-24h, got 0s", nil},
		{"rolling without count", Policy{Strategy: Rolling, ConfirmTimeout: time.Minute}, "policy.max_unavailable: must be 1-1000 or a percentage such as 25%, got 0", nil},
		{"rolling both", Policy{Strategy: Rolling, MaxUnavailable: 1, MaxUnavailablePercent: 5, ConfirmTimeout: time.Minute}, "policy.max_unavailable: a count or a percentage, not both", nil},
		{"rolling 101%", Policy{Strategy: Rolling, MaxUnavailablePercent: 101, ConfirmTimeout: time.Minute}, "policy.max_unavailable: must be 1%-100%, got 101%", nil},
		{"parallel with count", Policy{Strategy: Parallel, MaxUnavailable: 3, ConfirmTimeout: time.Minute}, "policy.max_unavailable: only applies to strategy: rolling", nil},
		{"timeout too long", Policy{Strategy: Parallel, ConfirmTimeout: 25 * time.Hour}, "policy.confirm_timeout: must be 10s-24h, got 25h", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if got := errString(err); got != tt.err {
				t.Errorf("Validate = %q, want %q", got, tt.err)
			}
			for targets, want := range tt.batches {
				if got := tt.p.BatchSize(targets); got != want {
					t.Errorf("BatchSize(%d) = %d, want %d", targets, got, want)
				}
			}
		})
	}
	if got := (Policy{Strategy: Rolling, MaxUnavailablePercent: 25}).MaxUnavailableString(); got != "25%" {
		t.Errorf("MaxUnavailableString = %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
