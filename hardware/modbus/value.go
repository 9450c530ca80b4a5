package modbus

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"edge/hardware"
)

// Canonical checks a desired value for s and returns it in canonical form:
// a float64 quantized to the scale for numbers (so that the value read back
// compares equal), a bool for bool, the profile's name for an enum. Errors
// wrap hardware.ErrInvalid and name the setting. Read-only settings are
// not refused here (Device.Check does that).
func (s *Setting) Canonical(v any) (any, error) {
	regs, err := s.Encode(v)
	if err != nil {
		return nil, err
	}
	return s.Decode(regs), nil
}

// Encode checks a desired value for s and returns the registers that hold
// it, in wire order.
func (s *Setting) Encode(v any) ([]uint16, error) {
	switch {
	case s.Type == Bool:
		b, err := s.boolOf(v)
		if err != nil {
			return nil, err
		}
		if b {
			return []uint16{1}, nil
		}
		return []uint16{0}, nil
	case s.Enum != nil:
		raw, err := s.enumOf(v)
		if err != nil {
			return nil, err
		}
		return s.fromRaw(raw), nil
	case s.Type == Float32:
		f, err := s.number(v)
		if err != nil {
			return nil, err
		}
		x := float32(s.rawOf(f))
		if math.IsInf(float64(x), 0) {
			return nil, s.invalid("%g does not fit a float32 with scale %g", f, s.Scale)
		}
		regs := s.words(math.Float32bits(x))
		if err := s.bounds(f, s.Decode(regs).(float64)); err != nil {
			return nil, err
		}
		return regs, nil
	}
	f, err := s.number(v)
	if err != nil {
		return nil, err
	}
	x := s.rawOf(f)
	r := math.Round(x)
	if math.Abs(x-r) > 1e-6 {
		return nil, s.invalid("%g is not a multiple of the step %g%s", f, s.Scale, s.unitSuffix())
	}
	lo, hi := s.Type.rawRange()
	if r < lo || r > hi {
		return nil, s.invalid("%g is out of range for a %s with scale %g (%g to %g%s)",
			f, s.Type, s.Scale, s.valueOf(lo), s.valueOf(hi), s.unitSuffix())
	}
	if err := s.bounds(f, s.valueOf(r)); err != nil {
		return nil, err
	}
	return s.fromRaw(int64(r)), nil
}

// bounds checks a value (as given, and as it will be held) against min and
// max.
func (s *Setting) bounds(given, held float64) error {
	if s.HasMin && held < s.Min && !hardware.Equal(held, s.Min) {
		return s.invalid("%g is below the minimum %g%s", given, s.Min, s.unitSuffix())
	}
	if s.HasMax && held > s.Max && !hardware.Equal(held, s.Max) {
		return s.invalid("%g is above the maximum %g%s", given, s.Max, s.unitSuffix())
	}
	return nil
}

func (s *Setting) unitSuffix() string {
	if s.Unit == "" {
		return ""
	}
	return " " + s.Unit
}

// Decode turns the setting's registers (in wire order) into its canonical
// value. A bool register holding neither 0 nor 1, and an enum register
// holding a value without a name, decode to the raw int64: it shows what
// the device holds, and differs from every desired value. A float32 that
// is not a number decodes to the string "NaN", "+Inf" or "-Inf".
func (s *Setting) Decode(regs []uint16) any {
	if len(regs) != s.Registers() {
		return nil
	}
	var raw int64
	switch s.Type {
	case Bool:
		switch regs[0] {
		case 0:
			return false
		case 1:
			return true
		}
		return int64(regs[0])
	case Uint16:
		raw = int64(regs[0])
	case Int16:
		raw = int64(int16(regs[0]))
	case Uint32:
		raw = int64(s.join(regs))
	case Int32:
		raw = int64(int32(s.join(regs)))
	case Float32:
		return s.floatValue(math.Float32frombits(s.join(regs)))
	default:
		return nil
	}
	if s.Enum != nil {
		if name, ok := s.Enum[raw]; ok {
			return name
		}
		return raw
	}
	return s.valueOf(float64(raw))
}

// floatValue scales a float32 and rounds off the binary noise (54.01, not
// 54.0099983215332), as long as the result still encodes to the same
// float32, so that a value read back equals the canonical desired one.
func (s *Setting) floatValue(f float32) any {
	switch {
	case math.IsNaN(float64(f)):
		return "NaN"
	case math.IsInf(float64(f), 1):
		return "+Inf"
	case math.IsInf(float64(f), -1):
		return "-Inf"
	}
	short, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	v := short
	if s.Scale != 1 {
		v, _ = strconv.ParseFloat(strconv.FormatFloat(s.valueOf(short), 'g', 12, 64), 64)
	}
	if float32(s.rawOf(v)) == f {
		return v
	}
	return s.valueOf(float64(f))
}

// fromRaw puts a raw integer into registers.
func (s *Setting) fromRaw(raw int64) []uint16 {
	if s.Registers() == 1 {
		return []uint16{uint16(raw)}
	}
	return s.words(uint32(raw))
}

// words splits a 32-bit value into two registers in the word order.
func (s *Setting) words(u uint32) []uint16 {
	hi, lo := uint16(u>>16), uint16(u)
	if s.LittleEndian {
		return []uint16{lo, hi}
	}
	return []uint16{hi, lo}
}

// join undoes words.
func (s *Setting) join(regs []uint16) uint32 {
	if s.LittleEndian {
		return uint32(regs[1])<<16 | uint32(regs[0])
	}
	return uint32(regs[0])<<16 | uint32(regs[1])
}

// number reads a numeric desired value: any Go number, or a string such as
// "54", "54.0 V" (the profile's unit may follow).
func (s *Setting) number(v any) (float64, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case int32:
		f = float64(n)
	case uint16:
		f = float64(n)
	case uint32:
		f = float64(n)
	case uint64:
		f = float64(n)
	case string:
		t := strings.TrimSpace(n)
		if s.Unit != "" && len(t) > len(s.Unit) && strings.EqualFold(t[len(t)-len(s.Unit):], s.Unit) {
			t = strings.TrimSpace(t[:len(t)-len(s.Unit)])
		}
		x, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return 0, s.invalid("want a number%s, got %q", s.unitSuffix(), n)
		}
		f = x
	default:
		return 0, s.invalid("want a number%s, got %s", s.unitSuffix(), describe(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, s.invalid("want a finite number, got %g", f)
	}
	return f, nil
}

func (s *Setting) boolOf(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true", "on", "yes", "enabled", "1":
			return true, nil
		case "false", "off", "no", "disabled", "0":
			return false, nil
		}
	case int, int64, float64:
		switch hardware.Format(b) {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
	}
	return false, s.invalid("want true or false, got %s", describe(v))
}

func (s *Setting) enumOf(v any) (int64, error) {
	if name, ok := v.(string); ok {
		name = strings.TrimSpace(name)
		for raw, n := range s.Enum {
			if strings.EqualFold(n, name) {
				return raw, nil
			}
		}
	}
	return 0, s.invalid("want one of %s, got %s", strings.Join(s.EnumNames(), "|"), describe(v))
}

// EnumNames lists the enum's names in raw value order.
func (s *Setting) EnumNames() []string {
	raws := make([]int64, 0, len(s.Enum))
	for r := range s.Enum {
		raws = append(raws, r)
	}
	slices.Sort(raws)
	out := make([]string, len(raws))
	for i, r := range raws {
		out[i] = s.Enum[r]
	}
	return out
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	if v == nil {
		return "nothing"
	}
	return fmt.Sprintf("%v (%T)", v, v)
}
