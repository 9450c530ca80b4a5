package line

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edge/hardware"
)

func FuzzParseProfile(f *testing.F) {
	for _, name := range []string{"scpi-instrument.yaml", "at-modem.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "profiles", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(goodProfile))
	f.Add([]byte("answer: prompt\nprompt: '> $'\nsettings:\n  a: {type: string, query: x, pattern: '[a-z]+'}\n"))
	f.Add([]byte("settings:\n  b: {type: bool, set: 'B {value}', true: [ON, 1], false: OFF}\n"))
	f.Add([]byte("settings:\n  e: {type: enum, set: 'E {value}', values: {a: A, b: [B, BB]}}\n"))
	f.Add([]byte("settings: &a\n  x: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("f.yaml", data)
		if err != nil {
			if p != nil {
				t.Fatal("profile and error")
			}
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed profile does not validate: %v", err)
		}
		// Every command a parsed profile can produce is one line.
		for _, name := range p.Order {
			s := p.Settings[name]
			if s.Set == "" {
				continue
			}
			for _, v := range sampleValues(s) {
				c, err := s.Canon(v)
				if err != nil {
					continue
				}
				if cmd := s.Command(c); strings.ContainsAny(cmd, "\r\n") {
					t.Fatalf("%s: command %q has a line break", name, cmd)
				}
			}
		}
	})
}

func sampleValues(s *Setting) []any {
	out := []any{0, 1, -1.5, 1e300, true, false, "x", "0"}
	if s.Min != nil {
		out = append(out, *s.Min)
	}
	if s.Max != nil {
		out = append(out, *s.Max)
	}
	for _, e := range s.Values {
		out = append(out, e.Name)
	}
	return out
}

// FuzzParseAnswer feeds arbitrary device output through the framing of
// every answer mode and the parsers of every setting type: nothing may
// panic, and what parses is canonical.
func FuzzParseAnswer(f *testing.F) {
	scpi := loadExample(f, "scpi-instrument.yaml")
	at := loadExample(f, "at-modem.yaml")
	other, err := ParseProfile("o.yaml", []byte(`
answer: prompt
prompt: '^[\w.-]+[>#] ?$'
echo: true
errors: ['^% ']
urc: ['^%LINK-']
settings:
  name: {type: string, query: "show name", match: '^name "(.*)"$'}
  mtu: {type: int, query: "show mtu", match: 'MTU (\d+)', scale: 1, units: {K: 1000}, min: 68, max: 9216}
  level: {type: float, query: "show level", match: '(?i)level\s+(\S+\s*\S*)', units: {DB: 1, MDB: 0.001}}
`))
	if err != nil {
		f.Fatal(err)
	}
	profiles := []*Profile{scpi, at, other}
	f.Add([]byte("3.550000E+09\n"))
	f.Add([]byte("AT+CFUN?\r\r\n+CFUN: 1\r\n\r\nOK\r\n"))
	f.Add([]byte("\r\nRING\r\n+COPS: 0,0,\"EdgeNet\",7\r\nOK\r\n"))
	f.Add([]byte("\r\n+CME ERROR: 3\r\n"))
	f.Add([]byte("show mtu\r\nMTU 1.5K\r\nrru-3# "))
	f.Add([]byte("name \"\xff\xfe\"\r\n% bad\r\nrru#"))
	f.Add([]byte("-9.91E+37\n"))
	f.Add([]byte("1e400 GHZ\n"))
	f.Add([]byte("\xff\xfe#?%~\x01*!\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			for _, want := range []expect{expectLine, expectFinal, expectPrompt, expectNothing} {
				for _, name := range p.Order {
					s := p.Settings[name]
					r, _ := p.scan(s.Query, s.Set, want, data)
					v, err := s.Parse(r.Lines)
					if err != nil {
						continue
					}
					checkCanonical(t, s, v)
				}
			}
			// The value parsers on the raw text too.
			for _, name := range p.Order {
				if v, err := p.Settings[name].ParseValue(string(data)); err == nil {
					checkCanonical(t, p.Settings[name], v)
				}
			}
		}
	})
}

func checkCanonical(t *testing.T, s *Setting, v any) {
	t.Helper()
	switch s.Type {
	case TypeFloat:
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("%s: %#v is not a finite float64", s.Name, v)
		}
	case TypeInt:
		if _, ok := v.(int64); !ok {
			t.Fatalf("%s: %#v is not an int64", s.Name, v)
		}
	case TypeBool:
		if _, ok := v.(bool); !ok {
			t.Fatalf("%s: %#v is not a bool", s.Name, v)
		}
	case TypeEnum:
		name, ok := v.(string)
		if !ok {
			t.Fatalf("%s: %#v is not a string", s.Name, v)
		}
		if c, err := s.Canon(name); err != nil || c != name {
			t.Fatalf("%s: %q is not one of the profile's values", s.Name, name)
		}
	case TypeString:
		if _, ok := v.(string); !ok {
			t.Fatalf("%s: %#v is not a string", s.Name, v)
		}
	}
	if !hardware.Equal(v, v) {
		t.Fatalf("%s: %#v is not equal to itself", s.Name, v)
	}
}
