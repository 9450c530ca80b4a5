package deb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// pid1Script boots the copy of chrootScript under a real systemd: the
// overlay becomes the root (pivot_root) of PID 1 in new PID, mount, UTS,
// IPC and network namespaces, with private /run and /tmp, the packages at
// /mnt, and eth0 (one end of a veth pair) for edged's gossip and mDNS.
const pid1Script = `set -e
d=$1 r=$1/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/up,workdir=$d/work" "$r"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
mount --bind /proc "$r/proc"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
mount --bind "$2" "$r/mnt"
mount -o remount,bind,ro "$r/mnt"
ip link set lo up
ip link add eth0 type veth peer name eth1
ip addr add 192.0.2.1/24 dev eth0
ip link set eth1 up
ip link set eth0 up
cd "$r"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
exec /lib/systemd/systemd --system --unit=sysinit.target --show-status=no
`

type booted struct {
	t   *testing.T
	pid int // PID 1 as this machine sees it
}

// sh runs a command in PID 1's namespaces and root.
func (b *booted) sh(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(b.pid), "-a",
		"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "/bin/sh", "-ec", script).CombinedOutput()
	return string(out), err
}

func (b *booted) must(script string) string {
	b.t.Helper()
	out, err := b.sh(script)
	if err != nil {
		j, _ := b.sh("journalctl -u edged --no-pager -n 30")
		b.t.Fatalf("%s: %v\n%s\njournal of edged:\n%s", script, err, out, j)
	}
	return out
}

func (b *booted) show(prop string) string {
	b.t.Helper()
	return strings.TrimSpace(b.must("systemctl show -p " + prop + " --value edged.service"))
}

// boot starts systemd as PID 1 in the chroot's copy and waits until it has
// booted (sysinit.target: no service of this machine's own starts).
func boot(t *testing.T, c *chroot) *booted {
	t.Helper()
	logf, err := os.Create(c.dir + "/pid1.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", "--uts", "--ipc", "--net",
		"--propagation", "private", "/bin/sh", "-c", pid1Script, "sh", c.dir, c.dist)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &booted{t: t}
	t.Cleanup(func() {
		// PID 1's death ends every process of its namespace.
		if b.pid > 0 {
			_ = syscall.Kill(b.pid, syscall.SIGKILL)
		} else {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	// unshare forks once: PID 1 is its only child. Nothing announces it:
	// look for it.
	deadline := time.Now().Add(20 * time.Second)
	for b.pid == 0 {
		if kids := lab.Children(cmd.Process.Pid); len(kids) == 1 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", kids[0])); strings.HasSuffix(exe, "/systemd") {
				b.pid = kids[0]
			}
		}
		if b.pid == 0 && time.Now().After(deadline) {
			log, _ := os.ReadFile(c.dir + "/pid1.log")
			t.Fatalf("systemd did not start as PID 1 within 20 s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// --wait blocks until the boot is done, once systemd's bus is up (the
	// first instants after exec it is not).
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, _ := b.sh("systemctl is-system-running --wait")
		s := strings.TrimSpace(out)
		if s == "running" || s == "degraded" {
			return b
		}
		if time.Now().After(deadline) || !strings.Contains(s, "Failed to connect to bus") {
			log, _ := os.ReadFile(c.dir + "/pid1.log")
			t.Fatalf("systemd: is-system-running: %q\n%s", s, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUnderSystemd installs the package where systemd runs for real: the
// postinst starts the packaged unit (the node had its config and key from
// an older install, root 0600), edged runs as user edged and answers
// edgectl; an upgrade restarts it; dpkg -r stops it; dpkg -P keeps the
// config and the state.
func TestUnderSystemd(t *testing.T) {
	need(t, true, "unshare", "nsenter", "ip")
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Fatalf("systemd: %v (Debian package systemd; make deps)", err)
	}
	p := build(t)
	untouched(t)
	c := newChroot(t, p)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// This machine's image forbids starting services (a policy-rc.d that
	// answers 101, which deb-systemd-invoke obeys); a device has none.
	c.must(`rm -f /usr/sbin/policy-rc.d
umask 077
mkdir -p /etc/edged
echo ` + base64.StdEncoding.EncodeToString(key) + ` > /etc/edged/gossip.key
cat > /etc/edged/edged.yaml <<'EOF'
node: pkg1
site: lab
interface: eth0
key_file: gossip.key
EOF`)
	b := boot(t, c)

	out := b.must("dpkg -i " + c.deb)
	if strings.Contains(out, hint) {
		t.Errorf("dpkg -i says edged is not started:\n%s", out)
	}
	if s := b.show("ActiveState"); s != "active" {
		j, _ := b.sh("journalctl -u edged --no-pager -n 30")
		t.Fatalf("after dpkg -i, edged is %s\n%s\njournal of edged:\n%s", s, out, j)
	}
	if s := strings.TrimSpace(b.must("systemctl is-enabled edged")); s != "enabled" {
		t.Errorf("edged is %s, want enabled", s)
	}
	uid := strings.Split(strings.TrimSpace(b.must("getent passwd edged")), ":")[2]
	main := b.show("MainPID")
	if u := procField(b.must("cat /proc/"+main+"/status"), "Uid"); !strings.HasPrefix(u, uid+"\t") {
		t.Errorf("edged runs as uid %q, want %s (user edged)", u, uid)
	}
	if exe := strings.TrimSpace(b.must("readlink /proc/" + main + "/exe")); exe != "/usr/bin/edged" {
		t.Errorf("edged runs %s, want the packaged /usr/bin/edged", exe)
	}
	// Type=notify: the start returned after READY=1, sent once the socket
	// listens, so edgectl answers at once.
	var st api.Status
	if err := json.Unmarshal([]byte(b.must("edgectl status --json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Node.Name != "pkg1" || st.Node.Site != "lab" || st.Node.Version != p.version {
		t.Errorf("edgectl status: node %+v, want pkg1 of site lab at %s", st.Node, p.version)
	}
	if m := strings.TrimSpace(b.must("stat -c '%U:%G %a' /etc/edged /etc/edged/gossip.key")); m != "root:edged 750\nroot:edged 640" {
		t.Errorf("/etc/edged and its key: %q", m)
	}

	// Upgrade: the running edged restarts on the new files.
	b.must("dpkg -i " + c.deb)
	if s, m := b.show("ActiveState"), b.show("MainPID"); s != "active" || m == main || m == "0" {
		t.Errorf("after the upgrade: %s, MainPID %s (was %s): want a restarted edged", s, m, main)
	}

	b.must("dpkg -r edge")
	if s, l := b.show("ActiveState"), b.show("LoadState"); s != "inactive" || l != "not-found" {
		t.Errorf("after dpkg -r: %s, %s; want inactive, not-found", s, l)
	}
	if out, err := b.sh("test ! -e /run/edged"); err != nil {
		t.Errorf("after dpkg -r, /run/edged is still there %s", out)
	}

	out = b.must("dpkg -P edge")
	want := "edge: purged; kept /etc/edged, /var/lib/edged, the user and group edged: remove them by hand once this node has left its site for good"
	if !contains(lines(out), want) {
		t.Errorf("dpkg -P: no line %q in:\n%s", want, out)
	}
	if out, err := b.sh("test -s /etc/edged/gossip.key && test -f /etc/edged/edged.yaml && test -d /var/lib/edged"); err != nil {
		t.Errorf("dpkg -P removed config, key or state %s", out)
	}
}

func procField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
