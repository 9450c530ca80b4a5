package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readBundle returns the files of a bundle by name, and checks they all
// sit in one folder named after the file.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	dir := strings.TrimSuffix(filepath.Base(path), ".tar.gz") + "/"
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(h.Name, dir)
		if !ok {
			t.Errorf("%s is not under %s", h.Name, dir)
		}
		b, _ := io.ReadAll(tr)
		out[name] = string(b)
	}
	return out
}

func TestSupportBundle(t *testing.T) {
	sock := startFakeAPI(t, site) // answers status and members only
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	code, stdout, stderr := edgectl(t, "--socket", sock, "support-bundle", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("stdout %q", stdout)
	}
	files := readBundle(t, out)
	for _, n := range []string{"bundle.txt", "status.json", "members.json", "errors.txt"} {
		if _, ok := files[n]; !ok {
			t.Errorf("no %s in the bundle (has %v)", n, keys(files))
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(files["status.json"]), &st); err != nil {
		t.Errorf("status.json: %v", err)
	}
	if !strings.Contains(files["bundle.txt"], "node edge-01") {
		t.Errorf("bundle.txt:\n%s", files["bundle.txt"])
	}
	// What the fake API cannot answer is named, not fatal.
	for _, n := range []string{"devices.json", "config.yaml", "events.ndjson"} {
		if !strings.Contains(files["errors.txt"], n+": ") {
			t.Errorf("errors.txt does not name %s:\n%s", n, files["errors.txt"])
		}
		if !strings.Contains(stderr, "left out "+n) {
			t.Errorf("stderr does not name %s: %s", n, stderr)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("bundle mode: %v %v", fi.Mode(), err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".edge-support-*")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestSupportBundleNoDaemon(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.gz")
	code, _, stderr := edgectl(t, "--socket", filepath.Join(dir, "none.sock"), "support-bundle", "-o", out, "--json")
	// journalctl may answer even without edged; without it nothing at all
	// could be collected and that is an error.
	if code == 0 {
		files := readBundle(t, out)
		if _, ok := files["status.json"]; ok {
			t.Errorf("a status from no daemon")
		}
		if !strings.Contains(files["errors.txt"], "status.json: ") {
			t.Errorf("errors.txt:\n%s", files["errors.txt"])
		}
		return
	}
	if code != 1 || !strings.Contains(stderr, "nothing collected") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a bundle was written with nothing in it")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
