package change

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"

	"edge/hardware"
)

// Entry is what the node last put on its hardware, written before it is
// applied: enough to finish or restore after a crash without the cluster.
type Entry struct {
	Gen      uint64 `json:"gen"`
	ChangeID string `json:"change_id,omitempty"`
	Base     uint64 `json:"base"`
	// Desired is the generation's settings for this node (site overlay);
	// BaseDesired the base generation's, to revert to.
	Desired     map[string]hardware.Settings `json:"desired"`
	BaseDesired map[string]hardware.Settings `json:"base_desired,omitempty"`
	// ConfirmBy: a tentative generation not confirmed by then is reverted
	// to Base by the node itself. Zero when confirmed.
	ConfirmBy time.Time `json:"confirm_by,omitzero"`
	// Index is the replica's raft index when the entry was written: after a
	// restart the journal holds the hardware until the replica is past it.
	Index   uint64    `json:"index"`
	Written time.Time `json:"written"`
}

// Journal is the node's journal file, written atomically (renameio, then
// the folder fsynced), so a power cut leaves the old or the new entry.
type Journal struct{ path string }

// NewJournal returns the journal at path.
func NewJournal(path string) *Journal { return &Journal{path: path} }

// Load reads the journal; (nil, nil) when there is none.
func (j *Journal) Load() (*Entry, error) {
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var e Entry
	if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&e); err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.path, err)
	}
	normalizeAll(e.Desired)
	normalizeAll(e.BaseDesired)
	return &e, nil
}

// Save writes e atomically.
func (j *Journal) Save(e *Entry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(j.path, data, 0o600); err != nil {
		return fmt.Errorf("journal: write %s: %w", j.path, err)
	}
	d, err := os.Open(filepath.Dir(j.path))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: fsync %s: %w", filepath.Dir(j.path), err)
	}
	return nil
}

// normalizeAll turns JSON's []any back into []string.
func normalizeAll(m map[string]hardware.Settings) {
	for _, s := range m {
		for k, v := range s {
			if l, ok := v.([]any); ok {
				out := make([]string, 0, len(l))
				for _, e := range l {
					out = append(out, fmt.Sprint(e))
				}
				s[k] = out
			}
		}
	}
}
