package deb

import (
	"archive/tar"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// arches are the architectures `make deb` builds, with what file(1) says
// of their programs.
var arches = []struct{ name, file string }{
	{"amd64", "x86-64"},
	{"arm64", "ARM aarch64"},
	{"armhf", "ARM, EABI5"},
}

// repo is the repository root.
var repo = func() string {
	d, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return d
}()

var (
	buildOnce sync.Once
	built     *packages
	buildErr  error
	tmpRoot   string // removed by TestMain
)

// packages is one run of `make deb`.
type packages struct {
	bin     string            // its BIN: the builds it packaged
	debs    map[string]string // architecture -> .deb
	version string            // the git describe the binaries carry
	debver  string            // the package version
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

// need skips outside CI when a tool or root is missing, and fails in CI.
func need(t *testing.T, root bool, tools ...string) {
	t.Helper()
	var missing []string
	if runtime.GOOS != "linux" || (root && os.Geteuid() != 0) {
		missing = append(missing, "root on Linux")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("needs %s (make deps); CI must run this test", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s (make deps)", strings.Join(missing, ", "))
}

// build runs `make deb` once, into a temporary BIN and DIST, so that the
// test checks what the Makefile target makes, from this tree.
func build(t *testing.T) *packages {
	t.Helper()
	need(t, false, "make", "go", "dpkg-deb", "file")
	buildOnce.Do(func() { built, buildErr = makeDeb() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func makeDeb() (*packages, error) {
	dir, err := os.MkdirTemp("", "edge-deb")
	if err != nil {
		return nil, err
	}
	tmpRoot = dir
	p := &packages{bin: filepath.Join(dir, "bin"), debs: map[string]string{}}
	dist := filepath.Join(dir, "dist")
	// nice: the cross builds yield the CPU to timing-sensitive tests that
	// go test runs beside this one.
	cmd := exec.Command("nice", "-n", "10", "make", "--no-print-directory", "-C", repo,
		"BIN="+p.bin, "DIST="+dist, "deb")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("make deb: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, dist+"/") && strings.HasSuffix(l, ".deb") {
			a := strings.TrimSuffix(l[strings.LastIndex(l, "_")+1:], ".deb")
			p.debs[a] = l
		}
	}
	for _, a := range arches {
		if p.debs[a.name] == "" {
			return nil, fmt.Errorf("make deb printed no %s package:\n%s", a.name, out)
		}
	}
	v, err := exec.Command(filepath.Join(p.bin, "edged"), "-version").Output()
	if err != nil {
		return nil, fmt.Errorf("edged -version: %v", err)
	}
	f := strings.Fields(string(v))
	if len(f) != 2 || f[0] != "edged" {
		return nil, fmt.Errorf("edged -version printed %q", v)
	}
	p.version = f[1]
	dv, err := exec.Command("bash", filepath.Join(repo, "packaging/build-deb.sh"), "--debian-version", p.version).Output()
	if err != nil {
		return nil, fmt.Errorf("build-deb.sh --debian-version %s: %v", p.version, err)
	}
	p.debver = strings.TrimSpace(string(dv))
	return p, nil
}

// cleanEnv is this process's environment without the variables of a make
// that may run the tests (make test): the nested make is a make of its own.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// debVersion runs build-deb.sh --debian-version with a fixed commit date.
func debVersion(t *testing.T, v string, epoch int64) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repo, "packaging/build-deb.sh"), "--debian-version", v)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return strings.TrimSpace(out.String()), errb.String(), err
}

// 2026-11-21 18:21:05 UTC
const epoch = 1795285265

func TestVersion(t *testing.T) {
	need(t, false, "dpkg")
	t.Run("from git describe", func(t *testing.T) {
		for _, c := range []struct{ in, want string }{
			{"v1.2.0", "1.2.0-1"},
			{"1.2", "1.2-1"},
			{"v1.2.0-rc1", "1.2.0~rc1-1"},
			{"v1.2.0-3-gabc1234", "1.2.0+git20261121.182105.abc1234-1"},
			{"v1.2.0-rc1-12-g0123abcd", "1.2.0~rc1+git20261121.182105.0123abcd-1"},
			{"0c95286", "0.0~git20261121.182105.0c95286-1"},
			{"0c95286-dirty", "0.0~git20261121.182105.0c95286+dirty-1"},
			{"v1.2.0-dirty", "1.2.0+dirty-1"},
		} {
			got, stderr, err := debVersion(t, c.in, epoch)
			if err != nil {
				t.Errorf("%s: %v: %s", c.in, err, stderr)
				continue
			}
			if got != c.want {
				t.Errorf("%s: got %q, want %q", c.in, got, c.want)
			}
			if out, err := exec.Command("dpkg", "--validate-version", got).CombinedOutput(); err != nil {
				t.Errorf("%s -> %s: dpkg --validate-version: %v %s", c.in, got, err, out)
			}
		}
	})
	t.Run("grows with the history", func(t *testing.T) {
		// Each is older than the next: commits before any tag, a release
		// candidate and commits after it, the release, a dirty tree, commits
		// after the release, the next versions.
		steps := []struct {
			in    string
			epoch int64
		}{
			{"fffffff", epoch - 86400},
			{"0c95286", epoch},
			{"abc1234", epoch + 1},
			{"v1.2.0-rc1", epoch + 2},
			{"v1.2.0-rc1-1-gdef5678", epoch + 3},
			{"v1.2.0", epoch + 4},
			{"v1.2.0-dirty", epoch + 4},
			{"v1.2.0-1-g1111111", epoch + 5},
			{"v1.2.0-1-g1111111-dirty", epoch + 5},
			{"v1.2.0-2-g0000000", epoch + 6},
			{"v1.2.1", epoch + 7},
			{"v1.10.0", epoch + 8},
		}
		var prev string
		for _, s := range steps {
			v, stderr, err := debVersion(t, s.in, s.epoch)
			if err != nil {
				t.Fatalf("%s: %v: %s", s.in, err, stderr)
			}
			if prev != "" {
				if err := exec.Command("dpkg", "--compare-versions", prev, "lt", v).Run(); err != nil {
					t.Errorf("%s is not older than %s (%s)", prev, v, s.in)
				}
			}
			prev = v
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, in := range []string{"dev", "", "v1.2.0_beta", "release-1", "v1.2.0 beta", "v1.2/0"} {
			got, stderr, err := debVersion(t, in, epoch)
			if err == nil {
				t.Errorf("%q: accepted as %q", in, got)
				continue
			}
			if !strings.Contains(stderr, "build-deb.sh: VERSION "+in) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%q: want one line naming the VERSION, got %q", in, stderr)
			}
		}
	})
}

// entry is a file of a package's data or control archive.
type entry struct {
	hdr  *tar.Header
	data []byte
}

// readTar reads the archive that `dpkg-deb FLAG DEB` writes.
func readTar(t *testing.T, flag, deb string) map[string]entry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", flag, deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s %s: %v", flag, deb, err)
	}
	files := map[string]entry{}
	r := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", deb, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			name = "."
		}
		files[name] = entry{h, b}
	}
	return files
}

// wantFiles are the package's regular files and their modes, from this
// tree: the docs and profiles are whatever docs/ and examples/ hold.
func wantFiles(t *testing.T) map[string]os.FileMode {
	t.Helper()
	want := map[string]os.FileMode{
		"usr/bin/edged":                                 0o755,
		"usr/bin/edgectl":                               0o755,
		"lib/systemd/system/edged.service":              0o644,
		"usr/lib/sysusers.d/edged.conf":                 0o644,
		"usr/share/doc/edge/copyright":                  0o644,
		"usr/share/doc/edge/changelog.Debian.gz":        0o644,
		"usr/share/doc/edge/README.md":                  0o644,
		"usr/share/doc/edge/examples/edged.yaml":        0o644,
		"usr/share/doc/edge/examples/site.yaml":         0o644,
		"usr/share/bash-completion/completions/edgectl": 0o644,
		"usr/share/zsh/vendor-completions/_edgectl":     0o644,
		"usr/share/man/man1/edgectl.1.gz":               0o644,
		"usr/share/man/man8/edged.8.gz":                 0o644,
		"usr/share/lintian/overrides/edge":              0o644,
	}
	for pattern, dest := range map[string]string{
		"docs/*.md":                "usr/share/doc/edge/docs/",
		"examples/profiles/*.yaml": "usr/share/edge/profiles/",
	} {
		m, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil || len(m) == 0 {
			t.Fatalf("%s: nothing (%v)", pattern, err)
		}
		for _, f := range m {
			want[dest+filepath.Base(f)] = 0o644
		}
	}
	return want
}

func TestPackages(t *testing.T) {
	p := build(t)
	want := wantFiles(t)
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			deb := p.debs[a.name]
			if got, want := filepath.Base(deb), "edge_"+p.debver+"_"+a.name+".deb"; got != want {
				t.Errorf("file name %s, want %s", got, want)
			}
			fields := control(t, deb)
			for k, v := range map[string]string{
				"Package":      "edge",
				"Version":      p.debver,
				"Architecture": a.name,
				"Depends":      "systemd | adduser",
				"Section":      "net",
				"Priority":     "optional",
			} {
				if fields[k] != v {
					t.Errorf("%s: %q, want %q", k, fields[k], v)
				}
			}
			if !strings.Contains(fields["Maintainer"], "<") {
				t.Errorf("Maintainer %q: no address", fields["Maintainer"])
			}

			data := readTar(t, "--fsys-tarfile", deb)
			var got []string
			var size int64
			for name, e := range data {
				h := e.hdr
				if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
					t.Errorf("%s: owner %s(%d):%s(%d), want root:root", name, h.Uname, h.Uid, h.Gname, h.Gid)
				}
				switch h.Typeflag {
				case tar.TypeDir:
					if m := h.FileInfo().Mode().Perm(); m != 0o755 {
						t.Errorf("%s/: mode %o, want 755", name, m)
					}
				case tar.TypeReg:
					got = append(got, name)
					size += h.Size
					if m, ok := want[name]; ok && h.FileInfo().Mode().Perm() != m {
						t.Errorf("%s: mode %o, want %o", name, h.FileInfo().Mode().Perm(), m)
					}
				default:
					t.Errorf("%s: type %c: only folders and files expected", name, h.Typeflag)
				}
			}
			slices.Sort(got)
			for name := range want {
				if !slices.Contains(got, name) {
					t.Errorf("missing %s", name)
				}
			}
			for _, name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("unexpected file %s", name)
				}
			}
			if kb, _ := strconv.ParseInt(fields["Installed-Size"], 10, 64); kb*1024 < size || kb*1024 > size+int64(len(data))*4096 {
				t.Errorf("Installed-Size %s KiB for %d bytes of files", fields["Installed-Size"], size)
			}

			// The unit and the sysusers file as they are in the tree.
			for name, src := range map[string]string{
				"lib/systemd/system/edged.service": "systemd/edged.service",
				"usr/lib/sysusers.d/edged.conf":    "systemd/edged.sysusers",
			} {
				b, err := os.ReadFile(filepath.Join(repo, src))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, data[name].data) {
					t.Errorf("%s differs from %s", name, src)
				}
			}

			// Static programs for the package's architecture.
			dir := t.TempDir()
			for _, b := range []string{"edged", "edgectl"} {
				f := filepath.Join(dir, b)
				if err := os.WriteFile(f, data["usr/bin/"+b].data, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command("file", "-b", f).Output()
				if err != nil {
					t.Fatal(err)
				}
				if s := string(out); !strings.Contains(s, a.file) || !strings.Contains(s, "statically linked") {
					t.Errorf("usr/bin/%s: %s, want a statically linked %s program", b, strings.TrimSpace(s), a.file)
				}
			}
			if a.name == runtime.GOARCH {
				out, err := exec.Command(filepath.Join(dir, "edged"), "-version").Output()
				if err != nil || strings.TrimSpace(string(out)) != "edged "+p.version {
					t.Errorf("edged -version: %q %v, want edged %s", out, err, p.version)
				}
			}

			// Control archive: the maintainer scripts as in packaging/,
			// md5sums of every file, no conffiles (nothing ships in /etc).
			ctrl := readTar(t, "--ctrl-tarfile", deb)
			for name, mode := range map[string]os.FileMode{"control": 0o644, "md5sums": 0o644, "postinst": 0o755, "prerm": 0o755, "postrm": 0o755} {
				e, ok := ctrl[name]
				if !ok {
					t.Errorf("control archive: no %s", name)
					continue
				}
				if m := e.hdr.FileInfo().Mode().Perm(); m != mode {
					t.Errorf("control archive: %s mode %o, want %o", name, m, mode)
				}
				if mode == 0o755 {
					b, err := os.ReadFile(filepath.Join(repo, "packaging", name))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b, e.data) {
						t.Errorf("%s differs from packaging/%s", name, name)
					}
				}
			}
			if _, ok := ctrl["conffiles"]; ok {
				t.Errorf("control archive has conffiles: %s", ctrl["conffiles"].data)
			}
			sums := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(string(ctrl["md5sums"].data)), "\n") {
				sum, name, ok := strings.Cut(l, "  ")
				if !ok {
					t.Fatalf("md5sums: line %q", l)
				}
				sums[name] = sum
			}
			for _, name := range got {
				h := md5.Sum(data[name].data)
				if sums[name] != hex.EncodeToString(h[:]) {
					t.Errorf("md5sums: %s: %q, want %x", name, sums[name], h)
				}
			}
			if len(sums) != len(got) {
				t.Errorf("md5sums lists %d files, the package has %d", len(sums), len(got))
			}
		})
	}
}

// control reads the package's control fields.
func control(t *testing.T, deb string) map[string]string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--field", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --field %s: %v", deb, err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
			fields[k] = v
		}
	}
	return fields
}

// TestCompletion loads the packaged completions in bash and zsh.
func TestCompletion(t *testing.T) {
	need(t, false, "bash", "zsh")
	p := build(t)
	data := readTar(t, "--fsys-tarfile", p.debs["amd64"])
	dir := t.TempDir()
	bashFile := filepath.Join(dir, "edgectl")
	zshDir := filepath.Join(dir, "zsh")
	if err := os.MkdirAll(zshDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bashFile, data["usr/share/bash-completion/completions/edgectl"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zshDir, "_edgectl"), data["usr/share/zsh/vendor-completions/_edgectl"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	// bash: what Tab offers after "edgectl mem".
	out, err := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(edgectl mem); COMP_CWORD=1; _edgectl; echo "${COMPREPLY[*]}"`, "bash", bashFile).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "members" {
		t.Errorf("bash completes \"edgectl mem\" to %q (%v), want members", out, err)
	}
	// zsh: compinit binds the file on its fpath to edgectl (its #compdef
	// line), and the function it defines completes like bash's.
	script := `fpath=("$1" $fpath); autoload -U compinit; compinit -u -d "$2"; print -r -- "$_comps[edgectl]"`
	out, err = exec.Command("zsh", "-f", "-c", script, "zsh", zshDir, filepath.Join(dir, "zcompdump")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_edgectl" {
		t.Errorf("zsh binds edgectl to %q (%v), want _edgectl", out, err)
	}
}

func TestLintian(t *testing.T) {
	need(t, false, "lintian")
	p := build(t)
	args := []string{"--no-cfg", "--fail-on", "error,warning"}
	for _, a := range arches {
		args = append(args, p.debs[a.name])
	}
	out, err := exec.Command("lintian", args...).CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			bad = append(bad, l)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("lintian: %v; errors and warnings (fix them, or override them with a reason in packaging/lintian-overrides):\n%s\n%s", err, strings.Join(bad, "\n"), out)
	}
}
