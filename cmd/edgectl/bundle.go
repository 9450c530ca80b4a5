package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"edge/daemon/api"
)

// bundleItem is one file of a support bundle and how to get it. A failing
// item is noted in errors.txt; the others still make it in.
type bundleItem struct {
	name  string
	fetch func(ctx context.Context, e *env) ([]byte, error)
}

func apiItem(name, path string, q url.Values) bundleItem {
	return bundleItem{name, func(ctx context.Context, e *env) ([]byte, error) {
		return e.client.Get(ctx, path, q)
	}}
}

// bundleItems are the bundle's files: what edged says over its socket, the
// node config with secrets redacted, and the journal.
var bundleItems = []bundleItem{
	apiItem("status.json", api.PathStatus, nil),
	apiItem("members.json", api.PathMembers, nil),
	apiItem("devices.json", api.PathDevices, nil),
	apiItem("changes.json", api.PathChanges, nil),
	apiItem("history.json", api.PathHistory, nil),
	apiItem("events.ndjson", api.PathEvents, url.Values{"follow": {"false"}}),
	apiItem("goroutines.txt", "/debug/pprof/goroutine", url.Values{"debug": {"2"}}),
	{"config.yaml", func(ctx context.Context, e *env) ([]byte, error) {
		c, err := e.client.Config(ctx)
		if err != nil {
			return nil, err
		}
		head := fmt.Sprintf("# %s as edged read it for this bundle; values redacted: %s\n", c.Path, strings.Join(c.Redacted, ", "))
		if len(c.Redacted) == 0 {
			head = fmt.Sprintf("# %s as edged read it for this bundle; nothing redacted\n", c.Path)
		}
		return []byte(head + c.Text), nil
	}},
	{"journal.txt", func(ctx context.Context, _ *env) ([]byte, error) {
		out, err := exec.CommandContext(ctx, "journalctl", "-u", "edged", "--no-pager", "-n", "5000", "-o", "short-iso-precise").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && len(ee.Stderr) > 0 {
				return nil, fmt.Errorf("journalctl: %v: %s", err, bytes.TrimSpace(ee.Stderr))
			}
			return nil, fmt.Errorf("journalctl: %w", err)
		}
		return out, nil
	}},
}

// runBundle writes a tarball of everything a support engineer asks for
// first. The gossip key and TLS keys are never read; the config's secrets
// are redacted by edged.
func runBundle(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("support-bundle", flag.ContinueOnError)
	outPath := fs.String("o", "", "output `file` (default edge-support-NODE-TIME.tar.gz here)")
	asJSON := fs.Bool("json", false, "print what was written as JSON")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	now := time.Now().UTC()
	node := "unknown"
	files := map[string][]byte{}
	var names, problems []string
	for _, it := range bundleItems {
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		b, err := it.fetch(ictx, e)
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", it.name, err))
			continue
		}
		files[it.name] = b
		names = append(names, it.name)
	}
	if b, ok := files["status.json"]; ok {
		if n := nodeName(b); n != "" {
			node = n
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("nothing collected: %s", strings.Join(problems, "; "))
	}
	info := fmt.Sprintf("edgectl %s\nsocket %s\ncollected %s\nnode %s\n", api.Version, e.client.Socket, now.Format(time.RFC3339), node)
	files["bundle.txt"] = []byte(info)
	names = append([]string{"bundle.txt"}, names...)
	if len(problems) > 0 {
		files["errors.txt"] = []byte(strings.Join(problems, "\n") + "\n")
		names = append(names, "errors.txt")
	}
	path := *outPath
	if path == "" {
		path = fmt.Sprintf("edge-support-%s-%s.tar.gz", node, now.Format("20060102-150405"))
	}
	dir := strings.TrimSuffix(filepath.Base(path), ".tar.gz")
	if err := writeBundle(path, dir, now, names, files); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]any{"file": path, "files": names, "problems": nonNilStrings(problems)})
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d files)\n", path, len(names))
	for _, p := range problems {
		fmt.Fprintf(e.stderr, "edgectl support-bundle: left out %s\n", p)
	}
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nodeName reads node.name from a status answer, if it is one.
func nodeName(status []byte) string {
	var st api.Status
	if err := json.Unmarshal(status, &st); err != nil {
		return ""
	}
	n := st.Node.Name
	if n == "" || strings.ContainsAny(n, "/\\ ") {
		return ""
	}
	return n
}

// writeBundle writes the files under dir/ in a gzipped tarball, through a
// temporary file, so that a half-written bundle never has the final name.
func writeBundle(path, dir string, at time.Time, names []string, files map[string][]byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".edge-support-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := gzip.NewWriter(tmp)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		b := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: dir + "/" + n, Mode: 0o640, Size: int64(len(b)), ModTime: at, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
