package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The bash script lists every command, and bash completes with it.
func TestCompletionBash(t *testing.T) {
	code, script, stderr := edgectl(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	if want := `compgen -W "` + strings.Join(names, " ") + ` --socket`; !strings.Contains(script, want) {
		t.Errorf("the script does not list every command (%s):\n%s", want, script)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	path := filepath.Join(t.TempDir(), "edgectl.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ line, want string }{
		{"edgectl sta", "status"},
		{"edgectl --socket /x supp", "support-bundle"},
		{"edgectl status --j", "--json"},
	} {
		words := strings.Fields(tt.line)
		prog := `source "$1"; COMP_WORDS=(` + strings.Join(words, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _edgectl; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, "-c", prog, "bash", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.line, err, out)
		}
		if got := strings.Fields(string(out)); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%q completes to %q, want %q", tt.line, got, tt.want)
		}
	}
	if code, _, _ := edgectl(t, "completion", "fish"); code != 2 {
		t.Errorf("an unknown shell: exit %d, want 2", code)
	}
}
