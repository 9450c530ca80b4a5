package modbus

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"edge/hardware"
)

const exampleProfile = "../../examples/profiles/rectifier.yaml"

func TestExampleProfile(t *testing.T) {
	p, err := LoadProfile(exampleProfile)
	if err != nil {
		t.Fatal(err)
	}
	if p.Baud != 19200 || p.Framing != "8N1" || p.Timeout != 500*time.Millisecond || p.MaxRead != 125 {
		t.Errorf("line settings: %d %s %s %d", p.Baud, p.Framing, p.Timeout, p.MaxRead)
	}
	fv := p.Settings["float_voltage"]
	if fv == nil || fv.Address != 0x10 || fv.Type != Uint16 || fv.Scale != 0.01 || !fv.HasMin || fv.Min != 42 || fv.Max != 58 || !fv.Writable() {
		t.Errorf("float_voltage: %+v", fv)
	}
	if s := p.Settings["battery_temperature"]; s.Table != Input || s.Type != Int16 || s.Writable() {
		t.Errorf("battery_temperature: %+v", s)
	}
	if s := p.Settings["rated_power"]; s.Table != Holding || !s.ReadOnly || !s.LittleEndian || s.Type != Float32 {
		t.Errorf("rated_power: %+v", s)
	}
	if s := p.Settings["energy"]; s.Type != Uint32 || s.LittleEndian || s.Registers() != 2 {
		t.Errorf("energy: %+v", s)
	}
	if got := strings.Join(p.Settings["lvd_mode"].EnumNames(), ","); got != "disabled,load,battery" {
		t.Errorf("lvd_mode enum: %s", got)
	}
	if p.Settings["equalize"].Type != Bool {
		t.Errorf("equalize: %+v", p.Settings["equalize"])
	}
}

func TestParseProfileErrors(t *testing.T) {
	const head = "settings:\n  v:\n"
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "p.yaml: empty profile"},
		{"not a mapping", "- a\n", "p.yaml:1: want a mapping of keys"},
		{"no settings", "model: x\n", "p.yaml:1: settings: required"},
		{"unknown top key", "modle: x\n" + head + "    register: 1\n    type: uint16\n", "p.yaml:1: modle: unknown key"},
		{"settings list", "settings:\n  - a\n", "p.yaml:2: settings: want a mapping of setting names, got a list"},
		{"bad name", "settings:\n  Float-V:\n    register: 1\n    type: uint16\n", "p.yaml:2: settings.Float-V: setting names are"},
		{"no register", head + "    type: uint16\n", "p.yaml:3: settings.v.register: required"},
		{"no type", head + "    register: 1\n", "p.yaml:3: settings.v.type: required"},
		{"unknown key", head + "    register: 1\n    type: uint16\n    sacle: 2\n", "p.yaml:5: settings.v.sacle: unknown key"},
		{"register range", head + "    register: 0x10000\n    type: uint16\n", "p.yaml:3: settings.v.register: must be 0-65535, got 0x10000"},
		{"register text", head + "    register: forty\n    type: uint16\n", "p.yaml:3: settings.v.register: want an integer"},
		{"32 bits past end", head + "    register: 0xffff\n    type: uint32\n", "p.yaml:3: settings.v.register: a uint32 at 0xffff runs past"},
		{"bad type", head + "    register: 1\n    type: uint8\n", "p.yaml:4: settings.v.type: must be one of uint16|int16|uint32|int32|float32|bool"},
		{"bad table", head + "    register: 1\n    type: uint16\n    table: coil\n", "settings.v.table: must be one of holding|input"},
		{"word order 16", head + "    register: 1\n    type: uint16\n    word_order: big\n", "p.yaml:5: settings.v.word_order: only for 32-bit types"},
		{"bad word order", head + "    register: 1\n    type: uint32\n    word_order: middle\n", "settings.v.word_order: must be one of big|little"},
		{"zero scale", head + "    register: 1\n    type: uint16\n    scale: 0\n", "p.yaml:5: settings.v.scale: must be a positive number"},
		{"negative scale", head + "    register: 1\n    type: uint16\n    scale: -1\n", "settings.v.scale: must be a positive"},
		{"scale text", head + "    register: 1\n    type: uint16\n    scale: tenth\n", "settings.v.scale: want a number"},
		{"min beyond type", head + "    register: 1\n    type: uint16\n    scale: 0.01\n    min: -1\n", "p.yaml:6: settings.v.min: -1 is beyond what a uint16 with scale 0.01 holds (0 to 655.35)"},
		{"max beyond type", head + "    register: 1\n    type: int16\n    max: 40000\n", "settings.v.max: 40000 is beyond"},
		{"min above max", head + "    register: 1\n    type: uint16\n    min: 5\n    max: 4\n", "p.yaml:6: settings.v.max: 4 is below min 5"},
		{"input writable", head + "    register: 1\n    type: uint16\n    table: input\n    read_only: false\n", "settings.v.read_only: input registers are always read-only"},
		{"read-only min", head + "    register: 1\n    type: uint16\n    read_only: true\n    min: 1\n", "p.yaml:6: settings.v.min: not for a read-only setting"},
		{"read_only text", head + "    register: 1\n    type: uint16\n    read_only: yes please\n", "settings.v.read_only: want true or false"},
		{"bool scale", head + "    register: 1\n    type: bool\n    scale: 2\n", "settings.v.scale: not for type bool"},
		{"enum float", head + "    register: 1\n    type: float32\n    enum: {0: a}\n", "p.yaml:5: settings.v.enum: only for integer types"},
		{"enum scale", head + "    register: 1\n    type: uint16\n    scale: 2\n    enum: {0: a}\n", "settings.v.scale: not with enum"},
		{"enum key", head + "    register: 1\n    type: uint16\n    enum: {a: b}\n", "settings.v.enum[a]: want an integer raw value"},
		{"enum range", head + "    register: 1\n    type: uint16\n    enum: {-1: a}\n", "settings.v.enum[-1]: raw value -1 does not fit a uint16"},
		{"enum dup name", head + "    register: 1\n    type: uint16\n    enum: {0: on, 1: On}\n", `settings.v.enum[1]: name "On" already used for 0`},
		{"enum dup raw", head + "    register: 1\n    type: uint16\n    enum:\n      1: a\n      0x1: b\n", "settings.v.enum[0x1]: raw value 1 listed twice"},
		{"enum empty", head + "    register: 1\n    type: uint16\n    enum: {}\n", "settings.v.enum: no values"},
		{"enum list", head + "    register: 1\n    type: uint16\n    enum: [a, b]\n", "settings.v.enum: want a mapping of raw values to names"},
		{"duplicate setting", head + "    register: 1\n    type: uint16\n  v:\n    register: 2\n    type: uint16\n", "p.yaml:5: settings.v: duplicate key (first at line 2)"},
		{"overlap", head + "    register: 1\n    type: uint32\n  w:\n    register: 2\n    type: uint16\n", "p.yaml:5: settings.w.register: holding register 0x0002 overlaps setting v (line 2)"},
		{"baud", "baud: 12\n" + head + "    register: 1\n    type: uint16\n", "p.yaml:1: baud: must be 50-4000000"},
		{"framing", "framing: 9X1\n" + head + "    register: 1\n    type: uint16\n", "p.yaml:1: framing: want data bits"},
		{"timeout", "timeout: 5ms\n" + head + "    register: 1\n    type: uint16\n", "p.yaml:1: timeout: must be 10ms-1m0s"},
		{"max_read", "max_read: 126\n" + head + "    register: 1\n    type: uint16\n", "p.yaml:1: max_read: must be 1-125"},
		{"yaml syntax", "settings: [\n", "p.yaml:2:"},
		{"two documents", head + "    register: 1\n    type: uint16\n---\nx: 1\n", "more than one YAML document"},
		{"empty settings", "settings: {}\n", "p.yaml:1: settings: no settings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProfile("p.yaml", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestParseProfileReportsAllErrors(t *testing.T) {
	doc := "modle: x\nsettings:\n  a:\n    register: -1\n    type: uint16\n  b:\n    register: 2\n    type: int64\n"
	_, err := ParseProfile("p.yaml", []byte(doc))
	for _, want := range []string{"p.yaml:1: modle", "p.yaml:4: settings.a.register", "p.yaml:8: settings.b.type"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestLoadProfileTooLarge(t *testing.T) {
	path := t.TempDir() + "/big.yaml"
	if err := os.WriteFile(path, make([]byte, MaxProfileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("error %v", err)
	}
	if _, err := LoadProfile(t.TempDir() + "/missing.yaml"); err == nil {
		t.Error("no error for a missing file")
	}
}

// FuzzParseProfile: no document panics the parser, and every profile it
// accepts has settings whose values survive encode and decode.
func FuzzParseProfile(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input it finds, and a
	// large one (the whole example profile) eats the run minimizing.
	f.Add([]byte("model: x\nbaud: 19200\nframing: 8E1\ntimeout: 1s\nmax_read: 60\nwrite_multiple: true\n" +
		"settings:\n  a:\n    register: 0x10\n    type: uint16\n    scale: 0.01\n    unit: V\n    min: 42\n    max: 58\n" +
		"  b:\n    register: 0x11\n    type: uint32\n    word_order: little\n    table: input\n"))
	f.Add([]byte("settings:\n  v:\n    register: 0x10\n    type: float32\n    scale: 0.001\n    min: -5\n    max: 1e6\n"))
	f.Add([]byte("settings:\n  v:\n    register: 1\n    type: int32\n    word_order: little\n    scale: 0.3\n"))
	f.Add([]byte("settings:\n  v:\n    register: 1\n    type: uint16\n    enum: {0: off, 1: on, 0x10: auto}\n"))
	f.Add([]byte("settings:\n  v: {register: 65535, type: bool, table: input}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, s := range p.Settings {
			checkRoundTrip(t, s, make([]uint16, s.Registers()))
			checkRoundTrip(t, s, []uint16{0xFFFF, 0x7F7F}[:s.Registers()])
			for _, v := range []float64{s.Min, s.Max, 1, -1, 12.345} {
				c, err := s.Canonical(v)
				if err != nil {
					if !errors.Is(err, hardware.ErrInvalid) {
						t.Fatalf("%s: Canonical(%g): %v is not ErrInvalid", s.Name, v, err)
					}
					continue
				}
				c2, err := s.Canonical(c)
				if err != nil || !hardware.Equal(c, c2) {
					t.Fatalf("%s: Canonical(%g) = %v, then %v, %v", s.Name, v, c, c2, err)
				}
			}
		}
	})
}

// checkRoundTrip: registers decode to a value that, if the setting can be
// written with it, encodes back to the same registers.
func checkRoundTrip(t *testing.T, s *Setting, regs []uint16) {
	t.Helper()
	v := s.Decode(regs)
	if v == nil {
		t.Fatalf("%s: Decode(%v) = nil", s.Name, regs)
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		t.Fatalf("%s: Decode(%v) = %v", s.Name, regs, f)
	}
	switch v.(type) {
	case string:
		if s.Enum == nil {
			return // "NaN" and friends
		}
	case int64:
		return // a raw value without a name
	}
	got, err := s.encodeUnbounded(v)
	if err != nil {
		t.Fatalf("%s: Decode(%v) = %v, which does not encode: %v", s.Name, regs, v, err)
	}
	if len(got) != len(regs) {
		t.Fatalf("%s: %v -> %v -> %v", s.Name, regs, v, got)
	}
	for i := range got {
		if got[i] != regs[i] && !(s.Type == Float32 && math.IsNaN(float64(math.Float32frombits(s.join(regs))))) {
			// -0 and 0 are one value.
			if s.Type == Float32 && math.Float32frombits(s.join(regs)) == 0 {
				continue
			}
			t.Fatalf("%s: %v -> %v -> %v", s.Name, regs, v, got)
		}
	}
}

// encodeUnbounded encodes ignoring min and max.
func (s *Setting) encodeUnbounded(v any) ([]uint16, error) {
	c := *s
	c.HasMin, c.HasMax = false, false
	return c.Encode(v)
}
