package main

import (
	"reflect"
	"strings"
	"testing"

	"edge/daemon/api"
)

// checkMemberRows checks that a members table lists every member of site
// with its status, and the role "-" for a member without tags.
func checkMemberRows(t *testing.T, out string) {
	t.Helper()
	rows := map[string][]string{}
	header := false
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) == 6 && f[0] == "NAME" {
			header = reflect.DeepEqual(f, []string{"NAME", "ADDR", "STATUS", "ROLE", "VERSION", "SINCE"})
			continue
		}
		if header && len(f) > 0 {
			rows[f[0]] = f
		}
	}
	if !header {
		t.Fatalf("no NAME ADDR STATUS ROLE VERSION SINCE header:\n%s", out)
	}
	for _, m := range site.Members {
		role := m.Tags[api.TagRole]
		if role == "" {
			role = "-"
		}
		row := rows[m.Name]
		if len(row) != 6 || row[1] != m.Addr || row[2] != m.Status || row[3] != role {
			t.Errorf("row of %s = %q, want %s %s %s", m.Name, row, m.Addr, m.Status, role)
		}
	}
	if len(rows) != len(site.Members) {
		t.Errorf("%d rows, want %d:\n%s", len(rows), len(site.Members), out)
	}
}

func TestMembers(t *testing.T) {
	sock := startFakeAPI(t, site)

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "members", "--json")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		var raw map[string]any
		decodeOne(t, stdout, &raw)
		checkMembersJSON(t, raw["members"])
		var m api.Members
		decodeOne(t, stdout, &m)
		if want := (api.Members{Members: site.Members, Index: site.Index}); !reflect.DeepEqual(m, want) {
			t.Errorf("members --json:\n got %+v\nwant %+v", m, want)
		}
	})

	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := edgectl(t, "--socket", sock, "members")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		checkMemberRows(t, stdout)
		checkGolden(t, "members.golden", stdout)
	})

	t.Run("no members", func(t *testing.T) {
		sock := startFakeAPI(t, api.Status{})
		code, stdout, stderr := edgectl(t, "--socket", sock, "members")
		if code != 0 || stderr != "" || len(lines(stdout)) != 1 {
			t.Errorf("exit %d, stderr %q, stdout %q: want only the header", code, stderr, stdout)
		}
	})
}
