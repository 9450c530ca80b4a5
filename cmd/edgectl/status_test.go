package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"edge/daemon/api"
)

// decodeOne decodes stdout, which must hold exactly one JSON object.
func decodeOne(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON value (%v):\n%s", err, stdout)
	}
	if !bytes.HasPrefix(bytes.TrimSpace([]byte(stdout)), []byte("{")) {
		t.Fatalf("stdout is not a JSON object:\n%s", stdout)
	}
}

// checkMembersJSON checks the members[] contract: name, addr, status (one of
// alive|suspect|failed|left) and tags on every member.
func checkMembersJSON(t *testing.T, members any) {
	t.Helper()
	list, ok := members.([]any)
	if !ok || len(list) != len(site.Members) {
		t.Fatalf("members = %v, want a list of %d", members, len(site.Members))
	}
	for i, m := range list {
		obj, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("members[%d] = %v, want an object", i, m)
		}
		for _, k := range []string{"name", "addr", "status", "tags"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("members[%d] has no %q: %v", i, k, obj)
			}
		}
		if s, _ := obj["status"].(string); !slices.Contains([]string{"alive", "suspect", "failed", "left"}, s) {
			t.Errorf("members[%d].status = %v", i, obj["status"])
		}
		if obj["name"] != site.Members[i].Name || obj["addr"] != site.Members[i].Addr {
			t.Errorf("members[%d] = %v, want %s %s", i, obj, site.Members[i].Name, site.Members[i].Addr)
		}
	}
}

func TestStatus(t *testing.T) {
	sock := startFakeAPI(t, site)

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "status", "--json")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		var raw map[string]any
		decodeOne(t, stdout, &raw)
		node, ok := raw["node"].(map[string]any)
		if !ok {
			t.Fatalf("no node object: %s", stdout)
		}
		want := map[string]string{"name": "edge-01", "site": "plant-7", "version": "1.2.3", "addr": "10.0.0.11:7946"}
		for k, v := range want {
			if node[k] != v {
				t.Errorf("node.%s = %v, want %q", k, node[k], v)
			}
		}
		checkMembersJSON(t, raw["members"])
		// And the whole answer round-trips.
		var st api.Status
		decodeOne(t, stdout, &st)
		if !reflect.DeepEqual(st, site) {
			t.Errorf("status --json:\n got %+v\nwant %+v", st, site)
		}
	})

	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "status")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{
			"node     edge-01\n",
			"site     plant-7\n",
			"members  2 alive, 1 suspect, 1 failed, 1 left\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("status does not show %q:\n%s", want, stdout)
			}
		}
		checkMemberRows(t, stdout)
		checkGolden(t, "status.golden", stdout)
	})
}

func TestMixedVersions(t *testing.T) {
	m := func(name, status, version string) api.Member {
		return api.Member{Name: name, Status: status, Tags: map[string]string{api.TagRole: api.RoleEdged, api.TagVersion: version}}
	}
	same := []api.Member{m("a", api.StatusAlive, "1.2.0"), m("b", api.StatusFailed, "1.2.0")}
	if got := mixedVersions(same); got != "" {
		t.Errorf("one release: %q", got)
	}
	// A node that left and an outsider (a stock serf agent) do not count.
	serf := api.Member{Name: "serf", Status: api.StatusAlive, Tags: map[string]string{}}
	if got := mixedVersions(append(same, m("old", api.StatusLeft, "1.1.0"), serf)); got != "" {
		t.Errorf("left node and outsider counted: %q", got)
	}
	mixed := append(same, m("c", api.StatusAlive, "1.3.0"), m("d", api.StatusAlive, ""))
	want := "mixed releases: 1.2.0 on 2, 1.3.0 on 1, unknown on 1 nodes (see edgectl members)"
	if got := mixedVersions(mixed); got != want {
		t.Errorf("mixed:\n got %q\nwant %q", got, want)
	}
}
