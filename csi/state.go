package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// staged is what the node keeps of a staged volume: the kernel does not
// say which export a /dev/nbdN serves, and a stage retried after a
// driver restart must find the device the first try attached.
type staged struct {
	Device string `json:"device"`
	// Published are the target paths the volume is published at, with
	// whether each is the only writer (SINGLE_NODE_SINGLE_WRITER), which
	// excludes any other target.
	Published map[string]bool `json:"published,omitempty"`
}

// statePath names a volume's state file by its thind name (ids hold a
// '/'). Any other id gets a name no thind name has ('+' is not in one),
// so that it never reaches a volume of this node's state.
func (d *Driver) statePath(id string) string {
	node, name, ok := SplitID(id)
	if !ok || node != d.cfg.NodeID {
		sum := sha256.Sum256([]byte(id))
		name = "+" + hex.EncodeToString(sum[:])
	}
	return filepath.Join(d.cfg.StateDir, name+".json")
}

func (d *Driver) loadStaged(id string) (staged, bool, error) {
	return loadStateFile(d.statePath(id))
}

func loadStateFile(path string) (staged, bool, error) {
	var s staged
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil || !strings.HasPrefix(s.Device, "/dev/") {
		return s, false, fmt.Errorf("state at %s: unreadable (%v)", path, err)
	}
	return s, true, nil
}

// saveStaged writes the state durably (rename over a synced file), so a
// crash leaves the old state or the new one.
func (d *Driver) saveStaged(id string, s staged) error {
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp := d.statePath(id) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, d.statePath(id))
	}
	return err
}

func (d *Driver) dropStaged(id string) error {
	err := os.Remove(d.statePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// takenDevices are the devices of every recorded volume, attached or
// about to be.
func (d *Driver) takenDevices() (map[string]bool, error) {
	names, err := filepath.Glob(filepath.Join(d.cfg.StateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, n := range names {
		s, ok, err := loadStateFile(n)
		if err != nil {
			return nil, err
		}
		if ok {
			taken[s.Device] = true
		}
	}
	return taken, nil
}
