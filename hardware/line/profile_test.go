package line

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"edge/internal/strictyaml"
)

func TestParseProfileExamples(t *testing.T) {
	for _, name := range []string{"scpi-instrument.yaml", "at-modem.yaml"} {
		t.Run(name, func(t *testing.T) {
			p, err := LoadProfile(filepath.Join("..", "..", "examples", "profiles", name))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Settings) == 0 || len(p.Order) != len(p.Settings) {
				t.Fatalf("settings %v", p.Order)
			}
		})
	}
}

func TestParseProfileSCPI(t *testing.T) {
	p, err := LoadProfile(filepath.Join("..", "..", "examples", "profiles", "scpi-instrument.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.LineEnding != "\n" || p.Answer != FramingLine || p.Baud != 115200 || p.Framing != "8N1" || p.Timeout != 2*time.Second || p.MaxAnswer != 1024 {
		t.Fatalf("device keys: %+v", p)
	}
	if p.ErrorQuery == nil || p.ErrorQuery.Command != "SYST:ERR?" || !p.ErrorQuery.OK.MatchString(`0,"No error"`) || p.ErrorQuery.OK.MatchString(`-222,"Data out of range"`) {
		t.Fatalf("error_query: %+v", p.ErrorQuery)
	}
	if p.Identify == nil || p.Identify.Command != "*IDN?" {
		t.Fatalf("identify: %+v", p.Identify)
	}
	if got := strings.Join(p.Order, ","); got != "frequency,power,output,mode" {
		t.Fatalf("order %s", got)
	}
	f := p.Settings["frequency"]
	if f.Type != TypeFloat || *f.Min != 0.009 || *f.Max != 6000 || f.Scale != 1e-6 || f.Units["GHZ"] != 1000 || f.Set != ":FREQ {value}MHZ" {
		t.Fatalf("frequency: %+v", f)
	}
	m := p.Settings["mode"]
	if len(m.Values) != 3 || m.Values[1].Name != "sweep" || strings.Join(m.Values[1].Words, ",") != "SWEEP,SWE" || m.Values[2].Words[0] != "LIST" {
		t.Fatalf("mode: %+v", m.Values)
	}
}

func TestParseProfileATDefaults(t *testing.T) {
	p, err := ParseProfile("m.yaml", []byte(`
answer: final
line_ending: crlf
settings:
  cfun: {type: int, set: "AT+CFUN={value}", query: "AT+CFUN?", match: '^\+CFUN: (\d+)'}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.LineEnding != "\r\n" || len(p.OK) != 1 || !p.OK[0].MatchString("OK") || len(p.Errors) != 3 || !matchAny(p.Errors, "+CME ERROR: 3") || !matchAny(p.Errors, "+CMS ERROR: 500") {
		t.Fatalf("final-mode defaults: ok %v errors %v", p.OK, p.Errors)
	}
}

const goodProfile = `model: test
answer: line
settings:
  freq:
    type: float
    set: ":FREQ {value}"
    query: ":FREQ?"
`

func TestParseProfileErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // exact messages, in order
	}{
		{"empty", ``, []string{"p.yaml: empty profile (want settings:)"}},
		{"not a mapping", "- a\n- b\n", []string{"p.yaml:1: want a mapping of keys (model:, answer:, settings:, ...)"}},
		{"bad yaml", "settings: [\n", []string{"p.yaml:2: did not find expected node content"}},
		{"unknown top key", goodProfile + "colour: red\n", []string{"p.yaml:8: colour: unknown key"}},
		{"duplicate key", "model: a\nmodel: b\n" + strings.TrimPrefix(goodProfile, "model: test\n"), []string{"p.yaml:2: model: duplicate key (first at line 1)"}},
		{"no settings", "model: x\n", []string{"p.yaml:1: settings: required"}},
		{"settings empty", "settings: {}\n", []string{"p.yaml:1: settings: no settings"}},
		{"answer", "answer: lines\n" + strings.TrimPrefix(goodProfile, "model: test\nanswer: line\n"), []string{`p.yaml:1: answer: must be one of line|final|prompt, got "lines"`}},
		{"line ending", "line_ending: \"\\n\"\n" + goodProfile, []string{`p.yaml:1: line_ending: must be one of lf|cr|crlf, got "\n"`}},
		{"timeout", "timeout: 2\n" + goodProfile, []string{`p.yaml:1: timeout: want a duration such as 500ms or 2s, got "2"`}},
		{"timeout range", "timeout: 1h\n" + goodProfile, []string{`p.yaml:1: timeout: must be 10ms-10m0s, got 1h`}},
		{"max answer", "max_answer: 10\n" + goodProfile, []string{`p.yaml:1: max_answer: must be 64-65536, got 10`}},
		{"baud", "baud: fast\n" + goodProfile, []string{`p.yaml:1: baud: want an integer 50-4000000, got "fast"`}},
		{"framing", "framing: 8N9\n" + goodProfile, []string{`p.yaml:1: framing: want data bits, parity and stop bits such as 8N1 or 7E1, got "8N9"`}},
		{"bad urc pattern", "urc: ['^RING$', '(']\n" + goodProfile, []string{"p.yaml:1: urc[1]: bad pattern: missing closing ): `(`"}},
		{"ok outside final", "ok: ['^OK$']\n" + goodProfile, []string{"p.yaml:1: ok: only for answer: final"}},
		{"prompt missing", "answer: prompt\nsettings:\n  a: {type: int, query: show a}\n", []string{"p.yaml:1: prompt: required for answer: prompt"}},
		{"prompt outside prompt", "prompt: '> $'\n" + goodProfile, []string{"p.yaml:1: prompt: only for answer: prompt"}},
		{"init control char", "init: [\"AT\\tZ\"]\n" + goodProfile, []string{`p.yaml:1: init[0]: "AT\tZ": only printable ASCII (no line breaks or control characters)`}},
		{"error query", "error_query: {command: 'SYST:ERR?', okay: x}\n" + goodProfile, []string{
			"p.yaml:1: error_query.okay: unknown key",
			"p.yaml:1: error_query.ok: required (a pattern for the answer meaning no error, such as '^[+]?0,')",
		}},
		{"identify", "identify: {command: '*IDN?'}\n" + goodProfile, []string{"p.yaml:1: identify.match: required"}},
		{"setting name", "settings:\n  Freq: {type: int, query: 'F?'}\n", []string{"p.yaml:2: settings.Freq: setting names are lower case letters, digits and _, starting with a letter"}},
		{"setting type missing", "settings:\n  freq: {query: 'F?'}\n", []string{"p.yaml:2: settings.freq.type: required (float|int|bool|enum|string)"}},
		{"setting type bad", "settings:\n  freq: {type: number, query: 'F?'}\n", []string{`p.yaml:2: settings.freq.type: must be one of float|int|bool|enum|string, got "number"`}},
		{"setting unknown key", goodProfile + "    colour: red\n", []string{"p.yaml:8: settings.freq.colour: unknown key"}},
		{"key for another type", goodProfile + "    values: {a: A}\n", []string{"p.yaml:8: settings.freq.values: not for a float setting"}},
		{"decimals for int", "settings:\n  n:\n    type: int\n    query: 'N?'\n    decimals: 2\n", []string{"p.yaml:5: settings.n.decimals: not for a int setting"}},
		{"no set no query", "settings:\n  freq:\n    type: float\n    unit: MHz\n", []string{"p.yaml:3: settings.freq: want set:, query: or both"}},
		{"template without value", "settings:\n  freq:\n    type: float\n    set: ':FREQ 5'\n", []string{`p.yaml:4: settings.freq.set: ":FREQ 5": want {value} where the value goes`}},
		{"template other placeholder", "settings:\n  freq:\n    type: float\n    set: ':FREQ {value}{unit}'\n", []string{`p.yaml:4: settings.freq.set: ":FREQ {value}{unit}": the only placeholder is {value}`}},
		{"query placeholder", "settings:\n  freq:\n    type: float\n    query: ':FREQ? {value}'\n", []string{"p.yaml:4: settings.freq.query: a query takes no placeholder"}},
		{"min above max", goodProfile + "    min: 10\n    max: 5\n", []string{"p.yaml:8: settings.freq.min: min 10 is above max 5"}},
		{"min not a number", goodProfile + "    min: low\n", []string{`p.yaml:8: settings.freq.min: want a number, got "low"`}},
		{"int min fraction", "settings:\n  n:\n    type: int\n    query: 'N?'\n    min: 1.5\n", []string{"p.yaml:5: settings.n.min: want an integer for an int setting, got 1.5"}},
		{"scale zero", goodProfile + "    scale: 0\n", []string{"p.yaml:8: settings.freq.scale: must not be 0"}},
		{"units bad name", goodProfile + "    units: {M Hz: 1}\n", []string{"p.yaml:8: settings.freq.units.M Hz: a unit is letters (and %), such as MHZ or dBm"}},
		{"units twice", goodProfile + "    units: {MHz: 1, MHZ: 1}\n", []string{"p.yaml:8: settings.freq.units.MHZ: listed twice (units are matched ignoring case)"}},
		{"bool words missing", "settings:\n  on:\n    type: bool\n    set: 'OUT {value}'\n    true: ON\n", []string{"p.yaml:3: settings.on.false: required for a bool setting (the device's words for false)"}},
		{"bool words overlap", "settings:\n  on:\n    type: bool\n    set: 'OUT {value}'\n    true: [ON, '1']\n    false: [OFF, 'on']\n", []string{`p.yaml:6: settings.on.false: "ON" is also a word for true`}},
		{"bool empty words", "settings:\n  on:\n    type: bool\n    set: 'OUT {value}'\n    true: []\n    false: OFF\n", []string{"p.yaml:5: settings.on.true: want at least one word"}},
		{"enum values missing", "settings:\n  mode:\n    type: enum\n    set: 'MODE {value}'\n", []string{"p.yaml:3: settings.mode.values: required for an enum setting (value: device word)"}},
		{"enum word twice", "settings:\n  mode:\n    type: enum\n    set: 'MODE {value}'\n    values: {cw: CW, fixed: [FIX, cw]}\n", []string{`p.yaml:5: settings.mode.values.fixed: device word "cw" is already used by "cw"`}},
		{"enum names by case", "settings:\n  mode:\n    type: enum\n    set: 'MODE {value}'\n    values: {cw: CW, CW: FIX}\n", []string{`p.yaml:5: settings.mode.values.CW: same as "cw" ignoring case`}},
		{"enum word spaces", "settings:\n  mode:\n    type: enum\n    set: 'MODE {value}'\n    values: {cw: ' CW'}\n", []string{`p.yaml:5: settings.mode.values.cw: " CW": no leading or trailing spaces`}},
		{"enum values empty", "settings:\n  mode:\n    type: enum\n    set: 'MODE {value}'\n    values: {}\n", []string{"p.yaml:5: settings.mode.values: want at least one value"}},
		{"string pattern", "settings:\n  host:\n    type: string\n    set: 'hostname {value}'\n    pattern: '[a-z'\n", []string{"p.yaml:5: settings.host.pattern: bad pattern: missing closing ]: `[a-z`"}},
		{"setting not a mapping", "settings:\n  freq: 5\n", []string{"p.yaml:2: settings.freq: want a mapping (type:, set:, query:, ...), got 5"}},
		{"several at once", "answer: final\ncolour: red\nsettings:\n  freq:\n    type: float\n    set: 'F {value}'\n    min: x\n", []string{
			"p.yaml:2: colour: unknown key",
			`p.yaml:7: settings.freq.min: want a number, got "x"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProfile("p.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			var got []string
			for _, e := range unjoin(err) {
				var se *strictyaml.Error
				if !errors.As(e, &se) {
					t.Errorf("%v is not a *strictyaml.Error", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
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

func TestParseProfileSize(t *testing.T) {
	big := goodProfile + "#" + strings.Repeat("x", MaxProfileSize) + "\n"
	_, err := ParseProfile("big.yaml", []byte(big))
	if err == nil || err.Error() != "big.yaml: larger than 262144 bytes" {
		t.Fatalf("err = %v", err)
	}
	// LoadProfile reads no more than the limit (and one byte to notice).
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadProfile = %v", err)
	}
	if _, err := LoadProfile(filepath.Join(t.TempDir(), "none.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadProfile of a missing file = %v", err)
	}
}

func TestParseProfileLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("settings:\n")
	for i := range maxSettings + 1 {
		b.WriteString("  s" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strconv.Itoa(i) + ": {type: int, query: 'Q?'}\n")
	}
	_, err := ParseProfile("p.yaml", []byte(b.String()))
	if err == nil || err.Error() != "p.yaml:2: settings: more than 256 settings" {
		t.Fatalf("err = %v", err)
	}
	long := "settings:\n  a: {type: int, query: '" + strings.Repeat("Q", maxCommand+1) + "'}\n"
	if _, err := ParseProfile("p.yaml", []byte(long)); err == nil || err.Error() != "p.yaml:2: settings.a.query: longer than 256 characters" {
		t.Fatalf("err = %v", err)
	}
	pat := "urc: ['" + strings.Repeat("a", maxPattern+1) + "']\n" + goodProfile
	if _, err := ParseProfile("p.yaml", []byte(pat)); err == nil || err.Error() != "p.yaml:1: urc[0]: pattern longer than 512 characters" {
		t.Fatalf("err = %v", err)
	}
}
