package daemon

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestLoadConfigGood loads the valid configs of testdata/config/ok_*.yaml
// and compares every field.
func TestLoadConfigGood(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		want Config
	}{
		{
			file: "testdata/config/ok_full.yaml",
			want: Config{
				Path:          "testdata/config/ok_full.yaml",
				Node:          "edge-01",
				Site:          "plant-7",
				DataDir:       "/srv/edged",
				Socket:        "/run/edged/api.sock",
				Interface:     "eth1",
				AdvertiseAddr: netip.MustParseAddr("10.0.0.11"),
				GossipPort:    7950,
				// Relative: resolved next to the config file.
				KeyFile:         filepath.Join("testdata", "config", "gossip.key"),
				Seeds:           []string{"10.0.0.12:7946", "[fd00::13]:7946", "edge-04.local:7946"},
				LogLevel:        "debug",
				RaftPort:        7960,
				TLSCA:           filepath.Join("testdata", "config", "tls", "ca.crt"),
				TLSCert:         "/etc/edged/tls/edge-01.crt",
				TLSKey:          "/etc/edged/tls/edge-01.key",
				BootstrapExpect: 5,
				Devices: []DeviceConfig{
					{Name: "radio1", Driver: "line", Port: "/dev/ttyUSB0", Profile: filepath.Join("testdata", "config", "radio-x200")},
					{Name: "rect1", Driver: "modbus", Port: "/dev/ttyUSB1", Profile: filepath.Join("testdata", "config", "rectifier-r48")},
					{Name: "sim1", Driver: "sim", Link: "pty"},
				},
			},
		},
		{
			// Only the required keys: everything else takes its default.
			file: "testdata/config/ok_minimal.yaml",
			want: Config{
				Path:            "testdata/config/ok_minimal.yaml",
				Node:            host,
				Site:            "plant-7",
				DataDir:         DefaultDataDir,
				Socket:          DefaultSocket,
				BootstrapExpect: 3,
				GossipPort:      DefaultGossipPort,
				KeyFile:         "/etc/edged/gossip.key", // absolute: kept as is
				LogLevel:        "info",
			},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			got, err := LoadConfig(tt.file)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LoadConfig:\n got %+v\nwant %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate of a loaded config: %v", err)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if c.Node != host || c.GossipPort != 7946 || c.DataDir != "/var/lib/edged" ||
		c.Socket != "/run/edged/edged.sock" || c.LogLevel != "info" {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	if c.Site != "" || c.KeyFile != "" {
		t.Errorf("DefaultConfig() has a site or key_file: %+v", c)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		data    string
		keyFile string
		wantErr string
	}{
		{
			name:    "relative key_file next to the config",
			file:    "/etc/edged/edged.yaml",
			data:    "site: s\nkey_file: keys/gossip.key\n",
			keyFile: "/etc/edged/keys/gossip.key",
		},
		{
			name:    "absolute key_file kept",
			file:    "/etc/edged/edged.yaml",
			data:    "site: s\nkey_file: /secrets/gossip.key\n",
			keyFile: "/secrets/gossip.key",
		},
		{
			name:    "no file name: key_file kept, errors name <config>",
			data:    "site: s\nkey_file: gossip.key\n",
			keyFile: "gossip.key",
		},
		{
			name:    "no file name in errors",
			data:    "site: s\n",
			wantErr: "<config>: key_file: required (create one with `edgectl keygen > /etc/edged/gossip.key`)",
		},
		{
			name:    "gossip_port in hex",
			data:    "site: s\nkey_file: k\ngossip_port: 0x1F90\n",
			keyFile: "k",
		},
		{
			name:    "gossip_port quoted is a string",
			data:    "site: s\nkey_file: k\ngossip_port: \"7946\"\n",
			wantErr: `<config>:3: gossip_port: want an integer 1-65535, got "7946"`,
		},
		{
			name:    "gossip_port with bad underscores",
			data:    "site: s\nkey_file: k\ngossip_port: 1__0\n",
			wantErr: `<config>:3: gossip_port: must be 1-65535, got 1__0`,
		},
		{
			name:    "null value",
			data:    "site:\nkey_file: k\n",
			wantErr: `<config>:1: site: want a string, got nothing`,
		},
		{
			name:    "empty site",
			data:    "site: \"\"\nkey_file: k\n",
			wantErr: `<config>:1: site: required`,
		},
		{
			name:    "bad node name",
			data:    "node: a/b\nsite: s\nkey_file: k\n",
			wantErr: `<config>:1: node: "a/b" is not a valid node name (letters, digits, '.', '_', '-', at most 63)`,
		},
		{
			name:    "alias is not a value",
			data:    "node: &n edge-01\nsite: *n\nkey_file: k\n",
			wantErr: `<config>:2: site: want a string, got an alias`,
		},
		{
			name:    "mapping as a key",
			data:    "site: s\nkey_file: k\n? {a: 1}\n: x\n",
			wantErr: `<config>:3: keys must be plain words`,
		},
		{
			name:    "seed not a string, reported once",
			data:    "site: s\nkey_file: k\nseeds: [~, [a]]\n",
			wantErr: "<config>:3: seeds[0]: want a string, got nothing\n<config>:3: seeds[1]: want a string, got a list",
		},
		{
			name:    "seed port out of range",
			data:    "site: s\nkey_file: k\nseeds:\n  - h:0\n  - h:65536\n  - :7946\n",
			wantErr: "<config>:4: seeds[0]: port must be 1-65535 in \"h:0\"\n<config>:5: seeds[1]: port must be 1-65535 in \"h:65536\"\n<config>:6: seeds[2]: want host:port, got \":7946\" (no host)",
		},
		{
			name:    "syntax: stray bracket on line 3",
			data:    "site: s\nkey_file: k\n]\n",
			wantErr: `<config>:3: did not find expected key`,
		},
		{
			name:    "syntax: stray bracket on line 1",
			data:    "]\n",
			wantErr: `<config>:1: did not find expected node content`,
		},
		{
			name:    "syntax: unclosed flow mapping",
			data:    "site: s\nkey_file: k\ndevices: {name: a\n",
			wantErr: `<config>:3: did not find expected ',' or '}'`,
		},
		{
			name:    "syntax: indented key",
			data:    "site: s\nkey_file: k\n  bad: x\n",
			wantErr: `<config>:3: mapping values are not allowed in this context`,
		},
		{
			name:    "syntax: tab",
			data:    "site: s\n\tkey_file: k\n",
			wantErr: `<config>:2: found a tab character that violates indentation`,
		},
		{
			name:    "syntax: undefined tag handle",
			data:    "site: s\nkey_file: !x!y k\n",
			wantErr: `<config>:2: found undefined tag handle`,
		},
		{
			name:    "unknown anchor",
			data:    "site: s\nkey_file: *nope\n",
			wantErr: `<config>: unknown anchor 'nope' referenced`,
		},
		{
			name:    "control character",
			data:    "site: \x01\n",
			wantErr: `<config>: control characters are not allowed`,
		},
		{
			name:    "devices not a list",
			data:    "site: s\nkey_file: k\ndevices: {name: a}\n",
			wantErr: `<config>:3: devices: want a list, got a mapping`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(tt.file, []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseConfig = %+v, want error %q", got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("ParseConfig error:\n got %q\nwant %q", err, tt.wantErr)
				}
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("error %T is not a *ConfigError", err)
				}
				if !reflect.DeepEqual(got, Config{}) {
					t.Errorf("ParseConfig returned a half-filled config with its error: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if got.KeyFile != tt.keyFile {
				t.Errorf("KeyFile = %q, want %q", got.KeyFile, tt.keyFile)
			}
		})
	}
}

// errLineRE is the shape of every line of a config error:
// file[:line]: [key: ]message.
var errLineRE = regexp.MustCompile(`^testdata/config/[a-z_]+\.yaml(:[1-9][0-9]*)?: \S.*$`)

// TestLoadConfigErrors loads every testdata/config/bad_*.yaml and compares
// the error, one line per problem, with the .golden file next to it. Run
// with -update to rewrite the golden files, then read the diff: the line
// numbers must point at the mistake.
func TestLoadConfigErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/config/bad_*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d bad_*.yaml files, want at least 20", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadConfig(file)
			if err == nil {
				t.Fatalf("LoadConfig = %+v, want an error", cfg)
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("LoadConfig returned a half-filled config with its error: %+v", cfg)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *ConfigError", err)
			}
			got := err.Error() + "\n"
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !errLineRE.MatchString(line) {
					t.Errorf("error line %q is not file:line: key: message", line)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("LoadConfig(%s) error:\n got:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	data := append([]byte("site: s\nkey_file: k\n#"), bytes.Repeat([]byte("x"), MaxConfigSize)...)
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "config: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
		{"too large", big, "config " + big + ": larger than 1048576 bytes"},
		{"a folder", dir, "config " + dir + ": read " + dir + ": is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(tt.path)
			if err == nil || err.Error() != tt.want {
				t.Errorf("LoadConfig(%s) error = %v, want %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := DefaultConfig()
	good.Node = "n1"
	good.Site = "s"
	good.KeyFile = "/k"
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"good", func(*Config) {}, ""},
		{"no site", func(c *Config) { c.Site = "" }, "site: required"},
		{"no key", func(c *Config) { c.KeyFile = "" }, "key_file: required"},
		{"port 0", func(c *Config) { c.GossipPort = 0 }, "gossip_port: must be 1-65535, got 0"},
		{"port high", func(c *Config) { c.GossipPort = 65536 }, "gossip_port: must be 1-65535, got 65536"},
		{"no data_dir", func(c *Config) { c.DataDir = "" }, "data_dir: must not be empty"},
		{"no socket", func(c *Config) { c.Socket = "" }, "socket: must not be empty"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"a:1", "b"} }, `seeds[1]: want host:port, got "b"`},
		{"long node", func(c *Config) { c.Node = strings.Repeat("n", 64) }, "node: "},
		{"bad site", func(c *Config) { c.Site = "a b" }, `site: "a b" is not a valid site name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("Validate error = %v, want it to start with %q", err, tt.want)
			}
		})
	}
}

const goodKey = "TIzG2J2V5WcHTcSCGDp5q2uyDVT4bHWv+Om4nSmWYVQ="

func TestParseKey(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // error; "" for a good key
	}{
		{"good", goodKey, ""},
		{"good with newline", goodKey + "\n", ""},
		{"good with spaces", "  " + goodKey + " \r\n", ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "key_file k: want a 32-byte key, got 16 bytes (create one with `edgectl keygen`)"},
		{"33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), "key_file k: want a 32-byte key, got 33 bytes (create one with `edgectl keygen`)"},
		{"not base64", "this is not a key!", "key_file k: not base64: illegal base64 data at input byte 4"},
		{"url alphabet", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "key_file k: not base64: "},
		{"empty", "", "key_file k: empty (create one with `edgectl keygen`)"},
		{"blank", " \n\t\n", "key_file k: empty (create one with `edgectl keygen`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseKey("k", tt.text)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if len(key) != 32 {
					t.Errorf("key has %d bytes, want 32", len(key))
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("ParseKey error = %v, want %q", err, tt.want)
			}
			if key != nil {
				t.Errorf("ParseKey returned a key with its error")
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", goodKey+"\n")
	big := write("big.key", strings.Repeat(goodKey+"\n", 100))
	short := write("short.key", "AAAA\n")
	empty := write("empty.key", "")
	missing := filepath.Join(dir, "missing.key")
	tests := []struct {
		name string
		path string
		want string
	}{
		{"good", good, ""},
		{"too large", big, "key_file " + big + ": too large for a key"},
		{"wrong length", short, "key_file " + short + ": want a 32-byte key, got 3 bytes"},
		{"empty", empty, "key_file " + empty + ": empty"},
		{"missing", missing, "key_file: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := LoadKey(tt.path)
			if tt.want == "" {
				want, _ := base64.StdEncoding.DecodeString(goodKey)
				if err != nil || !bytes.Equal(key, want) {
					t.Errorf("LoadKey = %x, %v; want %x", key, err, want)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("LoadKey error = %v, want %q", err, tt.want)
			}
			if tt.name == "missing" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("LoadKey error %v is not os.ErrNotExist", err)
			}
		})
	}
}

// FuzzParseConfig: the parser never panics, and it either refuses the input
// with ConfigErrors naming the file, or returns a config that is valid.
func FuzzParseConfig(f *testing.F) {
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Fatalf("config returned with an error: %+v", cfg)
			}
			for _, e := range unjoin(err) {
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %T %q is not a *ConfigError", e, e)
				}
				if ce.File != "fuzz.yaml" || ce.Msg == "" || ce.Line < 0 {
					t.Fatalf("bad ConfigError %+v", ce)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config that fails Validate: %v\n%+v", err, cfg)
		}
		if cfg.Path != "fuzz.yaml" {
			t.Fatalf("Path = %q", cfg.Path)
		}
	})
}

// FuzzParseKey: never panics; a key it accepts has 32 bytes.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{goodKey, goodKey + "\n", "", "AAAA", "!!!", goodKey[:40], goodKey + goodKey} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		key, err := ParseKey("k", text)
		if err != nil {
			if key != nil || !strings.HasPrefix(err.Error(), "key_file k: ") {
				t.Fatalf("ParseKey(%q) = %x, %v", text, key, err)
			}
			return
		}
		if len(key) != 32 {
			t.Fatalf("ParseKey(%q) accepted %d bytes", text, len(key))
		}
		again, err := ParseKey("k", base64.StdEncoding.EncodeToString(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("round trip of %x: %x, %v", key, again, err)
		}
	})
}

func TestParseMetricsAddress(t *testing.T) {
	tests := []struct {
		name, value, want, wantErr string
	}{
		{name: "off by default"},
		{name: "loopback", value: "127.0.0.1:9464", want: "127.0.0.1:9464"},
		{name: "IPv6 loopback", value: `"[::1]:9464"`, want: "[::1]:9464"},
		{name: "site network address", value: "192.0.2.11:9464", want: "192.0.2.11:9464"},
		{name: "no host", value: `":9464"`, wantErr: `<config>:3: metrics_address: want host:port, got ":9464" (no host)`},
		{name: "no port", value: "127.0.0.1", wantErr: `<config>:3: metrics_address: want host:port, got "127.0.0.1"`},
		{name: "port out of range", value: "127.0.0.1:65536", wantErr: `<config>:3: metrics_address: port must be 1-65535 in "127.0.0.1:65536"`},
		{name: "not a string", value: "[a]", wantErr: `<config>:3: metrics_address: want a string, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "site: s\nkey_file: k\n"
			if tt.value != "" {
				data += "metrics_address: " + tt.value + "\n"
			}
			got, err := ParseConfig("", []byte(data))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseConfig error:\n got %v\nwant %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.MetricsAddress != tt.want {
				t.Errorf("MetricsAddress = %q, want %q", got.MetricsAddress, tt.want)
			}
		})
	}
}
