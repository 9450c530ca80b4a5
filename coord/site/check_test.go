package site

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const doc = `version: 1
site: s
nodes:
  "*":
    radio0: {frequency_mhz: 3550, power_dbm: 30, mode: auto}
    radio1: {frequency_mhz: 3700, power_dbm: 30}
    rect0: {float_voltage: 54.0}
constraints:
  - unique: radio0.frequency_mhz
  - unique: radio*.frequency_mhz
  - range: "*.power_dbm"
    min: -10
    max: 40
  - equal: rect*.float_voltage
  - range: "radio0.*_mhz"
    max: 4000
  - equal: radio0.mode
`
	d := mustParse(t, doc)
	tests := []struct {
		name    string
		desired Desired
		want    []string
	}{
		{
			name: "all fine",
			desired: Desired{
				"a": {"radio0": S{"frequency_mhz": int64(3550), "power_dbm": int64(30)}, "rect0": S{"float_voltage": 54.0}},
				"b": {"radio0": S{"frequency_mhz": int64(3570), "power_dbm": -10.0}, "rect0": S{"float_voltage": int64(54)}},
				"c": {"radio1": S{"frequency_mhz": int64(3590), "power_dbm": int64(40)}},
			},
		},
		{
			name:    "nothing to check",
			desired: Desired{},
		},
		{
			name: "two nodes on one frequency, int and float alike",
			desired: Desired{
				"ru-01": {"radio0": S{"frequency_mhz": int64(3550)}},
				"ru-02": {"radio0": S{"frequency_mhz": 3550.0}},
				"ru-03": {"radio0": S{"frequency_mhz": int64(3570)}},
			},
			want: []string{
				"site.yaml:9: constraints[0] unique radio0.frequency_mhz: node ru-01 and node ru-02 both 3550",
				"site.yaml:10: constraints[1] unique radio*.frequency_mhz: node ru-01 radio0 and node ru-02 radio0 both 3550",
			},
		},
		{
			name: "three radios, two devices of one node, a device glob",
			desired: Desired{
				"a": {"radio0": S{"frequency_mhz": int64(3550)}, "radio1": S{"frequency_mhz": int64(3550)}},
				"b": {"radio1": S{"frequency_mhz": int64(3550)}, "radio2": S{"frequency_mhz": int64(3600)}},
				"c": {"radio2": S{"frequency_mhz": int64(3600)}},
			},
			want: []string{
				"site.yaml:10: constraints[1] unique radio*.frequency_mhz: node a radio0, node a radio1 and node b radio1 all 3550",
				"site.yaml:10: constraints[1] unique radio*.frequency_mhz: node b radio2 and node c radio2 both 3600",
			},
		},
		{
			name: "out of range, not a number",
			desired: Desired{
				"a": {"radio0": S{"power_dbm": int64(41)}},
				"b": {"radio1": S{"power_dbm": -10.5}},
				"c": {"amp": S{"power_dbm": "high"}},
				"d": {"amp": S{"power_dbm": true}},
			},
			want: []string{
				"site.yaml:11: constraints[2] range *.power_dbm -10..40: node a radio0 is 41, above 40",
				"site.yaml:11: constraints[2] range *.power_dbm -10..40: node b radio1 is -10.5, below -10",
				`site.yaml:11: constraints[2] range *.power_dbm -10..40: node c amp is "high", not a number`,
				"site.yaml:11: constraints[2] range *.power_dbm -10..40: node d amp is true, not a number",
			},
		},
		{
			name: "one odd value among many",
			desired: Desired{
				"a": {"rect0": S{"float_voltage": 54.0}},
				"b": {"rect0": S{"float_voltage": 54.0}},
				"c": {"rect0": S{"float_voltage": 54.0}},
				"d": {"rect0": S{"float_voltage": 54.0}},
				"e": {"rect0": S{"float_voltage": 54.0}},
				"f": {"rect0": S{"float_voltage": 53.5}},
			},
			want: []string{
				`site.yaml:14: constraints[3] equal rect*.float_voltage: values differ: 53.5 on node f rect0; 54 on node a rect0, node b rect0, node c rect0 and 2 more`,
			},
		},
		{
			name: "a setting glob",
			desired: Desired{
				"a": {"radio0": S{"frequency_mhz": int64(4100), "power_dbm": int64(3)}},
			},
			want: []string{
				"site.yaml:15: constraints[4] range radio0.*_mhz <= 4000: node a radio0.frequency_mhz is 4100, above 4000",
			},
		},
		{
			name: "values differ",
			desired: Desired{
				"a": {"rect0": S{"float_voltage": 54.0}, "radio0": S{"mode": "auto"}},
				"b": {"rect0": S{"float_voltage": 53.5}, "radio0": S{"mode": "Auto"}},
				"c": {"rect1": S{"float_voltage": int64(54)}},
				"d": {"rect2": S{"float_voltage": "54"}},
			},
			want: []string{
				`site.yaml:14: constraints[3] equal rect*.float_voltage: values differ: 53.5 on node b rect0; "54" on node d rect2; 54 on node a rect0 and node c rect1`,
				`site.yaml:17: constraints[5] equal radio0.mode: values differ: "auto" on node a; "Auto" on node b`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Check(tt.desired)
			var got []string
			for _, e := range unjoin(err) {
				if e == nil {
					continue
				}
				var v *Violation
				if !errors.As(e, &v) {
					t.Errorf("error %T is not a *Violation", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Check:\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestResolveThenCheck goes the way the leader does: resolve the document
// for the members, then check the result.
func TestResolveThenCheck(t *testing.T) {
	d := mustParse(t, `version: 1
site: s
groups:
  radios: [ru-*]
nodes:
  "@radios":
    radio0: {frequency_mhz: 3550}
  ru-01:
    radio0: {frequency_mhz: 3560}
constraints:
  - unique: radio0.frequency_mhz
`)
	desired, _, err := d.Resolve([]string{"ru-01", "ru-02"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(desired); err != nil {
		t.Errorf("two radios: %v", err)
	}
	desired, _, err = d.Resolve([]string{"ru-01", "ru-02", "ru-03"})
	if err != nil {
		t.Fatal(err)
	}
	want := "site.yaml:11: constraints[0] unique radio0.frequency_mhz: node ru-02 and node ru-03 both 3550"
	if err := d.Check(desired); err == nil || err.Error() != want {
		t.Errorf("three radios: %v, want %s", err, want)
	}
}
