package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	stateFile    = "lab.json"
	lockFile     = "lab.lock"
	keyFile      = "site.key"
	stateVersion = 1
)

// state is what lab.json holds: enough for another process to operate on the
// lab and to tear it down.
type state struct {
	Version    int    `json:"version"`
	Prefix     string `json:"prefix"`
	Dir        string `json:"dir"`
	Bridge     string `json:"bridge"` // bridge namespace
	Site       string `json:"site"`
	Subnet     string `json:"subnet"`
	GossipPort int    `json:"gossip_port"`
	Edged      string `json:"edged,omitempty"`
	LogLevel   string `json:"log_level,omitempty"`
	KeyFile    string `json:"key_file"`
	// TLSDir holds the site CA when the lab made credentials.
	TLSDir string `json:"tls_dir,omitempty"`
	// BootstrapExpect is written into every node config with credentials.
	BootstrapExpect int         `json:"bootstrap_expect,omitempty"`
	ReadyTimeout    string      `json:"ready_timeout"`
	Env             []string    `json:"env,omitempty"`
	Nodes           []nodeState `json:"nodes"`
	Partition       [][]string  `json:"partition,omitempty"`
	Loss            int         `json:"loss,omitempty"`

	// MetricsPort, when set, is the port of every node's metrics_address.
	MetricsPort int `json:"metrics_port,omitempty"`
}

// nodeState is one node. Entries are written before the node's namespace is
// created, and its pid right after its process started.
type nodeState struct {
	Name      string   `json:"name"`
	Index     int      `json:"index"`
	Namespace string   `json:"namespace"`
	Veth      string   `json:"veth"` // bridge-side peer of eth0
	Addr      string   `json:"addr"`
	Dir       string   `json:"dir"`
	Config    string   `json:"config"`
	Socket    string   `json:"socket"`
	Log       string   `json:"log"`
	Notify    string   `json:"notify"`
	Argv      []string `json:"argv"`
	Env       []string `json:"env,omitempty"`
	NoWait    bool     `json:"no_wait,omitempty"`
	Pid       int      `json:"pid,omitempty"`
	StartTime uint64   `json:"start_time,omitempty"` // /proc/PID/stat field 22, guards against pid reuse
}

func (s *state) node(name string) (*nodeState, error) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("lab: unknown node %q", name)
}

// loadState reads DIR/lab.json. A missing file wraps ErrNoLab.
func loadState(dir string) (state, error) {
	var st state
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("lab: %s: %w", dir, ErrNoLab)
	}
	if err != nil {
		return st, fmt.Errorf("lab: read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("lab: read state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("lab: read state %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return st, nil
}

// saveState writes DIR/lab.json atomically: a temporary file, fsync, rename,
// fsync of the directory.
func saveState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("lab: write state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, stateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab: write state: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir takes the lab's flock, serialising state updates across processes.
// The returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
