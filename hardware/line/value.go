package line

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"edge/hardware"
)

// Canon checks a desired value and returns it in canonical form: float64
// for float settings, int64 for int, bool, the profile's spelling of an
// enum value, or the string. The error says why (without the setting's
// name); Device.Check wraps it with hardware.ErrInvalid.
func (s *Setting) Canon(v any) (any, error) {
	switch s.Type {
	case TypeFloat, TypeInt:
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		if s.Type == TypeInt {
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, fmt.Errorf("%s: want a whole number", hardware.Format(v))
			}
		}
		if (s.Min != nil && f < *s.Min) || (s.Max != nil && f > *s.Max) {
			return nil, fmt.Errorf("%s%s is out of range %s", fmtNum(f), s.unitSuffix(), s.rangeText())
		}
		if s.Type == TypeInt {
			return int64(f), nil
		}
		return f, nil
	case TypeBool:
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(b)) {
			case "true", "on", "yes", "1":
				return true, nil
			case "false", "off", "no", "0":
				return false, nil
			}
		}
		return nil, fmt.Errorf("%s: want true or false", quoteValue(v))
	case TypeEnum:
		name, ok := enumInput(v)
		if ok {
			for _, e := range s.Values {
				if strings.EqualFold(e.Name, name) {
					return e.Name, nil
				}
			}
		}
		return nil, fmt.Errorf("%s: want one of %s", quoteValue(v), strings.Join(s.valueNames(), "|"))
	case TypeString:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: want a string", quoteValue(v))
		}
		max := s.MaxLength
		if max == 0 {
			max = maxStringValue
		}
		if len(str) > max {
			return nil, fmt.Errorf("%q: longer than %d characters", str, max)
		}
		for _, c := range []byte(str) {
			if c < 0x20 || c > 0x7e || c == '"' {
				return nil, fmt.Errorf("%q: only printable ASCII without double quotes", str)
			}
		}
		if s.Pattern != nil && !s.Pattern.MatchString(str) {
			return nil, fmt.Errorf("%q: does not match %s", str, s.Pattern)
		}
		return str, nil
	}
	return nil, fmt.Errorf("setting type %q", s.Type)
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return hardware.Format(v)
}

// enumInput accepts an enum value as a string, or a whole number for
// numeric value names (AT+CFUN's 0/1/4 written unquoted in YAML).
func enumInput(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x), true
	case bool, nil, []string:
		return "", false
	}
	f, err := toFloat(v)
	if err != nil || f != math.Trunc(f) {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

func (s *Setting) valueNames() []string {
	out := make([]string, len(s.Values))
	for i, e := range s.Values {
		out[i] = e.Name
	}
	return out
}

func (s *Setting) unitSuffix() string {
	if s.Unit == "" {
		return ""
	}
	return " " + s.Unit
}

func (s *Setting) rangeText() string {
	switch {
	case s.Min != nil && s.Max != nil:
		return fmt.Sprintf("%s..%s%s", fmtNum(*s.Min), fmtNum(*s.Max), s.unitSuffix())
	case s.Min != nil:
		return fmt.Sprintf(">= %s%s", fmtNum(*s.Min), s.unitSuffix())
	case s.Max != nil:
		return fmt.Sprintf("<= %s%s", fmtNum(*s.Max), s.unitSuffix())
	}
	return "(none)"
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// toFloat accepts the number types a desired value arrives as (YAML, JSON,
// Go code) and numeric strings; never NaN or infinities.
func toFloat(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		return toFloat(string(x))
	case string:
		t := strings.TrimSpace(x)
		if !numberRE.MatchString(t) {
			return 0, fmt.Errorf("%q: want a number", x)
		}
		var err error
		if f, err = strconv.ParseFloat(t, 64); err != nil {
			return 0, fmt.Errorf("%q: want a number", x)
		}
	default:
		return 0, fmt.Errorf("%s: want a number", quoteValue(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s: want a finite number", hardware.Format(v))
	}
	return f, nil
}

// numberRE is a plain decimal number, as devices send and operators write
// them (no hex, no underscores, no Inf/NaN words).
var numberRE = regexp.MustCompile(`^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$`)

// numberPrefixRE finds the number at the start of an answer, before a unit.
var numberPrefixRE = regexp.MustCompile(`^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?`)

// Command renders the set command for a canonical value (from Canon).
func (s *Setting) Command(v any) string {
	return strings.ReplaceAll(s.Set, "{value}", s.word(v))
}

// word is how the device writes a canonical value.
func (s *Setting) word(v any) string {
	switch s.Type {
	case TypeFloat:
		f, _ := toFloat(v)
		f *= s.SetScale
		if s.Decimals >= 0 {
			return strconv.FormatFloat(f, 'f', s.Decimals, 64)
		}
		return strconv.FormatFloat(roundSig(f), 'f', -1, 64)
	case TypeInt:
		f, _ := toFloat(v)
		return strconv.FormatInt(int64(math.Round(f*s.SetScale)), 10)
	case TypeBool:
		if b, _ := v.(bool); b {
			return s.True[0]
		}
		return s.False[0]
	case TypeEnum:
		name, _ := v.(string)
		for _, e := range s.Values {
			if e.Name == name {
				return e.Words[0]
			}
		}
	case TypeString:
		str, _ := v.(string)
		return str
	}
	return fmt.Sprint(v)
}

// roundSig rounds to 12 significant digits, so that 3.55E+09 Hz * 1e-6
// reads as 3550, not 3550.0000000000005.
func roundSig(f float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	if err != nil {
		return f
	}
	return r
}

// Parse turns the answer lines of a query into the setting's canonical
// value. The error describes what is wrong; the caller wraps ErrGarbage and
// quotes the raw answer.
func (s *Setting) Parse(lines []string) (any, error) {
	text, err := s.pick(lines)
	if err != nil {
		return nil, err
	}
	return s.ParseValue(text)
}

// pick finds the value's text in the answer: the first line the Match
// pattern matches (its first group, or the whole match), or else the first
// line.
func (s *Setting) pick(lines []string) (string, error) {
	if len(lines) == 0 {
		return "", fmt.Errorf("empty answer")
	}
	if s.Match == nil {
		return lines[0], nil
	}
	for _, l := range lines {
		m := s.Match.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if len(m) > 1 {
			return m[1], nil
		}
		return m[0], nil
	}
	return "", fmt.Errorf("no line matches %s", s.Match)
}

// ParseValue parses the text of a value (picked out of the answer).
func (s *Setting) ParseValue(text string) (any, error) {
	t := strings.TrimSpace(text)
	switch s.Type {
	case TypeFloat, TypeInt:
		num := numberPrefixRE.FindString(t)
		if num == "" {
			return nil, fmt.Errorf("%q is not a number", t)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q is not a finite number", t)
		}
		scale := s.Scale
		if unit := strings.TrimSpace(t[len(num):]); unit != "" {
			factor, ok := s.Units[strings.ToUpper(unit)]
			if !ok {
				return nil, fmt.Errorf("%q: unknown unit %q", t, unit)
			}
			scale = factor
		}
		f = roundSig(f * scale)
		if math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is out of range", t)
		}
		if s.Type == TypeInt {
			r := math.Round(f)
			if math.Abs(f-r) > 1e-9*math.Max(1, math.Abs(f)) || math.Abs(r) > 1<<53 {
				return nil, fmt.Errorf("%q is not a whole number", t)
			}
			return int64(r), nil
		}
		return f, nil
	case TypeBool:
		if containsFold(s.True, t) {
			return true, nil
		}
		if containsFold(s.False, t) {
			return false, nil
		}
		return nil, fmt.Errorf("%q is neither %s nor %s", t, strings.Join(s.True, "|"), strings.Join(s.False, "|"))
	case TypeEnum:
		for _, e := range s.Values {
			if containsFold(e.Words, t) {
				return e.Name, nil
			}
		}
		var words []string
		for _, e := range s.Values {
			words = append(words, e.Words...)
		}
		return nil, fmt.Errorf("%q is none of %s", t, strings.Join(words, "|"))
	case TypeString:
		return t, nil
	}
	return nil, fmt.Errorf("setting type %q", s.Type)
}
