package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// The unit under a real systemd: a lab node whose command is systemd as
// PID 1 in its own PID and mount namespaces (in the node's network
// namespace), with systemd/edged.service installed as it ships, only
// ExecStart pointing at the built binary. edged runs hardened, as user
// edged, with a simulated radio and a netlink device on a veth pair.

// pid1Script prepares the private mounts and execs systemd. Everything
// systemd could write to is private: its tmpfiles would otherwise clean
// the machine's /tmp. The staged /etc (a copy of the machine's, with the
// user edged, the unit and /etc/edged) and the binaries are bound before
// /tmp, where they live, is covered.
const pid1Script = `#!/bin/sh
set -e
stage=$1
mount --bind "$stage/etc" /etc
mount --bind "$stage/bin" /usr/local/bin
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var
mount -t tmpfs tmpfs /run
ip link add veth1 type veth peer name veth2
exec /lib/systemd/systemd --system --unit=multi-user.target --show-status=no
`

// edgedUID is the uid and gid the staged /etc gives user edged.
const edgedUID = 990

type pid1 struct {
	t     *testing.T
	l     *lab.Lab
	node  string
	pid   int    // PID 1 as the machine sees it
	stage string // the staged root's files
}

// sh runs a command inside PID 1's namespaces and returns its output.
func (p *pid1) sh(timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"-t", strconv.Itoa(p.pid), "-a"}, argv...)
	out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
	return string(out), err
}

func (p *pid1) must(timeout time.Duration, argv ...string) string {
	p.t.Helper()
	out, err := p.sh(timeout, argv...)
	if err != nil {
		p.t.Fatalf("%s: %v\n%s\njournal:\n%s", strings.Join(argv, " "), err, out, p.journal())
	}
	return out
}

func (p *pid1) journal() string {
	out, _ := p.sh(10*time.Second, "journalctl", "-u", "edged", "--no-pager", "-n", "40")
	return out
}

// show reads one property of the edged unit.
func (p *pid1) show(prop string) string {
	p.t.Helper()
	return strings.TrimSpace(p.must(10*time.Second, "systemctl", "show", "-p", prop, "--value", "edged"))
}

// status asks edged's socket inside the namespaces.
func (p *pid1) status() (api.Status, error) {
	out, err := p.sh(10*time.Second, "/usr/local/bin/edgectl", "status", "--json")
	if err != nil {
		return api.Status{}, fmt.Errorf("%v: %s", err, out)
	}
	var st api.Status
	if err := jsonUnmarshal(out, &st); err != nil {
		return api.Status{}, err
	}
	return st, nil
}

func stageRoot(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	stage := t.TempDir()
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(stage, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v\n%s", err, out)
	}
	etc := filepath.Join(stage, "etc")
	appendFile(t, filepath.Join(etc, "passwd"), fmt.Sprintf("edged:x:%d:%d:edge site daemon:/var/lib/edged:/usr/sbin/nologin\n", edgedUID, edgedUID))
	appendFile(t, filepath.Join(etc, "group"), fmt.Sprintf("edged:x:%d:\n", edgedUID))
	// The unit as shipped, only ExecStart moved to the staged binary.
	unit, err := os.ReadFile("../../systemd/edged.service")
	if err != nil {
		t.Fatal(err)
	}
	const orig = "\nExecStart=/usr/bin/edged "
	if !strings.Contains(string(unit), orig) {
		t.Fatalf("edged.service: no line starting with %q", orig[1:])
	}
	unit = []byte(strings.Replace(string(unit), orig, "\nExecStart=/usr/local/bin/edged ", 1))
	writeFile(t, filepath.Join(etc, "systemd", "system", "edged.service"), unit, 0o644)
	// /etc/edged as README.md installs it: root:edged 0750, secrets 0640.
	dir := filepath.Join(etc, "edged")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(l.Key())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "gossip.key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o640)
	writeFile(t, filepath.Join(dir, "edged.yaml"), []byte(unitNodeConfig(node, 20)), 0o640)
	for _, p := range []string{dir, filepath.Join(dir, "gossip.key"), filepath.Join(dir, "edged.yaml")} {
		if err := os.Chown(p, 0, edgedUID); err != nil {
			t.Fatal(err)
		}
	}
	bin2 := filepath.Join(stage, "bin")
	if err := os.MkdirAll(bin2, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"edged", "edgectl"} {
		if out, err := exec.Command("cp", filepath.Join(bin, b), bin2).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", b, err, out)
		}
	}
	writeFile(t, filepath.Join(stage, "pid1.sh"), []byte(pid1Script), 0o755)
	return stage
}

// unitNodeConfig is the node's edged.yaml: the lab's site, a simulated
// radio and a netlink device (CAP_NET_ADMIN), default paths.
func unitNodeConfig(node string, power int) string {
	return fmt.Sprintf(`node: %s
site: lab
interface: eth0
key_file: /etc/edged/gossip.key
log_level: debug
devices:
  - name: radio0
    driver: sim
    options: {model: radio}
    settings: {frequency_mhz: 3550, power_dbm: %d, enabled: true, mode: auto}
  - name: link0
    driver: netlink
    link: veth1
    settings: {up: true, mtu: 1400}
`, node, power)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// startPID1 adds the node to the lab and waits until systemd has booted.
func startPID1(t *testing.T, l *lab.Lab, node string) *pid1 {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Fatalf("systemd: %v (install Debian package systemd; make deps)", err)
	}
	stage := stageRoot(t, l, node)
	argv := []string{"unshare", "--pid", "--fork", "--mount", "--mount-proc", "--uts", "--ipc",
		"--propagation", "private", "/bin/sh", filepath.Join(stage, "pid1.sh"), stage}
	n, err := l.AddNode(context.Background(), lab.NodeSpec{Name: node, Argv: argv, NoWait: true})
	if err != nil {
		t.Fatalf("add %s: %v", node, err)
	}
	p := &pid1{t: t, l: l, node: node, stage: stage}
	t.Cleanup(func() {
		if p.pid > 0 {
			_ = syscallKill(p.pid)
		}
	})
	// unshare forks once: PID 1 is its only child.
	deadline := time.Now().Add(20 * time.Second)
	for p.pid == 0 {
		if kids := lab.Children(n.Pid); len(kids) == 1 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", kids[0])); strings.HasSuffix(exe, "/systemd") {
				p.pid = kids[0]
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.Log)
			t.Fatalf("systemd did not start as PID 1 within 20 s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// --wait blocks until the boot transaction is done, once systemd's bus
	// is up (the first instants after exec it is not).
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, _ := p.sh(60*time.Second, "systemctl", "is-system-running", "--wait")
		s := strings.TrimSpace(out)
		if s == "running" || s == "degraded" {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(s, "Failed to connect to bus") {
			b, _ := os.ReadFile(n.Log)
			t.Fatalf("systemd: is-system-running: %q\n%s", s, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

func TestUnitUnderSystemd(t *testing.T) {
	l := newLab(t, 2, nil)
	keepLogs(t, l)
	p := startPID1(t, l, "sd1")
	all := []string{"node1", "node2", "sd1"}

	t.Run("start: ready once the socket answers, hardened, in the cluster", func(t *testing.T) {
		p.t = t
		p.must(60*time.Second, "systemctl", "start", "edged")
		// Type=notify: start returned after READY=1, which edged sends only
		// once its socket listens, so the first request must succeed.
		st, err := p.status()
		if err != nil {
			t.Fatalf("status right after systemctl start: %v\njournal:\n%s", err, p.journal())
		}
		if st.Node.Name != "sd1" {
			t.Errorf("status names %q", st.Node.Name)
		}
		main := p.show("MainPID")
		proc := p.must(10*time.Second, "cat", "/proc/"+main+"/status")
		if uid := procField(proc, "Uid"); !strings.HasPrefix(uid, strconv.Itoa(edgedUID)+"\t") {
			t.Errorf("edged runs as uid %q, want %d (User=edged)", uid, edgedUID)
		}
		// CAP_NET_ADMIN is bit 12: the only effective capability.
		if c := procField(proc, "CapEff"); c != "0000000000001000" {
			t.Errorf("effective capabilities %s, want 0000000000001000 (CAP_NET_ADMIN only)", c)
		}
		if nnp := procField(proc, "NoNewPrivs"); nnp != "1" {
			t.Errorf("NoNewPrivs %s", nnp)
		}
		if sc := procField(proc, "Seccomp"); sc != "2" {
			t.Errorf("Seccomp %s, want 2 (the system call filter)", sc)
		}
		waitAll(t, l, []string{"node1", "node2"}, 20*time.Second, "sd1 in the cluster", exactly(all...))
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := p.status()
			alive := 0
			for _, m := range st.Members {
				if m.Status == api.StatusAlive {
					alive++
				}
			}
			if err == nil && alive == len(all) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sd1 sees %d of %d members alive (%v)", alive, len(all), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("devices: the hardened daemon drives a netlink link", func(t *testing.T) {
		p.t = t
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := p.status()
			ok := err == nil && len(st.Devices) == 2
			for _, d := range st.Devices {
				ok = ok && d.InSync && d.State == "ok"
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("devices not in sync within 20 s: %+v (%v)\njournal:\n%s", st.Devices, err, p.journal())
			}
			time.Sleep(100 * time.Millisecond)
		}
		out := p.must(10*time.Second, "ip", "-o", "link", "show", "veth1")
		if !strings.Contains(out, "mtu 1400") {
			t.Errorf("veth1 after edged set mtu 1400: %s", out)
		}
	})

	t.Run("journal: levels are priorities", func(t *testing.T) {
		p.t = t
		out := p.must(10*time.Second, "journalctl", "-u", "edged", "--no-pager", "-p", "info", "-o", "cat")
		if !strings.Contains(out, "edged started") {
			t.Errorf("journal at info and above has no start line:\n%s", out)
		}
		if strings.Contains(out, "level=DEBUG") {
			t.Errorf("journalctl -p info shows debug lines: the priorities are not set")
		}
		if strings.Contains(out, "<6>") || strings.Contains(out, "<7>") {
			t.Errorf("the priority prefixes reached the journal text:\n%s", out)
		}
		dbg := p.must(10*time.Second, "journalctl", "-u", "edged", "--no-pager", "-p", "debug", "-o", "cat")
		if !strings.Contains(dbg, "level=DEBUG") {
			t.Errorf("no debug lines at -p debug (log_level debug)")
		}
	})

	t.Run("reload re-reads the config without a restart or leaving", func(t *testing.T) {
		p.t = t
		main := p.show("MainPID")
		writeFile(t, filepath.Join(p.stage, "etc", "edged", "edged.yaml"), []byte(unitNodeConfig("sd1", 23)), 0o640)
		// Type=notify: reload returns after RELOADING=1 ... READY=1.
		p.must(60*time.Second, "systemctl", "reload", "edged")
		if now := p.show("MainPID"); now != main {
			t.Errorf("MainPID %s -> %s: reload restarted edged", main, now)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := p.status()
			var got any
			for _, d := range st.Devices {
				if d.Name == "radio0" {
					got = d.Actual["power_dbm"]
				}
			}
			if err == nil && got == 23.0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("radio0 power_dbm %v after the reload, want 23 (%v)", got, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitAll(t, l, []string{"node1", "node2"}, 5*time.Second, "sd1 still alive", allAlive(all...))
	})

	t.Run("stop leaves the cluster within the stop timeout", func(t *testing.T) {
		p.t = t
		t0 := time.Now()
		p.must(30*time.Second, "systemctl", "stop", "edged")
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("systemctl stop took %s (TimeoutStopSec=10s)", d)
		}
		if r := p.show("Result"); r != "success" {
			t.Errorf("stop result %q, want success (not a SIGKILL after the timeout)", r)
		}
		waitAll(t, l, []string{"node1", "node2"}, 10*time.Second, "sd1 left", status("sd1", api.StatusLeft))
	})

	t.Run("the watchdog restarts a hung daemon", func(t *testing.T) {
		p.t = t
		writeFile(t, filepath.Join(p.stage, "etc", "systemd", "system", "edged.service.d", "watchdog.conf"),
			[]byte("[Service]\nWatchdogSec=3s\n"), 0o644)
		p.must(30*time.Second, "systemctl", "daemon-reload")
		p.must(60*time.Second, "systemctl", "start", "edged")
		main := p.show("MainPID")
		restarts := p.show("NRestarts")
		// A hung daemon: stopped, it pings nobody.
		p.must(10*time.Second, "kill", "-STOP", main)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if now := p.show("MainPID"); now != main && now != "0" && p.show("ActiveState") == "active" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edged still pid %s 30 s after it hung (WatchdogSec=3s)\njournal:\n%s", main, p.journal())
			}
			time.Sleep(200 * time.Millisecond)
		}
		if now := p.show("NRestarts"); now == restarts {
			t.Errorf("NRestarts still %s", now)
		}
		if j := p.must(10*time.Second, "journalctl", "-u", "edged", "--no-pager", "-o", "cat"); !strings.Contains(j, "Watchdog timeout") {
			t.Errorf("the journal does not say why edged was restarted:\n%s", p.journal())
		}
		waitAll(t, l, []string{"node1", "node2"}, 30*time.Second, "sd1 back", allAlive(all...))
	})
}

// procField returns a field of /proc/PID/status.
func procField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
