package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"edge/daemon/api"
	"edge/test/lab"
)

// waitDevices waits, with blocking queries, until cond holds for the node's
// devices.
func waitDevices(t *testing.T, l *lab.Lab, node string, timeout time.Duration, what string, cond func(map[string]api.Device) bool) {
	t.Helper()
	c := clientOf(t, l, node)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var index uint64
	for {
		d, err := c.WaitDevices(ctx, index, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %s: %v", node, what, err)
		}
		m := map[string]api.Device{}
		for _, dev := range d.Devices {
			m[dev.Name] = dev
		}
		if cond(m) {
			return
		}
		index = d.Index
	}
}

// TestDevicesOnTheLab: every lab node brings its simulated devices to their
// desired settings and says so in `edgectl devices` and `status --json`; a
// reload adds a device and changes settings without a restart; a reload
// with an unknown driver changes nothing.
func TestDevicesOnTheLab(t *testing.T) {
	l := newLab(t, 2, func(c *lab.Config) { c.Extra = lab.SimDevices })
	for _, n := range names(l) {
		waitDevices(t, l, n, 10*time.Second, "devices in sync", func(m map[string]api.Device) bool {
			return len(m) == 2 && m["radio0"].State == api.DeviceOK && m["radio0"].InSync && m["rect0"].InSync
		})
	}
	node := mustNode(t, l, "node1")
	out, _, code := edgectl(t, "--socket", node.Socket, "status", "--json")
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Devices) != 2 {
		t.Fatalf("status --json (exit %d): %s", code, out)
	}
	for _, d := range st.Devices {
		if d.Driver != "sim" || d.State != "ok" || !d.InSync || d.LastError != "" {
			t.Errorf("device %+v", d)
		}
	}
	table, _, code := edgectl(t, "--socket", node.Socket, "devices")
	if code != 0 || !strings.Contains(table, "radio0") || !strings.Contains(table, "rect0") {
		t.Errorf("devices table (exit %d):\n%s", code, table)
	}

	orig, err := os.ReadFile(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(orig), "power_dbm: 20", "power_dbm: 30", 1) +
		"  - name: gnss0\n    driver: sim\n    options: {model: gnss}\n    settings: {constellations: [gps, galileo], elevation_mask: 10}\n"
	if err := os.WriteFile(node.Config, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(node.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitDevices(t, l, "node1", 10*time.Second, "reloaded devices", func(m map[string]api.Device) bool {
		g, ok := m["gnss0"]
		r := m["radio0"]
		return ok && g.InSync && r.InSync && r.Actual["power_dbm"] == 30.0
	})

	bad := next + "  - name: x\n    driver: warp-drive\n"
	if err := os.WriteFile(node.Config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(node.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, node.Log, 10*time.Second, `unknown driver \"warp-drive\"`)
	d, err := clientOf(t, l, "node1").Devices(context.Background())
	if err != nil || len(d.Devices) != 3 {
		t.Errorf("after a refused reload: %v %+v", err, d.Devices)
	}
}
