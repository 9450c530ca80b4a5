package modbus

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"edge/hardware"
	"edge/hardware/serial"
	"edge/internal/strictyaml"
)

// Limits on profile files.
const (
	// MaxProfileSize bounds a profile file.
	MaxProfileSize = 1 << 20
	// MaxSettings bounds the settings of one profile.
	MaxSettings = 4096
)

// Profile maps a device model's settings to its registers. A new model of
// rectifier is a new profile file, not new code. See docs/profiles-modbus.md.
type Profile struct {
	// File is where the profile came from, for errors.
	File string
	// Model describes the device (free text).
	Model string
	// Baud, Framing and Timeout are the model's factory defaults; the
	// device's own config overrides them. Zero when not given.
	Baud    int
	Framing string
	Timeout time.Duration
	// MaxRead is the most registers one read may ask for (default 125;
	// some devices take fewer).
	MaxRead int
	// WriteMultiple makes single-register writes use function 16 too, for
	// devices without function 06.
	WriteMultiple bool
	// Settings by name.
	Settings map[string]*Setting
}

// Names returns the setting names, sorted.
func (p *Profile) Names() []string {
	out := make([]string, 0, len(p.Settings))
	for n := range p.Settings {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Table is a Modbus register table.
type Table int

// The tables: holding registers (read 03, write 06/16) and input registers
// (read 04, never written).
const (
	Holding Table = iota
	Input
)

func (t Table) String() string {
	if t == Input {
		return "input"
	}
	return "holding"
}

// Type is how a setting's value sits in its registers.
type Type int

// Register types. The 32-bit types take two registers.
const (
	Uint16 Type = iota
	Int16
	Uint32
	Int32
	Float32
	// Bool is one register holding 0 (false) or 1 (true).
	Bool
)

var typeNames = []string{"uint16", "int16", "uint32", "int32", "float32", "bool"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Registers is how many registers a value of t takes.
func (t Type) Registers() int {
	switch t {
	case Uint32, Int32, Float32:
		return 2
	}
	return 1
}

// rawRange is the range of t's raw integer values.
func (t Type) rawRange() (lo, hi float64) {
	switch t {
	case Uint16:
		return 0, math.MaxUint16
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint32:
		return 0, math.MaxUint32
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Float32:
		return -math.MaxFloat32, math.MaxFloat32
	}
	return 0, 1
}

// Setting is one setting of a profile.
type Setting struct {
	Name        string
	Description string
	Table       Table
	// Address is the first register (PDU address, from 0).
	Address uint16
	Type    Type
	// LittleEndian puts the low word first for 32-bit types (CDAB); the
	// default is the high word first (ABCD, the Modbus byte order carried
	// over to words).
	LittleEndian bool
	// Scale: value = raw * Scale. 1 when not given.
	Scale float64
	// Unit is shown to operators and may follow a value given as a string
	// ("54.0 V").
	Unit string
	// Min and Max bound desired values (after scaling), when Has* is set.
	Min, Max       float64
	HasMin, HasMax bool
	// ReadOnly settings are read, never written (all input registers are).
	ReadOnly bool
	// Enum maps raw values to names; the canonical value is the name.
	Enum map[int64]string
	// Line is the setting's line in the profile.
	Line int

	// Scale = mult / 10^dec when dec >= 0, so that values are computed
	// with one correctly rounded division and compare equal to the
	// decimals an operator writes.
	mult int64
	dec  int
}

// Registers is how many registers the setting takes.
func (s *Setting) Registers() int { return s.Type.Registers() }

// Writable reports whether the setting may be written.
func (s *Setting) Writable() bool { return !s.ReadOnly && s.Table == Holding }

// LoadProfile reads and strictly parses a profile file.
func LoadProfile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("modbus profile: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("modbus profile %s: %w", path, err)
	}
	if len(buf) > MaxProfileSize {
		return nil, fmt.Errorf("modbus profile %s: larger than %d bytes", path, MaxProfileSize)
	}
	return ParseProfile(path, buf)
}

var settingNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ParseProfile parses a profile document; file names it in errors. Every
// problem is reported (joined), each naming the file, the line and the key.
func ParseProfile(file string, data []byte) (*Profile, error) {
	if file == "" {
		file = "<profile>"
	}
	root, err := strictyaml.Decode(file, data, "model:, settings:, ...")
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &strictyaml.Error{File: file, Msg: "empty profile: settings are required"}
	}
	p := &strictyaml.Parser{File: file}
	prof := &Profile{File: file, MaxRead: MaxReadCount, Settings: map[string]*Setting{}}
	var settingsNode *yaml.Node
	p.Mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "model":
			prof.Model = p.Str(v, key)
		case "baud":
			prof.Baud = p.IntIn(v, key, 50, 4000000)
		case "framing":
			prof.Framing = p.Str(v, key)
			if prof.Framing != "" {
				if _, err := (serial.Config{Framing: prof.Framing}).Mode(); err != nil {
					p.Errorf(v, key, "want data bits, parity and stop bits such as 8N1 or 8E1, got %q", prof.Framing)
				}
			}
		case "timeout":
			prof.Timeout = p.Duration(v, key, 10*time.Millisecond, time.Minute)
		case "max_read":
			prof.MaxRead = p.IntIn(v, key, 1, MaxReadCount)
		case "write_multiple":
			prof.WriteMultiple = p.Bool(v, key)
		case "settings":
			settingsNode = v
			if v.Kind != yaml.MappingNode {
				p.Errorf(v, key, "want a mapping of setting names, got %s", strictyaml.KindName(v))
				return
			}
			p.Mapping(v, key, func(name string, kn, sv *yaml.Node) {
				path := strictyaml.Join(key, name)
				if !settingNameRE.MatchString(name) {
					p.Errorf(kn, path, "setting names are lower case letters, digits and _, starting with a letter")
					return
				}
				if len(prof.Settings) >= MaxSettings {
					p.Errorf(kn, path, "more than %d settings", MaxSettings)
					return
				}
				if s := parseSetting(p, name, path, kn, sv); s != nil {
					prof.Settings[name] = s
				}
			})
		default:
			p.Errorf(k, key, "unknown key (known: model, baud, framing, timeout, max_read, write_multiple, settings)")
		}
	})
	if settingsNode == nil {
		p.Errorf(root, "settings", "required")
	} else if len(prof.Settings) == 0 && len(p.Errs) == 0 {
		p.Errorf(settingsNode, "settings", "no settings")
	}
	checkOverlaps(p, prof)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return prof, nil
}

// parseSetting reads one setting; it returns nil when it has errors.
func parseSetting(p *strictyaml.Parser, name, path string, kn, n *yaml.Node) *Setting {
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, path, "want a mapping (register:, type:, ...), got %s", strictyaml.KindName(n))
		return nil
	}
	errs := len(p.Errs)
	s := &Setting{Name: name, Line: kn.Line, Scale: 1}
	seen := map[string]*yaml.Node{}
	var readOnly *yaml.Node
	var enumNode *yaml.Node
	p.Mapping(n, path, func(key string, k, v *yaml.Node) {
		full := strictyaml.Join(path, key)
		seen[key] = k
		switch key {
		case "register":
			s.Address = uint16(p.IntIn(v, full, 0, 0xFFFF))
		case "table":
			if p.Enum(v, full, []string{"holding", "input"}) == "input" {
				s.Table = Input
			}
		case "type":
			if t := p.Enum(v, full, typeNames); t != "" {
				s.Type = Type(slices.Index(typeNames, t))
			}
		case "word_order":
			s.LittleEndian = p.Enum(v, full, []string{"big", "little"}) == "little"
		case "scale":
			s.Scale = p.Float(v, full)
			if s.Scale < 1e-9 || s.Scale > 1e9 {
				p.Errorf(v, full, "must be a positive number from 1e-9 to 1e9, got %s", v.Value)
			}
		case "unit":
			s.Unit = p.Str(v, full)
		case "description":
			s.Description = p.Str(v, full)
		case "min":
			s.Min, s.HasMin = p.Float(v, full), true
		case "max":
			s.Max, s.HasMax = p.Float(v, full), true
		case "read_only":
			s.ReadOnly = p.Bool(v, full)
			readOnly = v
		case "enum":
			enumNode = v
		default:
			p.Errorf(k, full, "unknown key (known: register, table, type, word_order, scale, unit, min, max, read_only, enum, description)")
		}
	})
	for _, req := range []string{"register", "type"} {
		if seen[req] == nil {
			p.Errorf(n, strictyaml.Join(path, req), "required")
		}
	}
	if len(p.Errs) > errs {
		return nil
	}
	bad := func(key, format string, args ...any) {
		at := n
		if k := seen[key]; k != nil {
			at = k
		}
		p.Errorf(at, strictyaml.Join(path, key), format, args...)
	}
	if int(s.Address)+s.Registers() > 0x10000 {
		bad("register", "a %s at 0x%04x runs past register 0xffff", s.Type, s.Address)
	}
	if s.Table == Input {
		if readOnly != nil && !s.ReadOnly {
			bad("read_only", "input registers are always read-only")
		}
		s.ReadOnly = true
	}
	if seen["word_order"] != nil && s.Registers() != 2 {
		bad("word_order", "only for 32-bit types (uint32, int32, float32)")
	}
	if enumNode != nil {
		s.Enum = parseEnum(p, s, strictyaml.Join(path, "enum"), enumNode)
		for _, k := range []string{"scale", "min", "max", "unit"} {
			if seen[k] != nil {
				bad(k, "not with enum: the value is one of the enum's names")
			}
		}
	}
	if s.Type == Bool {
		for _, k := range []string{"scale", "min", "max", "unit"} {
			if seen[k] != nil {
				bad(k, "not for type bool: the value is true (1) or false (0)")
			}
		}
	}
	if s.ReadOnly {
		for _, k := range []string{"min", "max"} {
			if seen[k] != nil {
				bad(k, "not for a read-only setting: it is never written")
			}
		}
	}
	s.mult, s.dec = decimalScale(s.Scale)
	if s.Type != Bool && s.Enum == nil {
		lo, hi := s.Type.rawRange()
		lo, hi = s.valueOf(lo), s.valueOf(hi)
		if s.HasMin && (s.Min < lo || s.Min > hi) {
			bad("min", "%g is beyond what a %s with scale %g holds (%g to %g)", s.Min, s.Type, s.Scale, lo, hi)
		}
		if s.HasMax && (s.Max < lo || s.Max > hi) {
			bad("max", "%g is beyond what a %s with scale %g holds (%g to %g)", s.Max, s.Type, s.Scale, lo, hi)
		}
		if s.HasMin && s.HasMax && s.Min > s.Max {
			bad("max", "%g is below min %g", s.Max, s.Min)
		}
	}
	if len(p.Errs) > errs {
		return nil
	}
	return s
}

func parseEnum(p *strictyaml.Parser, s *Setting, path string, n *yaml.Node) map[int64]string {
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, path, "want a mapping of raw values to names (0: off), got %s", strictyaml.KindName(n))
		return nil
	}
	switch s.Type {
	case Uint16, Int16, Uint32, Int32:
	default:
		p.Errorf(n, path, "only for integer types (uint16, int16, uint32, int32), not %s", s.Type)
		return nil
	}
	lo, hi := s.Type.rawRange()
	out := map[int64]string{}
	names := map[string]string{}
	p.Mapping(n, path, func(key string, k, v *yaml.Node) {
		full := path + "[" + key + "]"
		raw, err := strconv.ParseInt(key, 0, 64)
		if err != nil || k.Tag != "!!int" {
			p.Errorf(k, full, "want an integer raw value as the key, got %s", strictyaml.Describe(k))
			return
		}
		if float64(raw) < lo || float64(raw) > hi {
			p.Errorf(k, full, "raw value %d does not fit a %s", raw, s.Type)
			return
		}
		if _, dup := out[raw]; dup {
			p.Errorf(k, full, "raw value %d listed twice", raw)
			return
		}
		name := strings.TrimSpace(p.Str(v, full))
		if name == "" {
			if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
				p.Errorf(v, full, "want a name")
			}
			return
		}
		if prev, dup := names[strings.ToLower(name)]; dup {
			p.Errorf(v, full, "name %q already used for %s", name, prev)
			return
		}
		names[strings.ToLower(name)] = key
		out[raw] = name
	})
	if len(out) == 0 && len(n.Content) == 0 {
		p.Errorf(n, path, "no values")
	}
	return out
}

// checkOverlaps refuses two settings sharing a register of one table.
func checkOverlaps(p *strictyaml.Parser, prof *Profile) {
	all := make([]*Setting, 0, len(prof.Settings))
	for _, s := range prof.Settings {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *Setting) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Address, b.Address), cmp.Compare(a.Line, b.Line))
	})
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.Table == b.Table && int(a.Address)+a.Registers() > int(b.Address) {
			first, second := a, b
			if second.Line < first.Line {
				first, second = second, first
			}
			p.Errs = append(p.Errs, &strictyaml.Error{File: p.File, Line: second.Line,
				Key: "settings." + second.Name + ".register",
				Msg: fmt.Sprintf("%s register 0x%04x overlaps setting %s (line %d)", second.Table, second.Address, first.Name, first.Line)})
		}
	}
}

// decimalScale writes scale as mult / 10^dec with the fewest decimals
// (up to 9), or returns dec -1 when it has no such form.
func decimalScale(scale float64) (mult int64, dec int) {
	pow := 1.0
	for dec = 0; dec <= 9; dec++ {
		m := scale * pow
		r := math.Round(m)
		if r >= 1 && math.Abs(m-r) <= 1e-9*r {
			return int64(r), dec
		}
		pow *= 10
	}
	return 0, -1
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// valueOf scales a raw integer: raw*scale, rounded the way the decimal
// would be parsed.
func (s *Setting) valueOf(raw float64) float64 {
	if s.dec >= 0 {
		return raw * float64(s.mult) / pow10[s.dec]
	}
	return raw * s.Scale
}

// rawOf undoes valueOf, unrounded.
func (s *Setting) rawOf(v float64) float64 {
	if s.dec >= 0 {
		return v * pow10[s.dec] / float64(s.mult)
	}
	return v / s.Scale
}

// invalid returns an error wrapping hardware.ErrInvalid naming the setting.
func (s *Setting) invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", s.Name, hardware.ErrInvalid, fmt.Sprintf(format, args...))
}
