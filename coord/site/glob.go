package site

import (
	"fmt"
	"path"
	"strings"
)

// Globs are shell globs (path.Match): * any run of characters, ? one
// character, [a-z0-9] a class, [!x] or [^x] a negated class. They match a
// whole name.

const maxPattern = 128

// isGlob reports whether s has glob characters.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// globNorm turns the shell's [!x] into path.Match's [^x].
func globNorm(pat string) string { return strings.ReplaceAll(pat, "[!", "[^") }

// match reports whether name matches pat, a name or a glob checked at parse
// time.
func match(pat, name string) bool {
	if !isGlob(pat) {
		return pat == name
	}
	ok, _ := path.Match(globNorm(pat), name)
	return ok
}

// checkGlob checks a glob whose literal characters must satisfy
// nameChar; it returns a message, or "".
func checkGlob(pat string, nameChar func(rune) bool) string {
	if len(pat) > maxPattern {
		return fmt.Sprintf("glob longer than %d characters", maxPattern)
	}
	for _, r := range pat {
		if !nameChar(r) && !strings.ContainsRune("*?[]!^-", r) {
			return fmt.Sprintf("%q: %q cannot appear in a glob", pat, r)
		}
	}
	if _, err := path.Match(globNorm(pat), ""); err != nil {
		return fmt.Sprintf("%q is not a valid glob (unclosed or empty [...]?)", pat)
	}
	return ""
}

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func isSettingChar(r rune) bool { return isNameChar(r) && r != '.' }

// checkNodePattern checks a node name or a glob over node names.
func checkNodePattern(s string) string {
	if isGlob(s) {
		return checkGlob(s, isNameChar)
	}
	if !nameRE.MatchString(s) {
		return fmt.Sprintf("%q is neither a node name (%s) nor a glob (ru-*, node[1-3])", s, nameRule)
	}
	return ""
}

// checkSettingPattern checks a constraint's DEVICE.SETTING pattern.
func checkSettingPattern(s string) string {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return fmt.Sprintf("want DEVICE.SETTING, either part may be a glob (radio*.frequency_mhz), got %q", s)
	}
	dev, set := s[:i], s[i+1:]
	if isGlob(dev) {
		if msg := checkGlob(dev, isNameChar); msg != "" {
			return "device " + msg
		}
	} else if !nameRE.MatchString(dev) {
		return fmt.Sprintf("device %q is neither a device name (%s) nor a glob", dev, nameRule)
	}
	if isGlob(set) {
		if msg := checkGlob(set, isSettingChar); msg != "" {
			return "setting " + msg
		}
	} else if !settingRE.MatchString(set) {
		return fmt.Sprintf("setting %q is neither a setting name (%s) nor a glob", set, settingRule)
	}
	return ""
}
