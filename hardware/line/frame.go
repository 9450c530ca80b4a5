package line

import (
	"bytes"
	"regexp"
	"strings"
)

// expect is what a command gets back.
type expect int

const (
	expectNothing expect = iota // a set command in line framing
	expectLine                  // one answer line (line framing)
	expectFinal                 // lines, then a final result code
	expectPrompt                // lines, then the prompt
)

func (e expect) String() string {
	return [...]string{"nothing", "answer line", "final result code", "prompt"}[e]
}

// reply is a framed answer.
type reply struct {
	// Lines are the answer lines: echo, unsolicited lines and blank lines
	// removed, spaces around trimmed.
	Lines []string
	// End is the final result code or the prompt that ended the answer.
	End string
	// Refused is the line that matched an error pattern, if any.
	Refused string
	// Dropped are the unsolicited lines that were dropped.
	Dropped []string
	// Echoed: an echo was skipped.
	Echoed bool
}

// queryExpect and setExpect are what queries and set commands get back
// under the profile's framing.
func (p *Profile) queryExpect() expect {
	switch p.Answer {
	case FramingFinal:
		return expectFinal
	case FramingPrompt:
		return expectPrompt
	}
	return expectLine
}

func (p *Profile) setExpect() expect {
	if p.Answer == FramingLine {
		return expectNothing
	}
	return p.queryExpect()
}

// scan frames what has arrived so far in answer to cmd. done says the
// answer is complete. Lines end at CR or LF (CR LF, LF CR and blank lines
// make no difference); only complete lines count, except that a prompt
// needs no line end. With echo, lines equal to cmd or to prev (the command
// before, whose echo may come late when it got no answer) are skipped
// until the answer starts.
func (p *Profile) scan(cmd, prev string, want expect, buf []byte) (r reply, done bool) {
	cmd, prev = strings.TrimSpace(cmd), strings.TrimSpace(prev)
	for len(buf) > 0 {
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			break
		}
		line := strings.Trim(string(buf[:i]), " \t")
		buf = buf[i+1:]
		if line == "" {
			continue
		}
		if p.Echo && len(r.Lines) == 0 && (line == cmd || line == prev && prev != "") {
			r.Echoed = true
			continue
		}
		if matchAny(p.URC, line) {
			r.Dropped = append(r.Dropped, line)
			continue
		}
		switch want {
		case expectNothing:
			// Nothing is expected: whatever comes is left unread.
			continue
		case expectLine:
			if matchAny(p.Errors, line) {
				r.Refused = line
			} else {
				r.Lines = append(r.Lines, line)
			}
			return r, true
		case expectFinal:
			if matchAny(p.Errors, line) {
				r.Refused, r.End = line, line
				return r, true
			}
			if matchAny(p.OK, line) {
				r.End = line
				return r, true
			}
			r.Lines = append(r.Lines, line)
		case expectPrompt:
			if p.Prompt != nil && p.Prompt.MatchString(line) {
				r.End = line
				return r, true
			}
			if r.Refused == "" && matchAny(p.Errors, line) {
				r.Refused = line
			}
			r.Lines = append(r.Lines, line)
		}
	}
	// A prompt waits for input on the same line: no line end after it.
	if want == expectPrompt && p.Prompt != nil {
		if rest := strings.Trim(string(buf), " \t"); rest != "" && p.Prompt.MatchString(rest) {
			r.End = rest
			return r, true
		}
	}
	return r, false
}

func matchAny(res []*regexp.Regexp, line string) bool {
	for _, re := range res {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}
