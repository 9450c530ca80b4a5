package sim

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// SCPI is a simulated SCPI signal generator on a pseudo-terminal. It
// speaks like a real one: commands end with LF (CR is ignored), headers
// take short and long forms in any case with optional nodes
// ([:SOURce]:FREQuency[:CW]), set commands are silent, queries answer one
// line (numbers as 3.550000E+09), and failures go to the error queue that
// SYST:ERR? reads (-113,"Undefined header", -222,"Data out of range", ...).
//
// Commands: *IDN? *RST *CLS *OPC? *OPC *TST?; [:SOURce]:FREQuency[:CW] (Hz,
// suffixes HZ KHZ MHZ GHZ, 9 kHz to 6 GHz); [:SOURce]:FREQuency:MODE
// CW|FIXed|SWEep|LIST; [:SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]
// (dBm, -130 to 20); OUTPut[:STATe] ON|OFF|1|0; SYSTem:ERRor[:NEXT]?;
// each with its query.
type SCPI struct {
	*lineServer

	mu    sync.Mutex
	state scpiState
	queue []string
}

type scpiState struct {
	idn    string
	freq   float64 // Hz
	power  float64 // dBm
	output bool
	mode   string // CW, SWE, LIST
}

func scpiDefaults() scpiState {
	return scpiState{
		idn:   "ACME Instruments,SG-6000,SIM000001,2.1.0",
		freq:  1e9,
		power: -10,
		mode:  "CW",
	}
}

// SCPI limits.
const (
	scpiFreqMin  = 9e3
	scpiFreqMax  = 6e9
	scpiPowerMin = -130
	scpiPowerMax = 20
	scpiQueueMax = 10
)

// NewSCPI creates the pty (its slave linked at path) of a simulated SCPI
// instrument in its *RST state. Serve it with Run.
func NewSCPI(path string) (*SCPI, error) {
	ls, err := newLineServer(path, "\n", "\r")
	if err != nil {
		return nil, err
	}
	s := &SCPI{lineServer: ls, state: scpiDefaults()}
	ls.handle = s.handle
	ls.unsolicited = func(line string) []byte { return []byte(line + "\n") }
	return s, nil
}

// Run serves the instrument until ctx ends or Close; it survives Unplug and
// Replug. Cancelation is not an error.
func (s *SCPI) Run(ctx context.Context) error { return s.run(ctx) }

// Set changes a value behind the driver's back (front panel, drift):
// "frequency" (float64 Hz), "power" (float64 dBm), "output" (bool),
// "mode" ("CW", "SWE" or "LIST"), "idn" (the *IDN? answer).
func (s *SCPI) Set(name string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := false
	switch name {
	case "frequency":
		s.state.freq, ok = v.(float64)
	case "power":
		s.state.power, ok = v.(float64)
	case "output":
		s.state.output, ok = v.(bool)
	case "mode":
		var m string
		m, ok = v.(string)
		ok = ok && (m == "CW" || m == "SWE" || m == "LIST")
		if ok {
			s.state.mode = m
		}
	case "idn":
		s.state.idn, ok = v.(string)
	default:
		return fmt.Errorf("sim scpi: unknown value %q", name)
	}
	if !ok {
		return fmt.Errorf("sim scpi: %s: bad value %v (%T)", name, v, v)
	}
	return nil
}

// Get returns a value (see Set for names and types), nil for an unknown
// name.
func (s *SCPI) Get(name string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name {
	case "frequency":
		return s.state.freq
	case "power":
		return s.state.power
	case "output":
		return s.state.output
	case "mode":
		return s.state.mode
	case "idn":
		return s.state.idn
	}
	return nil
}

// PushError queues an entry for SYST:ERR?, e.g. `-310,"System error"`.
func (s *SCPI) PushError(entry string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.push(entry)
}

// Errors returns the entries queued for SYST:ERR?.
func (s *SCPI) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queue...)
}

func (s *SCPI) push(entry string) {
	if len(s.queue) >= scpiQueueMax {
		s.queue[scpiQueueMax-1] = `-350,"Queue overflow"`
		return
	}
	s.queue = append(s.queue, entry)
}

// SCPI error queue entries.
const (
	scpiNoError          = `0,"No error"`
	scpiDataType         = `-104,"Data type error"`
	scpiMissingParameter = `-109,"Missing parameter"`
	scpiUndefinedHeader  = `-113,"Undefined header"`
	scpiInvalidSuffix    = `-131,"Invalid suffix"`
	scpiIllegalValue     = `-224,"Illegal parameter value"`
	scpiOutOfRange       = `-222,"Data out of range"`
)

// scpiHeader is a header pattern: nodes separated by ':', optional ones in
// brackets, each mnemonic's short form in upper case (FREQuency).
type scpiHeader []scpiNode

type scpiNode struct {
	short, long string
	optional    bool
}

func parseHeader(pattern string) scpiHeader {
	var h scpiHeader
	for _, part := range strings.Split(strings.NewReplacer("[:", ":[", "]", "").Replace(pattern), ":") {
		if part == "" {
			continue
		}
		opt := strings.HasPrefix(part, "[")
		part = strings.TrimPrefix(part, "[")
		short := strings.TrimRightFunc(part, func(r rune) bool { return r >= 'a' && r <= 'z' })
		h = append(h, scpiNode{short: short, long: strings.ToUpper(part), optional: opt})
	}
	return h
}

// match reports whether the words of a header (upper case, without the
// '?') fit the pattern.
func (h scpiHeader) match(words []string) bool {
	if len(h) == 0 {
		return len(words) == 0
	}
	n := h[0]
	if len(words) > 0 && (words[0] == n.short || words[0] == n.long) && h[1:].match(words[1:]) {
		return true
	}
	return n.optional && h[1:].match(words)
}

var (
	hdrFreq     = parseHeader("[SOURce]:FREQuency[:CW]")
	hdrFreqMode = parseHeader("[SOURce]:FREQuency:MODE")
	hdrPower    = parseHeader("[SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]")
	hdrOutput   = parseHeader("OUTPut[:STATe]")
	hdrError    = parseHeader("SYSTem:ERRor[:NEXT]")
)

var scpiNumberRE = regexp.MustCompile(`^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$`)

// handle executes one program message unit.
func (s *SCPI) handle(line string, f LineFaults) []byte {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	header, param, _ := strings.Cut(line, " ")
	param = strings.TrimSpace(param)
	query := strings.HasSuffix(header, "?")
	header = strings.ToUpper(strings.TrimSuffix(header, "?"))

	s.mu.Lock()
	defer s.mu.Unlock()
	if !query && f.ErrorAnswer != "" && header != "*CLS" {
		s.push(f.ErrorAnswer)
		return nil
	}
	answer, entry := s.execute(header, param, query)
	if entry != "" {
		s.push(entry)
	}
	if !query || answer == "" {
		return nil
	}
	var out strings.Builder
	for _, u := range f.URCs {
		out.WriteString(u + "\n")
	}
	if f.Garbage {
		answer = garbage
	}
	out.WriteString(answer + "\n")
	return []byte(out.String())
}

// execute runs a command on the state; it returns a query's answer and an
// error queue entry.
func (s *SCPI) execute(header, param string, query bool) (answer, entry string) {
	st := &s.state
	if strings.HasPrefix(header, "*") {
		switch {
		case header == "*IDN" && query:
			return st.idn, ""
		case header == "*RST" && !query:
			idn := st.idn
			*st = scpiDefaults()
			st.idn = idn
			return "", ""
		case header == "*CLS" && !query:
			s.queue = nil
			return "", ""
		case header == "*OPC" && query:
			return "1", ""
		case header == "*OPC" && !query:
			return "", ""
		case header == "*TST" && query:
			return "0", ""
		}
		return "", scpiUndefinedHeader
	}
	words := strings.Split(strings.TrimPrefix(header, ":"), ":")
	switch {
	case hdrFreqMode.match(words):
		if query {
			return st.mode, ""
		}
		switch strings.ToUpper(param) {
		case "":
			return "", scpiMissingParameter
		case "CW", "FIX", "FIXED":
			st.mode = "CW"
		case "SWE", "SWEEP":
			st.mode = "SWE"
		case "LIST":
			st.mode = "LIST"
		default:
			return "", scpiIllegalValue
		}
		return "", ""
	case hdrFreq.match(words):
		if query {
			return scpiNumber(st.freq), ""
		}
		v, e := scpiValue(param, map[string]float64{"": 1, "HZ": 1, "KHZ": 1e3, "MHZ": 1e6, "GHZ": 1e9}, scpiFreqMin, scpiFreqMax)
		if e == "" {
			st.freq = v
		}
		return "", e
	case hdrPower.match(words):
		if query {
			return scpiNumber(st.power), ""
		}
		v, e := scpiValue(param, map[string]float64{"": 1, "DBM": 1}, scpiPowerMin, scpiPowerMax)
		if e == "" {
			st.power = v
		}
		return "", e
	case hdrOutput.match(words):
		if query {
			if st.output {
				return "1", ""
			}
			return "0", ""
		}
		switch strings.ToUpper(param) {
		case "":
			return "", scpiMissingParameter
		case "ON", "1":
			st.output = true
		case "OFF", "0":
			st.output = false
		default:
			return "", scpiIllegalValue
		}
		return "", ""
	case hdrError.match(words) && query:
		if len(s.queue) == 0 {
			return scpiNoError, ""
		}
		e := s.queue[0]
		s.queue = s.queue[1:]
		return e, ""
	}
	return "", scpiUndefinedHeader
}

// scpiValue parses a numeric parameter with an optional unit suffix (and
// MIN/MAX), within [lo, hi].
func scpiValue(param string, units map[string]float64, lo, hi float64) (float64, string) {
	switch strings.ToUpper(param) {
	case "":
		return 0, scpiMissingParameter
	case "MIN", "MINIMUM":
		return lo, ""
	case "MAX", "MAXIMUM":
		return hi, ""
	}
	m := scpiNumberRE.FindStringSubmatch(param)
	if m == nil {
		return 0, scpiDataType
	}
	factor, ok := units[strings.ToUpper(m[2])]
	if !ok {
		return 0, scpiInvalidSuffix
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, scpiDataType
	}
	v *= factor
	if v < lo || v > hi {
		return 0, scpiOutOfRange
	}
	return v, ""
}

// scpiNumber formats a number the way instruments answer: 3.550000E+09.
func scpiNumber(v float64) string { return fmt.Sprintf("%E", v) }
