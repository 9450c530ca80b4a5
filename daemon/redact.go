package daemon

import (
	"errors"
	"net/http"
	"os"
	"regexp"
	"strings"

	"edge/daemon/api"
)

// secretKeyRE matches YAML keys whose values are secrets: a password or
// token in a device's settings or options, say. Keys naming files
// (key_file, tls_key) hold paths, not secrets, and stay.
var secretKeyRE = regexp.MustCompile(`^(\s*(?:-\s+)?)("?` + secretKey + `"?)(\s*:\s*)(\S.*)$`)

// secretKey is a key that names a secret: a password, a token, an SNMP
// community, an API key...
const secretKey = `[A-Za-z0-9_.-]*(?:pass(?:word|wd|phrase)?|secret|token|psk|community|credential|api_?key|access_?key|private_?key)[A-Za-z0-9_.-]*`

// redactConfig replaces the values of secret-looking keys in a YAML text
// by "<redacted>" and returns the text and the keys it redacted. It works
// line by line on block mappings; a secret inside a flow mapping
// ({password: x}) is redacted with the whole line's flow value.
func redactConfig(text string) (string, []string) {
	var keys []string
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		m := secretKeyRE.FindStringSubmatch(l)
		if m != nil {
			keys = append(keys, strings.Trim(m[2], `"`))
			lines[i] = m[1] + m[2] + m[3] + "<redacted>"
			continue
		}
		// Flow mappings: settings: {user: a, password: b}.
		if strings.Contains(l, "{") && flowSecretRE.MatchString(l) {
			for _, fm := range flowSecretRE.FindAllStringSubmatch(l, -1) {
				keys = append(keys, fm[1])
			}
			lines[i] = flowSecretRE.ReplaceAllString(l, "$1: <redacted>")
		}
	}
	return strings.Join(lines, "\n"), keys
}

var flowSecretRE = regexp.MustCompile(`(` + secretKey + `)\s*:\s*("[^"]*"|'[^']*'|[^,}\s]+)`)

var errNoConfigFile = errors.New("this edged was started without a config file")

// handleConfig answers the config file as it is on disk now, redacted.
func (d *Daemon) handleConfig(w http.ResponseWriter, _ *http.Request) {
	if d.cfg.Path == "" {
		writeErr(w, http.StatusNotFound, errNoConfigFile)
		return
	}
	b, err := os.ReadFile(d.cfg.Path)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	text, keys := redactConfig(string(b))
	if keys == nil {
		keys = []string{}
	}
	writeJSON(w, api.ConfigFile{Path: d.cfg.Path, Text: text, Redacted: keys})
}
