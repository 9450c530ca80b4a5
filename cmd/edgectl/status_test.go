package main

import (
	"bytes"
	"context"
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

// cancelAfter cancels once n lines have been written to it.
type cancelAfter struct {
	bytes.Buffer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(b []byte) (int, error) {
	n, err := c.Buffer.Write(b)
	if strings.Count(c.String(), "\n") >= c.n {
		c.cancel()
	}
	return n, err
}

// status -w --json prints one status per line until interrupted, and an
// interrupt ends it with exit 0.
func TestStatusWatchJSON(t *testing.T) {
	sock := startFakeAPI(t, site)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelAfter{n: 3, cancel: cancel}
	var errb bytes.Buffer
	if code := run(ctx, []string{"--socket", sock, "status", "-w", "--json"}, out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	ls := lines(out.String())
	if len(ls) < 3 {
		t.Fatalf("%d lines:\n%s", len(ls), out.String())
	}
	for _, l := range ls {
		var st api.Status
		if err := json.Unmarshal([]byte(l), &st); err != nil || st.Node.Name != "edge-01" {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

// Without a terminal, each redraw of status -w starts with a time line.
func TestStatusWatchText(t *testing.T) {
	sock := startFakeAPI(t, site)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelAfter{n: 40, cancel: cancel}
	var errb bytes.Buffer
	if code := run(ctx, []string{"--socket", sock, "status", "--watch"}, out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "node     edge-01\n"); n < 2 {
		t.Errorf("fewer than two redraws:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "\n--- ") {
		t.Errorf("no separator between redraws:\n%s", out.String())
	}
}

func TestIncompatible(t *testing.T) {
	m := func(name, status, proto string) api.Member {
		tags := map[string]string{api.TagRole: api.RoleEdged, api.TagVersion: "x"}
		if proto != "-" {
			tags[api.TagProto] = proto
		}
		return api.Member{Name: name, Status: status, Tags: tags}
	}
	serf := api.Member{Name: "serf", Status: api.StatusAlive, Tags: map[string]string{}}
	tests := []struct {
		name    string
		members []api.Member
		raft    *api.Raft
		want    []string // substrings, one per line
	}{
		{"old and new releases overlap", []api.Member{m("a", api.StatusAlive, "-"), m("b", api.StatusAlive, "1"), m("c", api.StatusAlive, "1-2"), serf}, &api.Raft{Voters: []string{"a", "b"}}, nil},
		{"a release past the voters", []api.Member{m("a", api.StatusAlive, "-"), m("b", api.StatusAlive, "1"), m("c", api.StatusFailed, "2-3")}, &api.Raft{Voters: []string{"a", "b"}},
			[]string{"incompatible: c speaks protocol 2-3, the voters' range is 1: it gets no raft replica"}},
		{"gone nodes do not count", []api.Member{m("a", api.StatusAlive, "1"), m("c", api.StatusLeft, "2-3")}, &api.Raft{Voters: []string{"a"}}, nil},
		{"malformed tag", []api.Member{m("a", api.StatusAlive, "1"), m("c", api.StatusAlive, "two")}, &api.Raft{Voters: []string{"a"}},
			[]string{`incompatible: c advertises protocol "two"`}},
		{"voters already moved on", []api.Member{m("a", api.StatusAlive, "2-3"), m("b", api.StatusAlive, "3"), m("c", api.StatusAlive, "-")}, &api.Raft{Voters: []string{"a", "b"}},
			[]string{"incompatible: c speaks protocol 1, the voters' range is 3"}},
		{"raft off: this node is the reference", []api.Member{m("me", api.StatusAlive, "1"), m("c", api.StatusAlive, "4")}, nil,
			[]string{"incompatible: c speaks protocol 4, this node's range is 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := incompatible(api.Status{Node: api.Node{Name: "me"}, Members: tt.members, Raft: tt.raft})
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %d lines", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %q, want %q", got[i], w)
				}
			}
		})
	}
	// In the status text, as a warning line.
	st := api.Status{Node: api.Node{Name: "a"}, Raft: &api.Raft{Voters: []string{"a"}},
		Members: []api.Member{m("a", api.StatusAlive, "1"), m("z", api.StatusAlive, "7")}}
	var out, errb bytes.Buffer
	if err := printStatus(&env{stdout: &out, stderr: &errb}, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\nwarning  incompatible: z speaks protocol 7,") {
		t.Errorf("status text:\n%s", out.String())
	}
}
