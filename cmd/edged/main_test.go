package main

import (
	"errors"
	"strings"
	"testing"
)

func TestFatalLines(t *testing.T) {
	err := errors.New("/etc/edged/edged.yaml:3: key_file: required\n/etc/edged/edged.yaml:5: site: required")
	var b strings.Builder
	t.Setenv("JOURNAL_STREAM", "")
	fatal(&b, err)
	want := "edged: /etc/edged/edged.yaml:3: key_file: required\nedged: /etc/edged/edged.yaml:5: site: required\n"
	if b.String() != want {
		t.Errorf("outside systemd:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	t.Setenv("JOURNAL_STREAM", "8:1234")
	fatal(&b, err)
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "<3>edged: ") {
			t.Errorf("under systemd, line %q lacks the error priority", line)
		}
	}
}
