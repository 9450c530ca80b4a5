package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serfModule is the stock serf agent the size is compared with, the same
// release the membership benchmark runs.
const serfModule = "github.com/hashicorp/serf/cmd/serf@v0.10.2"

// sizeTarget is one platform of the size table.
type sizeTarget struct {
	name string   // amd64, arm64, armv7
	env  []string // GOARCH, GOARM
}

var sizeTargets = []sizeTarget{
	{"amd64", []string{"GOARCH=amd64"}},
	{"arm64", []string{"GOARCH=arm64"}},
	{"armv7", []string{"GOARCH=arm", "GOARM=7"}},
}

// sizeRow is one platform's sizes in bytes.
type sizeRow struct {
	Arch    string `json:"arch"`
	Edged   int64  `json:"edged"`
	Edgectl int64  `json:"edgectl"`
	Serf    int64  `json:"serf"`
}

// BenchmarkBinarySize builds edged and edgectl as `make cross` does
// (static, stripped, -trimpath) and the stock serf agent the same way, for
// amd64, arm64 and armv7, and reports each size and edged/serf. The
// design's limit: edged for arm64 within 15 MB.
func BenchmarkBinarySize(b *testing.B) {
	dir := b.TempDir()
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		b.Fatalf("go env GOMODCACHE: %v", err)
	}
	var rows []sizeRow
	for _, t := range sizeTargets {
		out := filepath.Join(dir, t.name)
		env := append(os.Environ(), "CGO_ENABLED=0")
		env = append(env, t.env...)
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out+"/", "edge/cmd/edged", "edge/cmd/edgectl")
		build.Env = env
		if o, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build edged for %s: %v\n%s", t.name, err, o)
		}
		// serf: go install into a private GOPATH (the module cache is shared).
		gopath := filepath.Join(dir, "gopath-"+t.name)
		inst := exec.Command("go", "install", "-trimpath", "-ldflags", "-s -w", serfModule)
		inst.Env = append(env, "GOPATH="+gopath, "GOMODCACHE="+strings.TrimSpace(string(gomodcache)), "GOBIN=", "GOFLAGS=-mod=mod")
		if o, err := inst.CombinedOutput(); err != nil {
			b.Fatalf("build serf for %s: %v\n%s", t.name, err, o)
		}
		serf, _ := filepath.Glob(filepath.Join(gopath, "bin", "*serf"))
		more, _ := filepath.Glob(filepath.Join(gopath, "bin", "*", "serf"))
		serf = append(serf, more...)
		if len(serf) != 1 {
			b.Fatalf("serf for %s: want one binary under %s/bin, got %v", t.name, gopath, serf)
		}
		row := sizeRow{Arch: t.name}
		for p, v := range map[string]*int64{filepath.Join(out, "edged"): &row.Edged, filepath.Join(out, "edgectl"): &row.Edgectl, serf[0]: &row.Serf} {
			fi, err := os.Stat(p)
			if err != nil {
				b.Fatal(err)
			}
			*v = fi.Size()
		}
		rows = append(rows, row)
		b.ReportMetric(float64(row.Edged)/(1<<20), "edged_"+t.name+"_MB")
		b.ReportMetric(float64(row.Edged)/float64(row.Serf), "edged/serf_"+t.name)
	}
	b.ReportMetric(0, "ns/op")
	var tb strings.Builder
	tb.WriteString("| arch | edged | edgectl | serf agent v0.10.2 | edged/serf | goal (arm64 edged) |\n| --- | --: | --: | --: | --: | --: |\n")
	for _, r := range rows {
		goal := "-"
		if r.Arch == "arm64" {
			goal = "<= 15 MB: NO"
			if r.Edged <= 15<<20 {
				goal = "<= 15 MB: yes"
			}
		}
		fmt.Fprintf(&tb, "| %s | %.1f MB | %.1f MB | %.1f MB | %.2fx | %s |\n", r.Arch,
			float64(r.Edged)/(1<<20), float64(r.Edgectl)/(1<<20), float64(r.Serf)/(1<<20), float64(r.Edged)/float64(r.Serf), goal)
	}
	fmt.Printf("\n%s\n", tb.String())
	commit, dirty := gitCommit()
	res := struct {
		Date   string    `json:"date"`
		Commit string    `json:"commit"`
		Dirty  bool      `json:"dirty"`
		Flags  string    `json:"flags"`
		Rows   []sizeRow `json:"rows"`
	}{time.Now().Format("2006-01-02"), commit, dirty, "CGO_ENABLED=0 -trimpath -ldflags '-s -w'", rows}
	path, err := writeJSON("results", "size-", res.Date+"-"+commit, res)
	if err != nil {
		b.Errorf("write results: %v", err)
		return
	}
	fmt.Printf("results: %s\n", path)
}
