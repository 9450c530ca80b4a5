package api

import (
	"strings"
	"testing"
)

func TestParseProto(t *testing.T) {
	tests := []struct {
		in   string
		want Proto
		err  string
	}{
		{"", Proto{1, 1}, ""}, // a release before protocol versions
		{"1", Proto{1, 1}, ""},
		{"2-5", Proto{2, 5}, ""},
		{"3-3", Proto{3, 3}, ""},
		{"0", Proto{}, "versions are 1 to"},
		{"1-99999", Proto{}, "versions are 1 to"},
		{"3-2", Proto{}, "3 is above 2"},
		{"x", Proto{}, "want N or MIN-MAX"},
		{"1-", Proto{}, "want N or MIN-MAX"},
		{"-1", Proto{}, "want N or MIN-MAX"},
		{"1-2-3", Proto{}, "want N or MIN-MAX"},
		{" 1", Proto{}, "want N or MIN-MAX"},
	}
	for _, tt := range tests {
		got, err := ParseProto(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseProto(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseProto(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if tt.in != "" {
			if back, _ := ParseProto(got.String()); back != got {
				t.Errorf("%v does not survive String: %q", got, got.String())
			}
		}
	}
	if s := ThisProto().String(); s != "1" {
		t.Errorf("this release advertises %q, want 1 (until a format changes)", s)
	}
}

func TestProtoRanges(t *testing.T) {
	a, b, c := Proto{1, 2}, Proto{2, 3}, Proto{3, 4}
	if !a.Overlaps(b) || !b.Overlaps(a) || a.Overlaps(c) || c.Overlaps(a) {
		t.Error("Overlaps")
	}
	if !a.Speaks(2) || a.Speaks(3) || a.Speaks(0) {
		t.Error("Speaks")
	}
	if r, ok := CommonProto(a, b); !ok || r != (Proto{2, 2}) {
		t.Errorf("CommonProto(1-2, 2-3) = %v, %v", r, ok)
	}
	if _, ok := CommonProto(a, b, c); ok {
		t.Error("CommonProto(1-2, 2-3, 3-4) found a common version")
	}
	if r, ok := CommonProto(); !ok || !r.Speaks(1) || !r.Speaks(100) {
		t.Errorf("CommonProto() = %v, %v: no ranges leave every version", r, ok)
	}
}
