package site

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"edge/internal/strictyaml"
)

// FuzzParse: the parser never panics; it either refuses the input with
// strictyaml.Errors naming the file, or returns a document whose policy is
// valid, whose hash is stable when parsed again, and that resolves and
// checks without panicking for a few node names.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/parse/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, "../../examples/site.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("version: 1\nsite: s\ngroups: {g: [\"n[!1]\", \"*\"]}\nnodes: {\"@g\": {r: {a: [x]}}, \"n?\": {r: {a: 1}}, n1: {r: {a: 2.5}}}\nconstraints: [{unique: r.a}, {range: \"*.*\", min: 0}, {equal: \"[r].a\"}]\n"))
	nodes := []string{"n1", "n2", "ru-01", "r", "a.b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz.yaml", data)
		if err != nil {
			if d != nil {
				t.Fatalf("document returned with an error: %+v", d)
			}
			for _, e := range unjoin(err) {
				var se *strictyaml.Error
				if !errors.As(e, &se) {
					t.Fatalf("error %T %q is not a *strictyaml.Error", e, e)
				}
				if se.File != "fuzz.yaml" || se.Msg == "" || se.Line < 0 {
					t.Fatalf("bad error %+v", se)
				}
			}
			return
		}
		if err := d.Policy.Validate(); err != nil {
			t.Fatalf("Parse accepted a policy that fails Validate: %v", err)
		}
		h := d.Hash()
		again, err := Parse("again.yaml", d.Raw)
		if err != nil || again.Hash() != h {
			t.Fatalf("parsing Raw again: %v, hash %s != %s", err, again.Hash(), h)
		}
		for _, n := range [][]string{nil, nodes[:1], nodes} {
			desired, _, err := d.Resolve(n)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", n, err)
			}
			_ = d.Check(desired)
			if c := DiffDesired(desired, desired); len(c) != 0 {
				t.Fatalf("DiffDesired of a state with itself: %v", c)
			}
			_ = DiffDesired(nil, desired)
		}
	})
}
