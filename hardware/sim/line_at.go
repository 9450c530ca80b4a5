package sim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Modem is a simulated 3GPP TS 27.007 AT-command modem on a
// pseudo-terminal. Like a real one it ends commands with CR (LF is
// ignored), echoes the command line while echo is on (ATE1, the power-on
// default), answers in verbose form (<CR><LF>info<CR><LF> ...
// <CR><LF>OK<CR><LF>), reports errors as ERROR or, after AT+CMEE=1/2,
// +CME ERROR: <n>/<text>, and sends +CREG unsolicited result codes when
// registration changes while AT+CREG=1/2.
//
// Commands: AT, ATE0/ATE1, ATZ, ATI, AT+CMEE, AT+CFUN (0, 1, 4), AT+COPS
// (mode 0, 1, 2), AT+CREG (0-2), AT+CGMI, AT+CGMM, AT+CGMR, AT+CGSN, AT+CSQ;
// set (=), read (?) and test (=?) forms.
type Modem struct {
	*lineServer

	mu    sync.Mutex
	state modemState
}

type modemState struct {
	echo bool
	cmee int
	cfun int
	cops int
	creg int
	stat int // registration status: 1 registered (home), 0 not
}

func modemDefaults() modemState {
	return modemState{echo: true, cfun: 1, stat: 1}
}

// NewModem creates the pty (its slave linked at path) of a simulated
// modem in its power-on state. Serve it with Run.
func NewModem(path string) (*Modem, error) {
	ls, err := newLineServer(path, "\r", "\n")
	if err != nil {
		return nil, err
	}
	m := &Modem{lineServer: ls, state: modemDefaults()}
	ls.handle = m.handle
	ls.unsolicited = func(line string) []byte { return []byte("\r\n" + line + "\r\n") }
	return m, nil
}

// Run serves the modem until ctx ends or Close; it survives Unplug and
// Replug. Cancelation is not an error.
func (m *Modem) Run(ctx context.Context) error { return m.run(ctx) }

// Set changes a value behind the driver's back: "echo" (bool), "cmee",
// "cfun", "cops", "creg" (int; the command's parameter).
func (m *Modem) Set(name string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == "echo" {
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("sim modem: echo: want a bool, got %T", v)
		}
		m.state.echo = b
		return nil
	}
	n, ok := v.(int)
	if !ok {
		return fmt.Errorf("sim modem: %s: want an int, got %T", name, v)
	}
	switch name {
	case "cmee":
		m.state.cmee = n
	case "cfun":
		m.state.cfun = n
		m.state.stat = m.registered()
	case "cops":
		m.state.cops = n
		m.state.stat = m.registered()
	case "creg":
		m.state.creg = n
	default:
		return fmt.Errorf("sim modem: unknown value %q", name)
	}
	return nil
}

// Get returns a value (see Set), nil for an unknown name.
func (m *Modem) Get(name string) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch name {
	case "echo":
		return m.state.echo
	case "cmee":
		return m.state.cmee
	case "cfun":
		return m.state.cfun
	case "cops":
		return m.state.cops
	case "creg":
		return m.state.creg
	}
	return nil
}

func (m *Modem) registered() int {
	if m.state.cfun == 1 && m.state.cops != 2 {
		return 1
	}
	return 0
}

// CME error numbers (27.007 9.2.1).
const (
	cmeNotAllowed   = 3
	cmeNotSupported = 4
	cmeBadParams    = 50
)

var cmeText = map[int]string{
	cmeNotAllowed:   "operation not allowed",
	cmeNotSupported: "operation not supported",
	cmeBadParams:    "incorrect parameters",
}

// handle executes one command line and returns the echo and the answer.
func (m *Modem) handle(line string, f LineFaults) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out strings.Builder
	if m.state.echo {
		out.WriteString(line + "\r")
	}
	cmd := strings.TrimSpace(line)
	if len(cmd) < 2 || !strings.EqualFold(cmd[:2], "AT") {
		// Not a command line: a modem ignores it (after the echo).
		return []byte(out.String())
	}
	for _, u := range f.URCs {
		out.WriteString("\r\n" + u + "\r\n")
	}
	if f.ErrorAnswer != "" {
		out.WriteString("\r\n" + f.ErrorAnswer + "\r\n")
		return []byte(out.String())
	}
	before := m.state.stat
	info, final := m.execute(cmd[2:])
	for _, l := range info {
		if f.Garbage {
			l = garbage
		}
		out.WriteString("\r\n" + l + "\r\n")
	}
	out.WriteString("\r\n" + final + "\r\n")
	if m.state.stat != before {
		switch m.state.creg {
		case 1:
			out.WriteString(fmt.Sprintf("\r\n+CREG: %d\r\n", m.state.stat))
		case 2:
			out.WriteString(fmt.Sprintf("\r\n+CREG: %d,\"00C3\",\"0001A2B3\",7\r\n", m.state.stat))
		}
	}
	return []byte(out.String())
}

// execute runs the commands after "AT"; it returns information lines and
// the final result code.
func (m *Modem) execute(rest string) (info []string, final string) {
	st := &m.state
	up := strings.ToUpper(rest)
	switch up {
	case "":
		return nil, "OK"
	case "E", "E0":
		st.echo = false
		return nil, "OK"
	case "E1":
		st.echo = true
		return nil, "OK"
	case "Z", "Z0":
		*st = modemDefaults()
		return nil, "OK"
	case "I", "I0":
		return []string{"ACME EM-7565", "Revision: SIM.1.0"}, "OK"
	case "+CGMI":
		return []string{"ACME"}, "OK"
	case "+CGMM":
		return []string{"EM-7565"}, "OK"
	case "+CGMR":
		return []string{"SIM.1.0"}, "OK"
	case "+CGSN":
		return []string{"490154203237518"}, "OK"
	case "+CSQ":
		if st.cfun != 1 {
			return []string{"+CSQ: 99,99"}, "OK"
		}
		return []string{"+CSQ: 20,99"}, "OK"
	}
	if !strings.HasPrefix(up, "+") {
		return nil, "ERROR"
	}
	name, args, form := up, "", "action"
	switch {
	case strings.HasSuffix(up, "=?"):
		name, form = strings.TrimSuffix(up, "=?"), "test"
	case strings.HasSuffix(up, "?"):
		name, form = strings.TrimSuffix(up, "?"), "read"
	case strings.Contains(up, "="):
		name, _, _ = strings.Cut(up, "=")
		form = "set"
		// Quoted strings keep their case.
		_, args, _ = strings.Cut(rest, "=")
	}
	params := splitParams(args)
	switch name {
	case "+CMEE":
		return m.intCommand(form, params, "+CMEE", &st.cmee, []int{0, 1, 2}, "(0-2)")
	case "+CREG":
		switch form {
		case "read":
			return []string{fmt.Sprintf("+CREG: %d,%d", st.creg, st.stat)}, "OK"
		}
		return m.intCommand(form, params, "+CREG", &st.creg, []int{0, 1, 2}, "(0-2)")
	case "+CFUN":
		switch form {
		case "test":
			return []string{"+CFUN: (0,1,4),(0-1)"}, "OK"
		case "read":
			return []string{fmt.Sprintf("+CFUN: %d", st.cfun)}, "OK"
		case "set":
			if len(params) < 1 || len(params) > 2 {
				return nil, m.cme(cmeBadParams)
			}
			n, err := strconv.Atoi(params[0])
			if err != nil || (n != 0 && n != 1 && n != 4) {
				return nil, m.cme(cmeBadParams)
			}
			if len(params) == 2 && params[1] != "0" && params[1] != "1" {
				return nil, m.cme(cmeBadParams)
			}
			st.cfun = n
			st.stat = m.registered()
			return nil, "OK"
		}
	case "+COPS":
		switch form {
		case "test":
			return []string{`+COPS: (2,"EdgeNet","Edge","00101",7),,(0-4),(0-2)`}, "OK"
		case "read":
			if st.stat == 1 {
				return []string{fmt.Sprintf(`+COPS: %d,0,"EdgeNet",7`, st.cops)}, "OK"
			}
			return []string{fmt.Sprintf("+COPS: %d", st.cops)}, "OK"
		case "set":
			if len(params) < 1 || len(params) > 4 {
				return nil, m.cme(cmeBadParams)
			}
			n, err := strconv.Atoi(params[0])
			if err != nil || n < 0 || n > 2 {
				return nil, m.cme(cmeBadParams)
			}
			if n == 1 && (len(params) < 3 || params[2] != `"00101"` && params[2] != `"EdgeNet"`) {
				return nil, m.cme(cmeBadParams)
			}
			if st.cfun != 1 && n != 2 {
				return nil, m.cme(cmeNotAllowed)
			}
			st.cops = n
			st.stat = m.registered()
			return nil, "OK"
		}
	}
	return nil, m.cme(cmeNotSupported)
}

// intCommand serves a command whose only parameter is an int from allowed.
func (m *Modem) intCommand(form string, params []string, name string, v *int, allowed []int, rng string) ([]string, string) {
	switch form {
	case "test":
		return []string{name + ": " + rng}, "OK"
	case "read":
		return []string{fmt.Sprintf("%s: %d", name, *v)}, "OK"
	case "set":
		if len(params) != 1 {
			return nil, m.cme(cmeBadParams)
		}
		n, err := strconv.Atoi(params[0])
		if err != nil {
			return nil, m.cme(cmeBadParams)
		}
		for _, a := range allowed {
			if n == a {
				*v = n
				return nil, "OK"
			}
		}
		return nil, m.cme(cmeBadParams)
	}
	return nil, m.cme(cmeNotSupported)
}

// cme is the final result code for an error, per AT+CMEE.
func (m *Modem) cme(n int) string {
	switch m.state.cmee {
	case 1:
		return fmt.Sprintf("+CME ERROR: %d", n)
	case 2:
		return "+CME ERROR: " + cmeText[n]
	}
	return "ERROR"
}

func splitParams(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
