package line

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"edge/hardware/serial"
	"edge/internal/strictyaml"
)

// Limits on a profile.
const (
	// MaxProfileSize bounds a profile file.
	MaxProfileSize = 256 << 10
	maxSettings    = 256
	maxList        = 64  // entries of any list or map in a profile
	maxPattern     = 512 // characters of a regular expression
	maxCommand     = 256 // characters of a command or word
	maxStringValue = 256 // characters of a string setting's value
)

// Answer framings.
const (
	// FramingLine: a query is answered by one line; a set command is not
	// answered (SCPI).
	FramingLine = "line"
	// FramingFinal: every command is answered by information lines and
	// then a final result code (AT commands: OK, ERROR, +CME ERROR: n).
	FramingFinal = "final"
	// FramingPrompt: every command is answered by lines and then the
	// device's prompt (vendor CLIs).
	FramingPrompt = "prompt"
)

// Setting types.
const (
	TypeFloat  = "float"
	TypeInt    = "int"
	TypeBool   = "bool"
	TypeEnum   = "enum"
	TypeString = "string"
)

// Profile is a parsed line-protocol profile: one device model's dialect
// and settings.
type Profile struct {
	// File is where the profile came from, for errors.
	File string
	// Model describes the device, for humans.
	Model string
	// Baud and Framing are the model's serial defaults (0/"" = none); the
	// device inventory overrides them.
	Baud    int
	Framing string
	// LineEnding is written after every command.
	LineEnding string
	// Answer is FramingLine, FramingFinal or FramingPrompt.
	Answer string
	// OK are the final result codes that mean success (FramingFinal).
	OK []*regexp.Regexp
	// Errors are answer lines that mean the device refused the command.
	Errors []*regexp.Regexp
	// Echo: the device may echo the command line; the echo is skipped.
	Echo bool
	// URC are unsolicited lines, dropped wherever they arrive.
	URC []*regexp.Regexp
	// Prompt ends an answer (FramingPrompt).
	Prompt *regexp.Regexp
	// ErrorQuery, if set, is asked after every set command.
	ErrorQuery *ErrorQuery
	// Identify, if set, is asked on open and after a reconnect.
	Identify *Identify
	// Init commands are sent on open and after a reconnect.
	Init []string
	// Timeout bounds one exchange (0: the inventory's, or 2s).
	Timeout time.Duration
	// MaxAnswer bounds the bytes of one answer.
	MaxAnswer int
	// Settings by name; Order lists them as the profile does (Apply
	// sends changes in this order).
	Settings map[string]*Setting
	Order    []string
}

// ErrorQuery is an error-queue query such as SCPI's SYST:ERR?.
type ErrorQuery struct {
	Command string
	// OK matches the answer that means the queue is empty (0,"No error").
	OK *regexp.Regexp
	// MaxEntries is how many entries are read to drain the queue.
	MaxEntries int
}

// Identify is an identity query checked against a pattern.
type Identify struct {
	Command string
	Match   *regexp.Regexp
}

// Setting maps one setting to commands and an answer parser.
type Setting struct {
	Name string
	Type string
	// Unit is shown in errors and docs ("MHz").
	Unit string
	// Set is the set-command template; {value} is replaced by the value.
	Set string
	// Query reads the setting; empty for write-only settings.
	Query string
	// Match picks the value out of the answer: its first capture group,
	// or the whole match. Nil: the whole first answer line.
	Match *regexp.Regexp
	// SetTimeout bounds the set command's exchange when it is longer than
	// the device's timeout (AT+COPS=0 may search for minutes).
	SetTimeout time.Duration

	// Numbers (float, int).
	Min, Max *float64
	Scale    float64            // answer number * Scale = value
	Units    map[string]float64 // answer unit suffix (upper case) -> factor replacing Scale
	SetScale float64            // value * SetScale = number in the command
	Decimals int                // digits after the point in the command; -1: as needed

	// Bool: words, the first of each is sent.
	True, False []string

	// Enum: values in profile order, each with its device words (the
	// first is sent, all are recognised in answers).
	Values []EnumValue

	// String.
	Pattern   *regexp.Regexp
	MaxLength int
}

// EnumValue is one value of an enum setting.
type EnumValue struct {
	Name  string
	Words []string
}

// LoadProfile reads and parses a profile file.
func LoadProfile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return ParseProfile(path, data)
}

// ParseProfile parses a profile strictly: unknown keys, wrong types,
// bad patterns and inconsistent settings are errors naming file:line: key,
// all of them at once (errors.Join of *strictyaml.Error).
func ParseProfile(file string, data []byte) (*Profile, error) {
	if len(data) > MaxProfileSize {
		return nil, &strictyaml.Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxProfileSize)}
	}
	root, err := strictyaml.Decode(file, data, "model:, answer:, settings:, ...")
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &strictyaml.Error{File: file, Msg: "empty profile (want settings:)"}
	}
	pp := &profileParser{Parser: strictyaml.Parser{File: file}}
	prof := pp.profile(root)
	// By line, so the report reads like the file (stable: one line's
	// errors keep their order).
	slices.SortStableFunc(pp.Errs, func(a, b error) int { return errLine(a) - errLine(b) })
	if err := pp.Err(); err != nil {
		return nil, err
	}
	return prof, nil
}

func errLine(err error) int {
	var e *strictyaml.Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

type profileParser struct {
	strictyaml.Parser
}

var (
	nameRE        = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	lineEndings   = map[string]string{"lf": "\n", "cr": "\r", "crlf": "\r\n"}
	defaultOK     = []string{`^OK$`}
	defaultErrors = []string{`^ERROR$`, `^\+CME ERROR:`, `^\+CMS ERROR:`}
)

func (p *profileParser) profile(root *yaml.Node) *Profile {
	prof := &Profile{File: p.File, LineEnding: "\n", Answer: FramingLine, MaxAnswer: 4096, Settings: map[string]*Setting{}}
	var okNode, errNode, promptNode *yaml.Node
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
					p.Errorf(v, key, "want data bits, parity and stop bits such as 8N1 or 7E1, got %q", prof.Framing)
				}
			}
		case "line_ending":
			if e := p.Enum(v, key, []string{"lf", "cr", "crlf"}); e != "" {
				prof.LineEnding = lineEndings[e]
			}
		case "answer":
			if a := p.Enum(v, key, []string{FramingLine, FramingFinal, FramingPrompt}); a != "" {
				prof.Answer = a
			}
		case "ok":
			okNode = v
			prof.OK = p.patterns(v, key)
		case "errors":
			errNode = v
			prof.Errors = p.patterns(v, key)
		case "echo":
			prof.Echo = p.Bool(v, key)
		case "urc":
			prof.URC = p.patterns(v, key)
		case "prompt":
			promptNode = v
			prof.Prompt = p.pattern(v, key)
		case "error_query":
			prof.ErrorQuery = p.errorQuery(v, key)
		case "identify":
			prof.Identify = p.identify(v, key)
		case "init":
			for i, c := range p.list(v, key) {
				prof.Init = append(prof.Init, p.command(c, fmt.Sprintf("%s[%d]", key, i)))
			}
		case "timeout":
			prof.Timeout = p.Duration(v, key, 10*time.Millisecond, 10*time.Minute)
		case "max_answer":
			prof.MaxAnswer = p.IntIn(v, key, 64, 65536)
		case "settings":
			settingsNode = v
		default:
			p.Errorf(k, key, "unknown key")
		}
	})
	switch prof.Answer {
	case FramingFinal:
		if okNode == nil {
			prof.OK = mustPatterns(defaultOK)
		}
		if errNode == nil {
			prof.Errors = mustPatterns(defaultErrors)
		}
	default:
		if okNode != nil {
			p.Errorf(okNode, "ok", "only for answer: final")
		}
	}
	if prof.Answer == FramingPrompt && prof.Prompt == nil && promptNode == nil {
		p.Errorf(root, "prompt", "required for answer: prompt")
	}
	if prof.Answer != FramingPrompt && promptNode != nil {
		p.Errorf(promptNode, "prompt", "only for answer: prompt")
	}
	if settingsNode == nil {
		p.Errorf(root, "settings", "required")
		return prof
	}
	if settingsNode.Kind == yaml.MappingNode && len(settingsNode.Content) > 2*maxSettings {
		p.Errorf(settingsNode, "settings", "more than %d settings", maxSettings)
		return prof
	}
	p.Mapping(settingsNode, "settings", func(name string, k, v *yaml.Node) {
		key := "settings." + name
		if !nameRE.MatchString(name) {
			p.Errorf(k, key, "setting names are lower case letters, digits and _, starting with a letter")
			return
		}
		if s := p.setting(name, key, v, prof); s != nil {
			prof.Settings[name] = s
			prof.Order = append(prof.Order, name)
		}
	})
	if len(prof.Order) == 0 && settingsNode.Kind == yaml.MappingNode && len(p.Errs) == 0 {
		p.Errorf(settingsNode, "settings", "no settings")
	}
	return prof
}

func mustPatterns(ss []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(ss))
	for i, s := range ss {
		out[i] = regexp.MustCompile(s)
	}
	return out
}

// list reads a list of at most maxList entries; a single scalar is a list
// of one.
func (p *profileParser) list(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []*yaml.Node{n}
	}
	items := p.Seq(n, key)
	if len(items) > maxList {
		p.Errorf(n, key, "more than %d entries", maxList)
		return nil
	}
	return items
}

func (p *profileParser) pattern(n *yaml.Node, key string) *regexp.Regexp {
	s := p.Str(n, key)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return nil
	}
	if s == "" {
		p.Errorf(n, key, "empty pattern")
		return nil
	}
	if len(s) > maxPattern {
		p.Errorf(n, key, "pattern longer than %d characters", maxPattern)
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "error parsing regexp: ")
		p.Errorf(n, key, "bad pattern: %s", msg)
		return nil
	}
	return re
}

func (p *profileParser) patterns(n *yaml.Node, key string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for i, item := range p.list(n, key) {
		if re := p.pattern(item, fmt.Sprintf("%s[%d]", key, i)); re != nil {
			out = append(out, re)
		}
	}
	return out
}

// command reads a command or word: printable ASCII, no line breaks.
func (p *profileParser) command(n *yaml.Node, key string) string {
	s := p.Str(n, key)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	if msg := commandProblem(s); msg != "" {
		p.Errorf(n, key, "%s", msg)
		return ""
	}
	return s
}

func commandProblem(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > maxCommand {
		return fmt.Sprintf("longer than %d characters", maxCommand)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%q: only printable ASCII (no line breaks or control characters)", s)
		}
	}
	return ""
}

func (p *profileParser) errorQuery(n *yaml.Node, key string) *ErrorQuery {
	q := &ErrorQuery{MaxEntries: 10}
	p.Mapping(n, key, func(k string, kn, v *yaml.Node) {
		full := key + "." + k
		switch k {
		case "command":
			q.Command = p.command(v, full)
		case "ok":
			q.OK = p.pattern(v, full)
		case "max_entries":
			q.MaxEntries = p.IntIn(v, full, 1, 100)
		default:
			p.Errorf(kn, full, "unknown key")
		}
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	bad := false
	if q.Command == "" && !p.has(n, "command") {
		p.Errorf(n, key+".command", "required")
		bad = true
	}
	if q.OK == nil && !p.has(n, "ok") {
		p.Errorf(n, key+".ok", "required (a pattern for the answer meaning no error, such as '^[+]?0,')")
		bad = true
	}
	if bad || q.Command == "" || q.OK == nil {
		return nil
	}
	return q
}

func (p *profileParser) identify(n *yaml.Node, key string) *Identify {
	id := &Identify{}
	p.Mapping(n, key, func(k string, kn, v *yaml.Node) {
		full := key + "." + k
		switch k {
		case "command":
			id.Command = p.command(v, full)
		case "match":
			id.Match = p.pattern(v, full)
		default:
			p.Errorf(kn, full, "unknown key")
		}
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if !p.has(n, "command") {
		p.Errorf(n, key+".command", "required")
	}
	if !p.has(n, "match") {
		p.Errorf(n, key+".match", "required")
	}
	if id.Command == "" || id.Match == nil {
		return nil
	}
	return id
}

// has reports whether mapping n has key.
func (p *profileParser) has(n *yaml.Node, key string) bool {
	return child(n, key) != nil
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keysFor lists the keys each setting type takes, besides the common ones.
var keysFor = map[string][]string{
	TypeFloat:  {"min", "max", "scale", "units", "set_scale", "decimals"},
	TypeInt:    {"min", "max", "scale", "units", "set_scale"},
	TypeBool:   {"true", "false"},
	TypeEnum:   {"values"},
	TypeString: {"pattern", "max_length"},
}

var commonKeys = []string{"type", "unit", "set", "query", "match", "set_timeout"}

func (p *profileParser) setting(name, key string, n *yaml.Node, prof *Profile) *Setting {
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, key, "want a mapping (type:, set:, query:, ...), got %s", strictyaml.KindName(n))
		return nil
	}
	before := len(p.Errs)
	s := &Setting{Name: name, Scale: 1, SetScale: 1, Decimals: -1}
	typeNode := child(n, "type")
	if typeNode == nil {
		p.Errorf(n, key+".type", "required (%s|%s|%s|%s|%s)", TypeFloat, TypeInt, TypeBool, TypeEnum, TypeString)
		return nil
	}
	s.Type = p.Enum(typeNode, key+".type", []string{TypeFloat, TypeInt, TypeBool, TypeEnum, TypeString})
	if s.Type == "" {
		return nil
	}
	var setNode, trueNode, falseNode, valuesNode *yaml.Node
	p.Mapping(n, key, func(k string, kn, v *yaml.Node) {
		full := key + "." + k
		if !contains(commonKeys, k) && !contains(keysFor[s.Type], k) {
			if knownAnywhere(k) {
				p.Errorf(kn, full, "not for a %s setting", s.Type)
			} else {
				p.Errorf(kn, full, "unknown key")
			}
			return
		}
		switch k {
		case "type":
		case "unit":
			s.Unit = p.Str(v, full)
		case "set":
			setNode = v
			s.Set = p.command(v, full)
			if s.Set != "" {
				if msg := templateProblem(s.Set); msg != "" {
					p.Errorf(v, full, "%s", msg)
					s.Set = ""
				}
			}
		case "query":
			s.Query = p.command(v, full)
			if strings.ContainsAny(s.Query, "{}") {
				p.Errorf(v, full, "a query takes no placeholder")
				s.Query = ""
			}
		case "match":
			s.Match = p.pattern(v, full)
		case "set_timeout":
			s.SetTimeout = p.Duration(v, full, 10*time.Millisecond, 10*time.Minute)
		case "min":
			f := p.Float(v, full)
			s.Min = &f
		case "max":
			f := p.Float(v, full)
			s.Max = &f
		case "scale":
			s.Scale = p.factor(v, full)
		case "set_scale":
			s.SetScale = p.factor(v, full)
		case "units":
			s.Units = p.units(v, full)
		case "decimals":
			s.Decimals = p.IntIn(v, full, 0, 12)
		case "true":
			trueNode = v
			s.True = p.words(v, full)
		case "false":
			falseNode = v
			s.False = p.words(v, full)
		case "values":
			valuesNode = v
			s.Values = p.enumValues(v, full)
		case "pattern":
			if re := p.pattern(v, full); re != nil {
				// The value must match as a whole.
				s.Pattern = regexp.MustCompile(`^(?:` + re.String() + `)$`)
			}
		case "max_length":
			s.MaxLength = p.IntIn(v, full, 1, maxStringValue)
		}
	})
	if setNode == nil && child(n, "query") == nil {
		p.Errorf(n, key, "want set:, query: or both")
	}
	if s.Min != nil && s.Max != nil && *s.Min > *s.Max {
		p.Errorf(child(n, "min"), key+".min", "min %g is above max %g", *s.Min, *s.Max)
	}
	if s.Type == TypeInt {
		for _, b := range []struct {
			v   *float64
			key string
		}{{s.Min, "min"}, {s.Max, "max"}} {
			if b.v != nil && (*b.v != float64(int64(*b.v)) || *b.v < -(1<<53) || *b.v > 1<<53) {
				p.Errorf(child(n, b.key), key+"."+b.key, "want an integer for an int setting, got %g", *b.v)
			}
		}
	}
	switch s.Type {
	case TypeBool:
		if trueNode == nil {
			p.Errorf(n, key+".true", "required for a bool setting (the device's words for true)")
		}
		if falseNode == nil {
			p.Errorf(n, key+".false", "required for a bool setting (the device's words for false)")
		}
		if trueNode != nil && falseNode != nil {
			for _, w := range s.True {
				if containsFold(s.False, w) {
					p.Errorf(falseNode, key+".false", "%q is also a word for true", w)
				}
			}
		}
	case TypeEnum:
		if valuesNode == nil {
			p.Errorf(n, key+".values", "required for an enum setting (value: device word)")
		}
	}
	if len(p.Errs) > before {
		return nil
	}
	return s
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

func knownAnywhere(k string) bool {
	for _, keys := range keysFor {
		if contains(keys, k) {
			return true
		}
	}
	return false
}

// templateProblem checks a set template: {value} at least once, no other
// braces.
func templateProblem(t string) string {
	if !strings.Contains(t, "{value}") {
		return fmt.Sprintf("%q: want {value} where the value goes", t)
	}
	if strings.ContainsAny(strings.ReplaceAll(t, "{value}", ""), "{}") {
		return fmt.Sprintf("%q: the only placeholder is {value}", t)
	}
	return ""
}

func (p *profileParser) factor(n *yaml.Node, key string) float64 {
	f := p.Float(n, key)
	if f == 0 && n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		p.Errorf(n, key, "must not be 0")
		return 1
	}
	if f == 0 {
		return 1
	}
	return f
}

func (p *profileParser) units(n *yaml.Node, key string) map[string]float64 {
	out := map[string]float64{}
	if n.Kind == yaml.MappingNode && len(n.Content) > 2*maxList {
		p.Errorf(n, key, "more than %d entries", maxList)
		return nil
	}
	p.Mapping(n, key, func(u string, kn, v *yaml.Node) {
		full := key + "." + u
		if u == "" || !unitRE.MatchString(u) {
			p.Errorf(kn, full, "a unit is letters (and %%), such as MHZ or dBm")
			return
		}
		up := strings.ToUpper(u)
		if _, dup := out[up]; dup {
			p.Errorf(kn, full, "listed twice (units are matched ignoring case)")
			return
		}
		out[up] = p.factor(v, full)
	})
	return out
}

var unitRE = regexp.MustCompile(`^[A-Za-z%]{1,16}$`)

func (p *profileParser) words(n *yaml.Node, key string) []string {
	var out []string
	items := p.list(n, key)
	if len(items) == 0 && n.Kind == yaml.SequenceNode {
		p.Errorf(n, key, "want at least one word")
	}
	for i, item := range items {
		full := key
		if n.Kind == yaml.SequenceNode {
			full = fmt.Sprintf("%s[%d]", key, i)
		}
		if w := p.command(item, full); w != "" {
			if w != strings.TrimSpace(w) {
				p.Errorf(item, full, "%q: no leading or trailing spaces", w)
				continue
			}
			out = append(out, w)
		}
	}
	return out
}

func (p *profileParser) enumValues(n *yaml.Node, key string) []EnumValue {
	if n.Kind == yaml.MappingNode && len(n.Content) > 2*maxList {
		p.Errorf(n, key, "more than %d values", maxList)
		return nil
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		p.Errorf(n, key, "want at least one value")
		return nil
	}
	var out []EnumValue
	seenWord := map[string]string{}
	p.Mapping(n, key, func(name string, kn, v *yaml.Node) {
		full := key + "." + name
		if msg := commandProblem(name); msg != "" || name != strings.TrimSpace(name) {
			p.Errorf(kn, full, "a value name is printable ASCII without surrounding spaces")
			return
		}
		for _, e := range out {
			if strings.EqualFold(e.Name, name) {
				p.Errorf(kn, full, "same as %q ignoring case", e.Name)
				return
			}
		}
		words := p.words(v, full)
		for _, w := range words {
			up := strings.ToUpper(w)
			if other, dup := seenWord[up]; dup {
				p.Errorf(v, full, "device word %q is already used by %q", w, other)
				return
			}
			seenWord[up] = name
		}
		if len(words) > 0 {
			out = append(out, EnumValue{Name: name, Words: words})
		}
	})
	return out
}

// Validate reports whether a profile built in code (not parsed) is
// usable; ParseProfile's result always is.
func (p *Profile) Validate() error {
	var errs []error
	if len(p.Settings) == 0 {
		errs = append(errs, errors.New("no settings"))
	}
	if _, ok := map[string]bool{FramingLine: true, FramingFinal: true, FramingPrompt: true}[p.Answer]; !ok {
		errs = append(errs, fmt.Errorf("answer %q: want line, final or prompt", p.Answer))
	}
	if p.Answer == FramingPrompt && p.Prompt == nil {
		errs = append(errs, errors.New("answer prompt without a prompt pattern"))
	}
	if p.MaxAnswer <= 0 {
		errs = append(errs, errors.New("max_answer must be positive"))
	}
	for _, name := range p.Order {
		if p.Settings[name] == nil {
			errs = append(errs, fmt.Errorf("setting %s listed in Order but not defined", name))
		}
	}
	if len(p.Order) != len(p.Settings) {
		errs = append(errs, errors.New("the order must list every setting once"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("profile %s: %w", p.File, errors.Join(errs...))
	}
	return nil
}
