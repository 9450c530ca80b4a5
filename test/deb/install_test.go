package deb

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The real dpkg installs the amd64 package into a throwaway copy of this
// machine's root: an overlayfs over / whose upper folder is a temporary
// folder, mounted in a private mount namespace and entered with chroot,
// with private /run and /tmp. Every write (dpkg's database, /etc/passwd,
// the package's files) lands in the upper folder, which the test drops.

// chrootScript mounts the copy and runs a script in it: $1 the folder
// with up/, work/ and root/, $2 the packages' folder (read-only at /mnt),
// $3 1 to make the maintainer scripts believe systemd runs, $4 the script.
const chrootScript = `set -e
d=$1 r=$1/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/up,workdir=$d/work" "$r"
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
mount --bind "$2" "$r/mnt"
mount -o remount,bind,ro "$r/mnt"
if [ "$3" = 1 ]; then mkdir -p "$r/run/systemd/system"; fi
exec chroot "$r" /usr/bin/env -i HOME=/root LC_ALL=C \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -ec "$4"
`

// stubScript stands for systemctl and deb-systemd-invoke (first on PATH)
// where systemd only seems to run: it records each call that would talk
// to systemd. Offline work (systemctl --root=/ preset, which
// deb-systemd-helper uses to enable the unit) goes to the real systemctl.
const stubScript = `#!/bin/sh
case " $* " in *" --root="*) exec /usr/bin/systemctl "$@" ;; esac
echo "$(basename "$0") $*" >> /var/log/edge-test-calls
`

type chroot struct {
	t       *testing.T
	dir     string
	dist    string
	deb     string // the amd64 package as the chroot sees it
	systemd bool   // /run/systemd/system exists (with stubs: see withSystemd)
}

func newChroot(t *testing.T, p *packages) *chroot {
	t.Helper()
	// Not t.TempDir: the name of a subtest may hold a comma, which ends a
	// mount option.
	dir, err := os.MkdirTemp("", "edge-deb-root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"up", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deb := p.debs["amd64"]
	c := &chroot{t: t, dir: dir, dist: filepath.Dir(deb), deb: "/mnt/" + filepath.Base(deb)}
	// The man-db trigger rebuilds the whole manual database at every
	// install (seconds): off in the copy.
	c.must("rm -f /var/lib/man-db/auto-update")
	return c
}

// withSystemd makes the maintainer scripts see a running systemd whose
// systemctl and deb-systemd-invoke only record their calls (calls()).
func (c *chroot) withSystemd() {
	c.t.Helper()
	c.must(fmt.Sprintf(`mkdir -p /usr/local/sbin
for f in systemctl deb-systemd-invoke; do
	cat > /usr/local/sbin/$f <<'EOF'
%sEOF
	chmod 755 /usr/local/sbin/$f
done`, stubScript))
	c.systemd = true
}

// run runs a script in the copy, in a mount namespace of its own.
func (c *chroot) run(script string) (string, error) {
	sd := "0"
	if c.systemd {
		sd = "1"
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private",
		"/bin/sh", "-c", chrootScript, "sh", c.dir, c.dist, sd, script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *chroot) must(script string) string {
	c.t.Helper()
	out, err := c.run(script)
	if err != nil {
		c.t.Fatalf("in the chroot: %s: %v\n%s", script, err, out)
	}
	return out
}

// calls returns the recorded systemctl and deb-systemd-invoke calls and
// forgets them.
func (c *chroot) calls() []string {
	c.t.Helper()
	out := c.must("cat /var/log/edge-test-calls 2>/dev/null || true; rm -f /var/log/edge-test-calls")
	return lines(out)
}

// stat returns "owner:group mode" of each path, or "absent".
func (c *chroot) stat(paths ...string) map[string]string {
	c.t.Helper()
	res := map[string]string{}
	script := `for p in ` + shellQuote(paths...) + `; do if [ -e "$p" ] || [ -L "$p" ]; then stat -c '%n %U:%G %a' "$p"; else echo "$p absent"; fi; done`
	for _, l := range lines(c.must(script)) {
		if p, v, ok := strings.Cut(l, " "); ok {
			res[p] = v
		}
	}
	return res
}

func (c *chroot) wantStat(want map[string]string) {
	c.t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	got := c.stat(paths...)
	for p, w := range want {
		if got[p] != w {
			c.t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
}

func shellQuote(s ...string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// hostState is what the tests must leave as it was on this machine.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
		"/usr/bin/edged", "/usr/bin/edgectl", "/lib/systemd/system/edged.service",
		"/usr/lib/sysusers.d/edged.conf", "/etc/edged",
		"/etc/systemd/system/multi-user.target.wants/edged.service"} {
		fi, err := os.Lstat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s absent\n", p)
			continue
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		fmt.Fprintf(&b, "%s %v %s\n", p, fi.Mode(), sum)
	}
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "edge").CombinedOutput()
	fmt.Fprintf(&b, "dpkg edge: %s\n", out)
	return b.String()
}

// untouched checks at the end of the test that the machine is as before.
func untouched(t *testing.T) {
	t.Helper()
	before := hostState(t)
	t.Cleanup(func() {
		if after := hostState(t); after != before {
			t.Errorf("the machine changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// passwd returns the fields of user edged in the copy (nil when absent).
func (c *chroot) passwd() []string {
	c.t.Helper()
	out, err := c.run("getent passwd edged")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(out), ":")
}

func (c *chroot) wantUser() {
	c.t.Helper()
	u := c.passwd()
	if len(u) != 7 {
		c.t.Fatalf("user edged: %q", u)
	}
	uid, _ := strconv.Atoi(u[2])
	if uid <= 0 || uid >= 1000 {
		c.t.Errorf("user edged: uid %d, want a system uid", uid)
	}
	if u[5] != "/var/lib/edged" || u[6] != "/usr/sbin/nologin" {
		c.t.Errorf("user edged: home %s, shell %s", u[5], u[6])
	}
	g := strings.Split(strings.TrimSpace(c.must("getent group edged")), ":")
	if len(g) < 3 || g[2] != u[3] {
		c.t.Errorf("group edged %q: not the primary group of user edged (gid %s)", g, u[3])
	}
}

const hint = "edge: edged is enabled but not started: "

func TestInstall(t *testing.T) {
	need(t, true, "unshare", "chroot", "dpkg")
	p := build(t)
	untouched(t)
	const wants = "/etc/systemd/system/multi-user.target.wants/edged.service"

	t.Run("fresh, no config, no systemd: enabled, not started, says what next; remove; purge", func(t *testing.T) {
		c := newChroot(t, p)
		out := c.must("dpkg -i " + c.deb)
		c.wantUser()
		c.wantStat(map[string]string{
			"/etc/edged":                              "root:edged 750",
			"/usr/bin/edged":                          "root:root 755",
			"/usr/bin/edgectl":                        "root:root 755",
			"/lib/systemd/system/edged.service":       "root:root 644",
			"/usr/lib/sysusers.d/edged.conf":          "root:root 644",
			"/usr/share/edge/profiles/rectifier.yaml": "root:root 644",
		})
		if v := strings.TrimSpace(c.must("edged -version")); v != "edged "+p.version {
			t.Errorf("edged -version in the chroot: %q", v)
		}
		if l := strings.TrimSpace(c.must("readlink " + wants)); l != "/lib/systemd/system/edged.service" {
			t.Errorf("%s -> %q: the unit is not enabled", wants, l)
		}
		want := hint + "no /etc/edged/edged.yaml yet. Next: put the site's gossip key in /etc/edged/gossip.key (a new site: edgectl keygen), write /etc/edged/edged.yaml (example: /usr/share/doc/edge/examples/edged.yaml), then run: systemctl start edged"
		if !contains(lines(out), want) {
			t.Errorf("dpkg -i: no line %q in:\n%s", want, out)
		}

		// Remove: the package's files go; config, user and state stay.
		c.must("mkdir -p /var/lib/edged/raft && echo state > /var/lib/edged/raft/raft.db")
		c.must("dpkg -r edge")
		c.wantStat(map[string]string{
			"/usr/bin/edged":                    "absent",
			"/lib/systemd/system/edged.service": "absent",
			"/etc/edged":                        "root:edged 750",
			"/var/lib/edged/raft/raft.db":       "root:root 644",
		})
		if st := c.must("dpkg-query -W -f '${Status}' edge"); st != "deinstall ok config-files" {
			t.Errorf("after dpkg -r: %q", st)
		}
		if c.passwd() == nil {
			t.Error("dpkg -r removed user edged")
		}

		// Purge: the enablement and the empty /etc/edged go; the state,
		// the user and group stay, and it says so.
		out = c.must("dpkg -P edge")
		c.wantStat(map[string]string{
			wants:                         "absent",
			"/etc/edged":                  "absent",
			"/var/lib/edged/raft/raft.db": "root:root 644",
		})
		if c.passwd() == nil {
			t.Error("dpkg -P removed user edged")
		}
		want = "edge: purged; kept /var/lib/edged, the user and group edged: remove them by hand once this node has left its site for good"
		if !contains(lines(out), want) {
			t.Errorf("dpkg -P: no line %q in:\n%s", want, out)
		}
		if st, err := c.run("dpkg-query -W -f '${Status}' edge"); err == nil && st != "unknown ok not-installed" {
			t.Errorf("after dpkg -P: %q", st)
		}
	})

	t.Run("old layout with its key: modes fixed, started; upgrade restarts; remove stops", func(t *testing.T) {
		c := newChroot(t, p)
		c.withSystemd()
		// An older install by hand: everything root's, 0600 and 0700, which
		// the unit's User=edged cannot read.
		c.must(`umask 077
mkdir -p /etc/edged/tls
echo 'c2l0ZSBrZXkgb2YgdGhlIHRlc3Qgc2l0ZSwgMzIgYnl0ZXM=' > /etc/edged/gossip.key
echo 'private key' > /etc/edged/tls/pkg1.key
echo 'certificate' > /etc/edged/tls/pkg1.crt
cat > /etc/edged/edged.yaml <<'EOF'
node: pkg1
site: lab
key_file: "gossip.key"   # from this folder
tls_ca: /etc/edged/tls/ca.crt
tls_cert: /etc/edged/tls/pkg1.crt
tls_key: '/etc/edged/tls/pkg1.key'
EOF
printf '[Service]\nExecStart=/usr/local/bin/edged\n[Install]\nWantedBy=multi-user.target\n' > /etc/systemd/system/edged.service`)
		c.wantStat(map[string]string{"/etc/edged/gossip.key": "root:root 600"})
		out := c.must("dpkg -i " + c.deb)
		c.wantStat(map[string]string{
			"/etc/edged":              "root:edged 750",
			"/etc/edged/edged.yaml":   "root:edged 640",
			"/etc/edged/gossip.key":   "root:edged 640",
			"/etc/edged/tls":          "root:edged 750",
			"/etc/edged/tls/pkg1.key": "root:edged 640",
			"/etc/edged/tls/pkg1.crt": "root:edged 640",
		})
		calls := c.calls()
		for _, w := range []string{"systemctl --system daemon-reload", "deb-systemd-invoke restart edged.service"} {
			if !contains(calls, w) {
				t.Errorf("dpkg -i: no %q among the calls %q", w, calls)
			}
		}
		if strings.Contains(out, hint) {
			t.Errorf("dpkg -i says edged is not started:\n%s", out)
		}
		for _, w := range []string{
			"edge: /etc/edged/gossip.key is now root:edged 0640 (user edged reads it)",
			"edge: note: /etc/systemd/system/edged.service (a manual install's?) hides the packaged /lib/systemd/system/edged.service: remove it, then: systemctl daemon-reload",
		} {
			if !contains(lines(out), w) {
				t.Errorf("dpkg -i: no line %q in:\n%s", w, out)
			}
		}
		c.must("rm /etc/systemd/system/edged.service")

		// The admin disables edged: an upgrade keeps it disabled.
		c.must("rm " + wants)

		// Upgrade (the same package again: configure with the old version).
		c.must("dpkg -i " + c.deb)
		calls = c.calls()
		if !contains(calls, "deb-systemd-invoke try-restart edged.service") || contains(calls, "deb-systemd-invoke restart edged.service") {
			t.Errorf("upgrade: calls %q, want try-restart and no (re)start", calls)
		}
		if st := c.stat(wants)[wants]; st != "absent" {
			t.Errorf("the upgrade enabled edged again: %s %s", wants, st)
		}

		c.must("dpkg -r edge")
		if calls := c.calls(); !contains(calls, "deb-systemd-invoke stop edged.service") {
			t.Errorf("dpkg -r: calls %q, want a stop", calls)
		}
	})

	t.Run("config without its key: not started, says which key", func(t *testing.T) {
		c := newChroot(t, p)
		c.withSystemd()
		c.must(`mkdir -p /etc/edged
printf 'site: lab\nkey_file: /etc/edged/site.key\n' > /etc/edged/edged.yaml`)
		out := c.must("dpkg -i " + c.deb)
		calls := c.calls()
		if !contains(calls, "systemctl --system daemon-reload") {
			t.Errorf("calls %q: no daemon-reload", calls)
		}
		for _, call := range calls {
			if strings.HasPrefix(call, "deb-systemd-invoke") {
				t.Errorf("without a key: %q", call)
			}
		}
		want := hint + "key_file /etc/edged/site.key (named in /etc/edged/edged.yaml) is missing or empty. Next: put the site's gossip key in /etc/edged/site.key"
		if !strings.Contains(out, want) {
			t.Errorf("dpkg -i: no %q in:\n%s", want, out)
		}
	})

	t.Run("no systemd-sysusers: adduser makes the user", func(t *testing.T) {
		c := newChroot(t, p)
		c.must("rm /usr/bin/systemd-sysusers")
		c.must("dpkg -i " + c.deb)
		c.wantUser()
		c.wantStat(map[string]string{"/etc/edged": "root:edged 750"})
	})
}
