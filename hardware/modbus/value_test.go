package modbus

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"edge/hardware"
)

func exampleSettings(t *testing.T) map[string]*Setting {
	t.Helper()
	p, err := LoadProfile(exampleProfile)
	if err != nil {
		t.Fatal(err)
	}
	return p.Settings
}

func mustSetting(t *testing.T, doc string) *Setting {
	t.Helper()
	p, err := ParseProfile("t.yaml", []byte("settings:\n  v:\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	return p.Settings["v"]
}

func TestCanonical(t *testing.T) {
	ex := exampleSettings(t)
	f32 := mustSetting(t, "    register: 1\n    type: float32\n")
	f32s := mustSetting(t, "    register: 1\n    type: float32\n    scale: 0.1\n")
	third := mustSetting(t, "    register: 1\n    type: int32\n    scale: 0.3333\n")
	tests := []struct {
		name    string
		s       *Setting
		in      any
		want    any
		wantErr string
	}{
		{"decimal", ex["float_voltage"], 54.01, 54.01, ""},
		{"integer", ex["float_voltage"], int64(54), 54.0, ""},
		{"int", ex["float_voltage"], 54, 54.0, ""},
		{"string with unit", ex["float_voltage"], "54.00 V", 54.0, ""},
		{"string unit no space", ex["float_voltage"], "53.5v", 53.5, ""},
		{"float noise", ex["float_voltage"], 54.010000000000005, 54.01, ""},
		{"at max", ex["float_voltage"], 58, 58.0, ""},
		{"above max", ex["float_voltage"], 58.01, nil, "float_voltage: invalid setting: 58.01 is above the maximum 58 V"},
		{"below min", ex["float_voltage"], 41.99, nil, "41.99 is below the minimum 42 V"},
		{"not a step", ex["float_voltage"], 54.005, nil, "float_voltage: invalid setting: 54.005 is not a multiple of the step 0.01 V"},
		{"text", ex["float_voltage"], "high", nil, `want a number V, got "high"`},
		{"bool for number", ex["float_voltage"], true, nil, "want a number V, got true (bool)"},
		{"nil", ex["float_voltage"], nil, nil, "got nothing"},
		{"NaN", ex["float_voltage"], math.NaN(), nil, "want a finite number"},
		{"negative int16", ex["temp_compensation"], -7.2, -7.2, ""},
		{"int16 range", mustSetting(t, "    register: 1\n    type: int16\n"), 32768, nil, "32768 is out of range for a int16 with scale 1 (-32768 to 32767)"},
		{"uint32", ex["energy"], 429496729.5, 429496729.5, ""},
		{"bool", ex["equalize"], true, true, ""},
		{"bool off", ex["equalize"], "off", false, ""},
		{"bool 1", ex["equalize"], int64(1), true, ""},
		{"bool 2", ex["equalize"], int64(2), nil, "equalize: invalid setting: want true or false, got 2 (int64)"},
		{"enum", ex["lvd_mode"], "battery", "battery", ""},
		{"enum case", ex["lvd_mode"], "LOAD", "load", ""},
		{"enum unknown", ex["lvd_mode"], "both", nil, `want one of disabled|load|battery, got "both"`},
		{"enum number", ex["lvd_mode"], 1, nil, "want one of disabled|load|battery, got 1 (int)"},
		{"float32", f32, 54.01, 54.01, ""},
		{"float32 big", f32, 1e30, 1e30, ""},
		{"float32 too big", f32, 1e39, nil, "does not fit a float32"},
		{"float32 tiny", f32, 1e-3, 0.001, ""},
		{"float32 scaled", f32s, 12.34, 12.34, ""},
		{"odd scale", third, 0.9999, 0.9999, ""},
		{"odd scale step", third, 1.0, nil, "not a multiple of the step 0.3333"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Canonical(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, hardware.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Canonical(%v) = %v, %v; want ErrInvalid %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Exactly equal, not within a tolerance: this is what a read
			// back returns.
			if got != tt.want {
				t.Fatalf("Canonical(%v) = %#v, want %#v", tt.in, got, tt.want)
			}
			regs, err := tt.s.Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if back := tt.s.Decode(regs); back != got {
				t.Fatalf("read back %#v, want %#v", back, got)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	ex := exampleSettings(t)
	tests := []struct {
		name string
		s    *Setting
		regs []uint16
		want any
	}{
		{"uint16 scaled", ex["float_voltage"], []uint16{5400}, 54.0},
		{"int16 negative", ex["battery_temperature"], []uint16{0xFFCC}, -5.2},
		{"uint32 big", ex["energy"], []uint16{0x0012, 0xD687}, 123456.7},
		{"float32 little", ex["rated_power"], []uint16{0x8800, 0x453B}, 3000.5},
		{"float32 NaN", ex["rated_power"], []uint16{0x0000, 0x7FC0}, "NaN"},
		{"float32 -Inf", ex["rated_power"], []uint16{0x0000, 0xFF80}, "-Inf"},
		{"bool false", ex["equalize"], []uint16{0}, false},
		{"bool odd", ex["equalize"], []uint16{0xFF00}, int64(0xFF00)},
		{"enum", ex["lvd_mode"], []uint16{2}, "battery"},
		{"enum unknown", ex["lvd_mode"], []uint16{9}, int64(9)},
		{"wrong count", ex["energy"], []uint16{1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Decode(tt.regs); got != tt.want {
				t.Errorf("Decode(%04x) = %#v, want %#v", tt.regs, got, tt.want)
			}
		})
	}
}

func TestWordOrder(t *testing.T) {
	big := mustSetting(t, "    register: 1\n    type: int32\n")
	little := mustSetting(t, "    register: 1\n    type: int32\n    word_order: little\n")
	// -123456 = 0xFFFE1DC0
	if got, _ := big.Encode(-123456); !slices.Equal(got, []uint16{0xFFFE, 0x1DC0}) {
		t.Errorf("big: %04x", got)
	}
	if got, _ := little.Encode(-123456); !slices.Equal(got, []uint16{0x1DC0, 0xFFFE}) {
		t.Errorf("little: %04x", got)
	}
	f := mustSetting(t, "    register: 1\n    type: float32\n")
	// 12.5 = 0x41480000
	if got, _ := f.Encode(12.5); !slices.Equal(got, []uint16{0x4148, 0}) {
		t.Errorf("float32: %04x", got)
	}
}

// TestFloat32ReadBackEqual: for many float32 bit patterns, the decoded
// value is canonical (encodes back to the same bits).
func TestFloat32ReadBackEqual(t *testing.T) {
	for _, doc := range []string{"", "    scale: 0.1\n", "    scale: 0.001\n", "    scale: 7\n"} {
		s := mustSetting(t, "    register: 1\n    type: float32\n"+doc)
		for bits := uint32(0); bits < 0xFF000000; bits += 0x00FEDCBA {
			v := s.Decode(s.words(bits))
			if _, ok := v.(float64); !ok {
				continue
			}
			c, err := s.Canonical(v)
			if err != nil {
				t.Fatalf("scale %g bits %08x: %v", s.Scale, bits, err)
			}
			if c != v {
				t.Fatalf("scale %g bits %08x: decoded %v, canonical %v", s.Scale, bits, v, c)
			}
		}
	}
}
