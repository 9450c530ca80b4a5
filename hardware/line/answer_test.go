package line

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"edge/hardware"
)

func loadExample(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := LoadProfile(filepath.Join("..", "..", "examples", "profiles", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseValue(t *testing.T) {
	scpi := loadExample(t, "scpi-instrument.yaml")
	at := loadExample(t, "at-modem.yaml")
	str, err := ParseProfile("s.yaml", []byte(`
settings:
  name: {type: string, query: "NAME?", match: '^"(.*)"$'}
  count: {type: int, query: "N?", scale: 1000, units: {K: 1000000}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		s     *Setting
		lines []string
		want  any
		err   string
	}{
		{scpi.Settings["frequency"], []string{"3.550000E+09"}, 3550.0, ""},
		{scpi.Settings["frequency"], []string{"3.55E+09"}, 3550.0, ""},
		{scpi.Settings["frequency"], []string{"+3550000000"}, 3550.0, ""},
		{scpi.Settings["frequency"], []string{"3550 MHz"}, 3550.0, ""},
		{scpi.Settings["frequency"], []string{"3.55GHZ"}, 3550.0, ""},
		{scpi.Settings["frequency"], []string{"9000 Hz"}, 0.009, ""},
		{scpi.Settings["frequency"], []string{"3.55 THz"}, nil, `"3.55 THz": unknown unit "THz"`},
		{scpi.Settings["frequency"], []string{"abc"}, nil, `"abc" is not a number`},
		{scpi.Settings["frequency"], []string{"NaN"}, nil, `"NaN" is not a number`},
		{scpi.Settings["frequency"], []string{"1e999"}, nil, `"1e999" is not a finite number`},
		{scpi.Settings["frequency"], []string{"0x10"}, nil, `"0x10": unknown unit "x10"`},
		{scpi.Settings["frequency"], nil, nil, "empty answer"},
		{scpi.Settings["power"], []string{"-1.000000E+01"}, -10.0, ""},
		{scpi.Settings["power"], []string{"-10.5 dBm"}, -10.5, ""},
		{scpi.Settings["output"], []string{"1"}, true, ""},
		{scpi.Settings["output"], []string{"on"}, true, ""},
		{scpi.Settings["output"], []string{"0"}, false, ""},
		{scpi.Settings["output"], []string{"2"}, nil, `"2" is neither ON|1 nor OFF|0`},
		{scpi.Settings["mode"], []string{"SWE"}, "sweep", ""},
		{scpi.Settings["mode"], []string{"sweep"}, "sweep", ""},
		{scpi.Settings["mode"], []string{"FIX"}, "cw", ""},
		{scpi.Settings["mode"], []string{"STEP"}, nil, `"STEP" is none of CW|FIX|FIXED|SWEEP|SWE|LIST`},
		{at.Settings["functionality"], []string{"+CFUN: 1"}, "full", ""},
		{at.Settings["functionality"], []string{"+CFUN: 4"}, "airplane", ""},
		{at.Settings["functionality"], []string{"+CFUN: 7"}, nil, `"7" is none of 0|1|4`},
		{at.Settings["functionality"], []string{"RING", "+CFUN: 0"}, "minimum", ""},
		{at.Settings["functionality"], []string{"+CFUN:1"}, nil, `no line matches ^\+CFUN: (\d+)`},
		{at.Settings["operator_selection"], []string{`+COPS: 0,0,"EdgeNet",7`}, "automatic", ""},
		{at.Settings["operator_selection"], []string{`+COPS: 2`}, "deregister", ""},
		{at.Settings["registration_urc"], []string{`+CREG: 1,5`}, "on", ""},
		{str.Settings["name"], []string{`"site-17"`}, "site-17", ""},
		{str.Settings["name"], []string{`site-17`}, nil, `no line matches ^"(.*)"$`},
		{str.Settings["count"], []string{"3"}, int64(3000), ""},
		{str.Settings["count"], []string{"2.5 k"}, int64(2500000), ""},
		{str.Settings["count"], []string{"0.0001"}, nil, `"0.0001" is not a whole number`},
		{str.Settings["count"], []string{"1e300"}, nil, `"1e300" is not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.s.Name+"/"+strings.Join(tt.lines, "|"), func(t *testing.T) {
			got, err := tt.s.Parse(tt.lines)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Parse = %v, %v; want error %s", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !hardware.Equal(got, tt.want) || typeName(got) != typeName(tt.want) {
				t.Fatalf("Parse = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case float64:
		return "float64"
	case int64:
		return "int64"
	case bool:
		return "bool"
	case string:
		return "string"
	}
	return "?"
}

// 3.55E+09 * 1e-6 is 3550.0000000000005 in float64: canonical values are
// rounded so that they print and compare as an operator wrote them.
func TestParseValueRounding(t *testing.T) {
	s := loadExample(t, "scpi-instrument.yaml").Settings["frequency"]
	v, err := s.ParseValue("3.55E+09")
	if err != nil || v != 3550.0 || hardware.Format(v) != "3550" {
		t.Fatalf("ParseValue = %#v, %v", v, err)
	}
}

func TestCheck(t *testing.T) {
	scpi := loadExample(t, "scpi-instrument.yaml")
	at := loadExample(t, "at-modem.yaml")
	ok := []struct {
		p    *Profile
		in   hardware.Settings
		want hardware.Settings
	}{
		{scpi, hardware.Settings{"frequency": 3550, "power": -10, "output": true, "mode": "SWEEP"},
			hardware.Settings{"frequency": 3550.0, "power": -10.0, "output": true, "mode": "sweep"}},
		{scpi, hardware.Settings{"frequency": int64(100), "power": json.Number("-20.5"), "output": "on", "mode": "cw"},
			hardware.Settings{"frequency": 100.0, "power": -20.5, "output": true, "mode": "cw"}},
		{scpi, hardware.Settings{"frequency": "0.009", "output": "false"}, hardware.Settings{"frequency": 0.009, "output": false}},
		{at, hardware.Settings{"functionality": "full", "operator_selection": "Automatic", "echo": false},
			hardware.Settings{"functionality": "full", "operator_selection": "automatic", "echo": false}},
	}
	for _, tt := range ok {
		got, err := tt.p.Check(tt.in)
		if err != nil {
			t.Fatalf("Check(%v): %v", tt.in, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("Check(%v) = %v", tt.in, got)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Fatalf("Check(%v)[%s] = %#v, want %#v", tt.in, k, got[k], v)
			}
		}
	}

	bad := []struct {
		p    *Profile
		in   hardware.Settings
		want string
	}{
		{scpi, hardware.Settings{"frequency": 7000}, "invalid setting: frequency: 7000 MHz is out of range 0.009..6000 MHz"},
		{scpi, hardware.Settings{"frequency": 0.001}, "invalid setting: frequency: 0.001 MHz is out of range 0.009..6000 MHz"},
		{scpi, hardware.Settings{"frequency": "fast"}, `invalid setting: frequency: "fast": want a number`},
		{scpi, hardware.Settings{"frequency": "NaN"}, `invalid setting: frequency: "NaN": want a number`},
		{scpi, hardware.Settings{"frequency": true}, `invalid setting: frequency: true: want a number`},
		{scpi, hardware.Settings{"power": 21}, "invalid setting: power: 21 dBm is out of range -130..20 dBm"},
		{scpi, hardware.Settings{"output": "maybe"}, `invalid setting: output: "maybe": want true or false`},
		{scpi, hardware.Settings{"mode": "step"}, `invalid setting: mode: "step": want one of cw|sweep|list`},
		{scpi, hardware.Settings{"mode": 3}, `invalid setting: mode: 3: want one of cw|sweep|list`},
		{scpi, hardware.Settings{"colour": "red"}, "invalid setting: colour: unknown setting (the profile has frequency, power, output, mode)"},
		{at, hardware.Settings{"functionality": "off"}, `invalid setting: functionality: "off": want one of minimum|full|airplane`},
		{scpi, hardware.Settings{"frequency": 7000, "mode": "step"},
			"invalid setting: frequency: 7000 MHz is out of range 0.009..6000 MHz\n" + `invalid setting: mode: "step": want one of cw|sweep|list`},
	}
	for _, tt := range bad {
		_, err := tt.p.Check(tt.in)
		if err == nil || err.Error() != tt.want || !errors.Is(err, hardware.ErrInvalid) {
			t.Errorf("Check(%v) = %v\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestCheckIntAndString(t *testing.T) {
	p, err := ParseProfile("c.yaml", []byte(`
settings:
  mtu: {type: int, min: 68, max: 9216, set: "mtu {value}", query: "show mtu"}
  host: {type: string, set: "hostname {value}", pattern: '[a-z][a-z0-9-]*', max_length: 16}
  ro: {type: int, query: "show ro"}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Check(hardware.Settings{"mtu": 1500.0, "host": "rru-3"})
	if err != nil || got["mtu"] != int64(1500) || got["host"] != "rru-3" {
		t.Fatalf("Check = %#v, %v", got, err)
	}
	for in, want := range map[string]hardware.Settings{
		"invalid setting: mtu: 1500.5: want a whole number":                            {"mtu": 1500.5},
		"invalid setting: mtu: 10 is out of range 68..9216":                            {"mtu": 10},
		`invalid setting: host: "RRU 3\n": only printable ASCII without double quotes`: {"host": "RRU 3\n"},
		`invalid setting: host: "RRU-3": does not match ^(?:[a-z][a-z0-9-]*)$`:         {"host": "RRU-3"},
		`invalid setting: host: "a\"b": only printable ASCII without double quotes`:    {"host": `a"b`},
		`invalid setting: host: "abcdefghijklmnopq": longer than 16 characters`:        {"host": "abcdefghijklmnopq"},
		"invalid setting: host: 5: want a string":                                      {"host": 5},
		"invalid setting: ro: read-only (the profile has no set command)":              {"ro": 1},
	} {
		_, err := p.Check(want)
		if err == nil || err.Error() != in {
			t.Errorf("Check(%v) = %v, want %s", want, err, in)
		}
		if !errors.Is(err, hardware.ErrInvalid) {
			t.Errorf("Check(%v) = %v, not ErrInvalid", want, err)
		}
	}
}

func TestPlan(t *testing.T) {
	scpi := loadExample(t, "scpi-instrument.yaml")
	at := loadExample(t, "at-modem.yaml")
	tests := []struct {
		p    *Profile
		in   hardware.Settings
		want []string
	}{
		// Profile order, whatever the map's.
		{scpi, hardware.Settings{"mode": "sweep", "output": true, "power": -10, "frequency": 3550},
			[]string{":FREQ 3550MHZ", ":POW -10.00DBM", ":OUTP ON", ":FREQ:MODE SWEEP"}},
		{scpi, hardware.Settings{"frequency": 3550.125, "output": false}, []string{":FREQ 3550.125MHZ", ":OUTP OFF"}},
		{scpi, hardware.Settings{"frequency": 0.009}, []string{":FREQ 0.009MHZ"}},
		{scpi, hardware.Settings{"power": 1.0 / 3}, []string{":POW 0.33DBM"}},
		{scpi, hardware.Settings{}, nil},
		{at, hardware.Settings{"echo": false, "functionality": "airplane", "operator_selection": "automatic", "registration_urc": "location"},
			[]string{"AT+CFUN=4", "AT+COPS=0", "AT+CREG=2", "ATE0"}},
	}
	for _, tt := range tests {
		got, err := tt.p.Plan(tt.in)
		if err != nil {
			t.Fatalf("Plan(%v): %v", tt.in, err)
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Plan(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := scpi.Plan(hardware.Settings{"frequency": 9000}); !errors.Is(err, hardware.ErrInvalid) {
		t.Fatalf("Plan of an invalid value = %v", err)
	}
}

func TestSetScale(t *testing.T) {
	p, err := ParseProfile("s.yaml", []byte(`
settings:
  freq: {type: float, set: "FREQ {value}", set_scale: 1000000, query: "FREQ?"}
  att: {type: int, set: "ATT {value}", set_scale: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Plan(hardware.Settings{"freq": 3550.5, "att": 3})
	if err != nil || strings.Join(got, "|") != "FREQ 3550500000|ATT 30" {
		t.Fatalf("Plan = %q, %v", got, err)
	}
}

func TestScan(t *testing.T) {
	scpi := loadExample(t, "scpi-instrument.yaml")
	at := loadExample(t, "at-modem.yaml")
	cli, err := ParseProfile("cli.yaml", []byte(`
answer: prompt
prompt: '^[\w.-]+[>#] ?$'
echo: true
errors: ['^% ']
urc: ['^%LINK-']
settings:
  mtu: {type: int, set: "mtu {value}", query: "show mtu", match: '^MTU (\d+)$'}
`))
	if err != nil {
		t.Fatal(err)
	}
	echoLine, err := ParseProfile("e.yaml", []byte("echo: true\nsettings:\n  f: {type: int, query: 'F?'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		p       *Profile
		cmd     string
		prev    string
		want    expect
		in      string
		done    bool
		lines   []string
		end     string
		refused string
		dropped int
	}{
		{"scpi answer", scpi, ":FREQ?", "", expectLine, "3.550000E+09\n", true, []string{"3.550000E+09"}, "", "", 0},
		{"scpi partial", scpi, ":FREQ?", "", expectLine, "3.550000E+0", false, nil, "", "", 0},
		{"scpi crlf and blank", scpi, ":FREQ?", "", expectLine, "\r\n\r\n3.5E+09\r\n", true, []string{"3.5E+09"}, "", "", 0},
		{"scpi no echo handling", scpi, ":FREQ?", "", expectLine, ":FREQ?\n3.5E+09\n", true, []string{":FREQ?"}, "", "", 0},
		{"at echo ok", at, "AT+CFUN?", "", expectFinal, "AT+CFUN?\r\r\n+CFUN: 1\r\n\r\nOK\r\n", true, []string{"+CFUN: 1"}, "OK", "", 0},
		{"at no echo", at, "AT+CFUN?", "", expectFinal, "\r\n+CFUN: 1\r\n\r\nOK\r\n", true, []string{"+CFUN: 1"}, "OK", "", 0},
		{"at waits for final", at, "AT+CFUN?", "", expectFinal, "AT+CFUN?\r\r\n+CFUN: 1\r\n", false, []string{"+CFUN: 1"}, "", "", 0},
		{"at final needs line end", at, "AT+CFUN?", "", expectFinal, "\r\n+CFUN: 1\r\n\r\nOK", false, []string{"+CFUN: 1"}, "", "", 0},
		{"at urcs before and among", at, "AT+CFUN?", "", expectFinal, "\r\nRING\r\nAT+CFUN?\r\r\n+CREG: 1\r\n\r\n+CFUN: 1\r\n\r\n+CREG: 1,\"00C3\",\"0001A2B3\",7\r\nOK\r\n", true, []string{"+CFUN: 1"}, "OK", "", 3},
		{"at creg answer is no urc", at, "AT+CREG?", "", expectFinal, "\r\n+CREG: 1,1\r\n\r\nOK\r\n", true, []string{"+CREG: 1,1"}, "OK", "", 0},
		{"at cme error", at, "AT+COPS=0", "", expectFinal, "AT+COPS=0\r\r\n+CME ERROR: 3\r\n", true, nil, "+CME ERROR: 3", "+CME ERROR: 3", 0},
		{"at error", at, "AT+FOO", "", expectFinal, "\r\nERROR\r\n", true, nil, "ERROR", "ERROR", 0},
		{"at repeated echo", at, "AT", "", expectFinal, "AT\rAT\r\nOK\r\n", true, nil, "OK", "", 0},
		{"cli prompt", cli, "show mtu", "", expectPrompt, "show mtu\r\nMTU 1500\r\nrru-3# ", true, []string{"MTU 1500"}, "rru-3#", "", 0},
		{"cli prompt pending", cli, "show mtu", "", expectPrompt, "show mtu\r\nMTU 1500\r\n", false, []string{"MTU 1500"}, "", "", 0},
		{"cli error", cli, "mtu 5", "", expectPrompt, "mtu 5\r\n% Invalid input\r\nrru-3# ", true, []string{"% Invalid input"}, "rru-3#", "% Invalid input", 0},
		{"late echo of a set", echoLine, "SYST:ERR?", ":FREQ 5", expectLine, ":FREQ 5\nSYST:ERR?\n0,\"No error\"\n", true, []string{`0,"No error"`}, "", "", 0},
		{"no echo skipping once answered", echoLine, "A?", "B", expectLine, "5\nB\n", true, []string{"5"}, "", "", 0},
		{"cli urc", cli, "show mtu", "", expectPrompt, "%LINK-3-UPDOWN: up\r\nshow mtu\r\nMTU 9000\r\nrru-3>", true, []string{"MTU 9000"}, "rru-3>", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, done := tt.p.scan(tt.cmd, tt.prev, tt.want, []byte(tt.in))
			if done != tt.done || strings.Join(r.Lines, "|") != strings.Join(tt.lines, "|") || r.End != tt.end || r.Refused != tt.refused || len(r.Dropped) != tt.dropped {
				t.Fatalf("scan = %+v, done %v", r, done)
			}
		})
	}
}
