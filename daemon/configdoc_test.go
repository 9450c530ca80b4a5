package daemon

import (
	"bytes"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"edge/coord/site"
)

// The reference tables must list exactly the keys the parsers know. The
// parsers are read as source: every `case "key":` of the key switches of
// ParseConfig and parser.devices (node config), and of site.Parse,
// parser.policy and parser.constraints (site document).

// switchKeys returns the string cases of the switches on a plain variable
// (switch key {...}) inside the named function (recv "" for a function,
// else the receiver's type name without '*') of the Go files of dir.
func switchKeys(t *testing.T, dir string, files []string, fn, recv string) []string {
	t.Helper()
	fset := token.NewFileSet()
	var keys []string
	found := false
	for _, f := range files {
		file, err := goparser.ParseFile(fset, filepath.Join(dir, f), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != fn || recvName(fd) != recv {
				continue
			}
			found = true
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				sw, ok := n.(*ast.SwitchStmt)
				if !ok {
					return true
				}
				if _, ok := sw.Tag.(*ast.Ident); !ok {
					return true
				}
				for _, s := range sw.Body.List {
					for _, e := range s.(*ast.CaseClause).List {
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, err := strconv.Unquote(lit.Value)
							if err != nil {
								t.Fatal(err)
							}
							keys = append(keys, v)
						}
					}
				}
				return true
			})
		}
	}
	if !found {
		t.Fatalf("no func %s (receiver %q) in %s %v: the test reads the parser's source; update it", fn, recv, dir, files)
	}
	if len(keys) == 0 {
		t.Fatalf("no case \"key\": in %s: the test reads the parser's source; update it", fn)
	}
	slices.Sort(keys)
	return keys
}

func recvName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	tp := fd.Recv.List[0].Type
	if st, ok := tp.(*ast.StarExpr); ok {
		tp = st.X
	}
	if id, ok := tp.(*ast.Ident); ok {
		return id.Name
	}
	return "?"
}

// tableKeys lists the keys of table under prefix, without it; only keys
// with no further '.' or "[]" below the prefix.
func tableKeys(table []ConfigKey, prefix string) []string {
	var out []string
	for _, k := range table {
		rest, ok := strings.CutPrefix(k.Key, prefix)
		if !ok || strings.ContainsAny(rest, ".[") {
			continue
		}
		out = append(out, rest)
	}
	slices.Sort(out)
	return out
}

func compareKeys(t *testing.T, what, parserName string, table, parsed []string) {
	t.Helper()
	for _, k := range parsed {
		if !slices.Contains(table, k) {
			t.Errorf("%s: the parser (%s) knows %q but the reference table does not: add it to daemon/configdoc.go", what, parserName, k)
		}
	}
	for _, k := range table {
		if !slices.Contains(parsed, k) {
			t.Errorf("%s: the reference table has %q but the parser (%s) does not know it", what, k, parserName)
		}
	}
}

func TestConfigDocKeysMatchParsers(t *testing.T) {
	compareKeys(t, "node config", "ParseConfig in daemon/config.go",
		tableKeys(NodeConfigKeys, ""), switchKeys(t, ".", []string{"config.go"}, "ParseConfig", ""))
	compareKeys(t, "node config devices", "parser.devices in daemon/config.go",
		tableKeys(DeviceConfigKeys, "devices[]."), switchKeys(t, ".", []string{"config.go"}, "devices", "parser"))
	for _, k := range DeviceConfigKeys {
		if !strings.HasPrefix(k.Key, "devices[].") {
			t.Errorf("DeviceConfigKeys: %q does not start with devices[].", k.Key)
		}
	}

	siteDir := filepath.Join("..", "coord", "site")
	siteFiles := goFiles(t, siteDir)
	compareKeys(t, "site document", "site.Parse",
		tableKeys(SiteDocumentKeys, ""), switchKeys(t, siteDir, siteFiles, "Parse", ""))
	compareKeys(t, "site document policy", "parser.policy in coord/site",
		tableKeys(SiteDocumentKeys, "policy."), switchKeys(t, siteDir, siteFiles, "policy", "parser"))
	compareKeys(t, "site document constraints", "parser.constraints in coord/site",
		tableKeys(SiteDocumentKeys, "constraints[]."), switchKeys(t, siteDir, siteFiles, "constraints", "parser"))
	// Nothing in the site table escapes the three checks above.
	for _, k := range SiteDocumentKeys {
		rest := strings.TrimPrefix(strings.TrimPrefix(k.Key, "policy."), "constraints[].")
		if strings.ContainsAny(rest, ".[") {
			t.Errorf("SiteDocumentKeys: %q is not a key the test can check", k.Key)
		}
	}
}

func goFiles(t *testing.T, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.go") {
			out = append(out, filepath.Base(f))
		}
	}
	return out
}

// Documents built around one key: the smallest valid file, the key's
// fragment laid over it.

var nodeBase = []string{"site: lab", "key_file: /etc/edged/gossip.key"}

// nodeDoc is a node config holding k's snippet; without drops k itself
// (and only it) to see what its absence does.
func nodeDoc(k ConfigKey, without bool) string {
	snip := NodeSnippet(k)
	dropped := map[string]bool{k.Key: true}
	for _, l := range k.With {
		dropped[topKey(l)] = true
	}
	if without {
		snip = strings.Join(k.With, "\n") + "\n"
		if strings.HasPrefix(k.Key, "devices[].") {
			snip = "devices:\n  - " + strings.Join(k.With, "\n    ") + "\n"
		}
	}
	var b strings.Builder
	for _, l := range nodeBase {
		if !dropped[topKey(l)] {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString(snip)
	return b.String()
}

func topKey(line string) string { k, _, _ := strings.Cut(line, ":"); return k }

var siteBase = []string{"version: 1", "site: lab", "nodes: {node1: {radio0: {frequency_mhz: 3550}}}"}

func siteDoc(k ConfigKey, without bool) string {
	snip := SiteSnippet(k)
	if without {
		snip = ""
		if strings.HasPrefix(k.Key, "policy.") && len(k.With) > 0 {
			snip = "policy:\n  " + strings.Join(k.With, "\n  ") + "\n"
		}
	}
	var b strings.Builder
	for _, l := range siteBase {
		if topKey(l) != k.Key {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString(snip)
	return b.String()
}

func with(k ConfigKey, value string) ConfigKey {
	k.Example = value
	return k
}

// parseFor parses the document that tests k: the node config, or the site
// document for the site table.
type parseFunc func(k ConfigKey, without bool) (any, error)

func parseNode(k ConfigKey, without bool) (any, error) {
	return ParseConfig("edged.yaml", []byte(nodeDoc(k, without)))
}

func parseSite(k ConfigKey, without bool) (any, error) {
	d, err := site.Parse("site.yaml", []byte(siteDoc(k, without)))
	if err != nil {
		return nil, err
	}
	return d.Policy, nil
}

type table struct {
	name  string
	keys  []ConfigKey
	parse parseFunc
	doc   func(ConfigKey, bool) string
}

func tables() []table {
	return []table{
		{"node config", NodeConfigKeys, parseNode, nodeDoc},
		{"devices", DeviceConfigKeys, parseNode, nodeDoc},
		{"site document", SiteDocumentKeys, parseSite, siteDoc},
	}
}

// Every example parses; a required key's absence is refused, naming it.
func TestConfigDocExamplesParse(t *testing.T) {
	for _, tb := range tables() {
		for _, k := range tb.keys {
			t.Run(k.Key, func(t *testing.T) {
				if k.Example == "" || k.Doc == "" || k.Type == "" {
					t.Fatalf("%s: Example, Doc and Type are required", k.Key)
				}
				if _, err := tb.parse(k, false); err != nil {
					t.Errorf("the example does not parse:\n%s\n%v", tb.doc(k, false), err)
				}
				if !k.Required {
					return
				}
				_, err := tb.parse(k, true)
				leaf := k.Key[strings.LastIndexAny(k.Key, ".]")+1:]
				if err == nil || !strings.Contains(err.Error(), leaf) {
					t.Errorf("required, but a file without it gives %v:\n%s", err, tb.doc(k, true))
				}
			})
		}
	}
}

// Ranges: both bounds parse, one step outside each is refused. Enums: each
// value parses, another word is refused, and where the parser lists its
// words in the error they are the table's.
func TestConfigDocRangesAndValues(t *testing.T) {
	oneOf := regexp.MustCompile(`must be one of ([^,]+), got`)
	for _, tb := range tables() {
		for _, k := range tb.keys {
			if k.Min == "" && k.Max == "" && len(k.Values) == 0 {
				continue
			}
			t.Run(k.Key, func(t *testing.T) {
				accept := func(v string) {
					t.Helper()
					if _, err := tb.parse(with(k, v), false); err != nil {
						t.Errorf("%s: %s is allowed by the table, the parser refuses it: %v", k.Key, v, err)
					}
				}
				refuse := func(v string) error {
					t.Helper()
					_, err := tb.parse(with(k, v), false)
					if err == nil {
						t.Errorf("%s: %s is outside the table's %s, the parser takes it", k.Key, v, k.AllowedText())
					}
					return err
				}
				if k.Min != "" || k.Max != "" {
					accept(k.Min)
					accept(k.Max)
					below, above := outside(t, k)
					refuse(below)
					refuse(above)
				}
				for _, v := range k.Values {
					accept(v)
				}
				if len(k.Values) > 0 {
					err := refuse("not-a-value")
					if m := oneOf.FindStringSubmatch(errString(err)); m != nil && m[1] != strings.Join(k.Values, "|") {
						t.Errorf("%s: the parser takes %s, the table lists %s", k.Key, m[1], strings.Join(k.Values, "|"))
					}
				}
			})
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// outside returns a value just below Min and just above Max.
func outside(t *testing.T, k ConfigKey) (string, string) {
	t.Helper()
	lo, err1 := strconv.ParseInt(k.Min, 10, 64)
	hi, err2 := strconv.ParseInt(k.Max, 10, 64)
	if err1 == nil && err2 == nil {
		return strconv.FormatInt(lo-1, 10), strconv.FormatInt(hi+1, 10)
	}
	dlo, err1 := time.ParseDuration(k.Min)
	dhi, err2 := time.ParseDuration(k.Max)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: Min %q and Max %q must both be integers or durations", k.Key, k.Min, k.Max)
	}
	return (dlo - time.Nanosecond).String(), (dhi + time.Nanosecond).String()
}

// A Default written out gives the same result as leaving the key out.
func TestConfigDocDefaults(t *testing.T) {
	for _, tb := range tables() {
		for _, k := range tb.keys {
			if k.Default == "" {
				if k.DefaultText == "" && !k.Required {
					t.Errorf("%s: no Default, DefaultText or Required: the reference would show nothing", k.Key)
				}
				continue
			}
			if k.Required || k.DefaultText != "" {
				t.Errorf("%s: Default excludes DefaultText and Required", k.Key)
			}
			t.Run(k.Key, func(t *testing.T) {
				absent, err := tb.parse(k, true)
				if err != nil {
					t.Fatalf("without the key: %v\n%s", err, tb.doc(k, true))
				}
				given, err := tb.parse(with(k, k.Default), false)
				if err != nil {
					t.Fatalf("with the default written out: %v", err)
				}
				if !reflect.DeepEqual(absent, given) {
					t.Errorf("%s: the table's default %s is not the parser's:\nabsent: %+v\nwritten: %+v", k.Key, k.Default, absent, given)
				}
			})
		}
	}
}

// The driver list in the table is the registry's.
func TestConfigDocDrivers(t *testing.T) {
	var k ConfigKey
	for _, d := range DeviceConfigKeys {
		if d.Key == "devices[].driver" {
			k = d
		}
	}
	words := regexp.MustCompile("`([a-z]+)`").FindAllStringSubmatch(k.Allowed, -1)
	var listed []string
	for _, w := range words {
		listed = append(listed, w[1])
	}
	slices.Sort(listed)
	have := Drivers().Drivers()
	slices.Sort(have)
	if !slices.Equal(listed, have) {
		t.Errorf("devices[].driver lists %v, edged registers %v", listed, have)
	}
}

// restartKeys reads daemon.go's Reload: the names it appends to the list of
// keys that wait for a restart, as patterns ("data_dir/socket" is two).
// always holds those written as string literals; sometimes those that come
// from a constant, which Reload names only in some cases (tlsOnOff: TLS
// turned on or off).
func restartKeys(t *testing.T) (always, sometimes []string) {
	t.Helper()
	fset := token.NewFileSet()
	consts := map[string]string{}
	var reload *ast.FuncDecl
	for _, f := range goFiles(t, ".") {
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Name.Name == "Reload" && recvName(d) == "Daemon" {
					reload = d
				}
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, sp := range d.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
	}
	if reload == nil {
		t.Fatal("no (*Daemon).Reload in package daemon: the test reads its source; update it")
	}
	names := func(s string) []string {
		s, _, _ = strings.Cut(s, " (") // "tls_ca/tls_cert/tls_key (turned on or off)"
		return strings.Split(s, "/")
	}
	ast.Inspect(reload.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "append" {
			return true
		}
		if id, ok := call.Args[0].(*ast.Ident); !ok || id.Name != "restart" {
			return true
		}
		switch a := call.Args[1].(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(a.Value)
			always = append(always, names(s)...)
		case *ast.Ident:
			s, ok := consts[a.Name]
			if !ok {
				t.Fatalf("Reload: append(restart, %s): not a string constant of package daemon", a.Name)
			}
			sometimes = append(sometimes, names(s)...)
		default:
			t.Fatalf("Reload: append(restart, %T): the test reads string literals and constants; update it", a)
		}
		return true
	})
	if len(always) == 0 {
		t.Fatal("no append(restart, \"key\") in (*Daemon).Reload: the test reads its source; update it")
	}
	return always, sometimes
}

func matchAny(pats []string, key string) bool {
	for _, p := range pats {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

// Keys the reference says need a restart are those Reload names as
// waiting for one; the others it applies, and those it names only in some
// cases say which in EffectNote.
func TestConfigDocReloadEffect(t *testing.T) {
	always, sometimes := restartKeys(t)
	for _, k := range append(slices.Clone(NodeConfigKeys), DeviceConfigKeys...) {
		switch {
		case k.Effect == OnApply:
			t.Errorf("%s: a node config key cannot take effect on apply", k.Key)
		case matchAny(always, k.Key):
			if k.Effect != OnRestart {
				t.Errorf("%s: the table says %s, Reload logs that it waits for a restart", k.Key, k.Effect)
			}
		case matchAny(sometimes, k.Key):
			if k.Effect != OnReload || !strings.Contains(k.EffectNote, "restart") {
				t.Errorf("%s: Reload names it as waiting for a restart in some cases: want Effect reload and an EffectNote saying when it needs a restart", k.Key)
			}
		case k.Effect == OnRestart:
			t.Errorf("%s: the table says restart, Reload does not name it (%v)", k.Key, always)
		case k.EffectNote != "":
			t.Errorf("%s: EffectNote %q, but Reload never names it", k.Key, k.EffectNote)
		}
	}
	for _, k := range SiteDocumentKeys {
		if k.Effect != OnApply {
			t.Errorf("%s: a site document key takes effect on apply", k.Key)
		}
	}
}

// docs/config-reference.md is the rendered tables; EDGE_UPDATE_DOCS=1
// rewrites it.
func TestConfigReference(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderConfigReference(&buf); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("..", "docs", "config-reference.md")
	if os.Getenv("EDGE_UPDATE_DOCS") != "" {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v: run EDGE_UPDATE_DOCS=1 go test ./daemon -run TestConfigReference", err)
	}
	if !bytes.Equal(have, buf.Bytes()) {
		t.Errorf("%s differs from daemon/configdoc.go: run EDGE_UPDATE_DOCS=1 go test ./daemon -run TestConfigReference", file)
	}
	// Every relative link goes to a file of docs/, and every anchor in the
	// page to one of its headings.
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.*)$`).FindAllStringSubmatch(buf.String(), -1) {
		anchors[slug(m[1], seen)] = true
	}
	for _, m := range regexp.MustCompile(`\]\(([^)]*)\)`).FindAllStringSubmatch(buf.String(), -1) {
		target := m[1]
		if a, ok := strings.CutPrefix(target, "#"); ok {
			if !anchors[a] {
				t.Errorf("link to #%s: no such heading", a)
			}
			continue
		}
		f, _, _ := strings.Cut(target, "#")
		if _, err := os.Stat(filepath.Join("..", "docs", f)); err != nil {
			t.Errorf("link to %s: %v", target, err)
		}
	}
}

func TestSlug(t *testing.T) {
	seen := map[string]int{}
	for _, c := range []struct{ in, want string }{
		{"`gossip_port`", "gossip_port"},
		{"`devices[].baud`", "devicesbaud"},
		{"Node config: `/etc/edged/edged.yaml`", "node-config-etcedgededgedyaml"},
		{"`site`", "site"},
		{"`site`", "site-1"},
	} {
		if got := slug(c.in, seen); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
