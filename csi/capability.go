package csi

import (
	"fmt"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
)

// Filesystems NodeStageVolume can make.
var filesystems = []string{"ext4", "xfs"}

// defaultFS is the filesystem of a mount volume that names none.
const defaultFS = "ext4"

// checkCapabilities reports why the volume cannot serve caps, or nil. A
// node-local volume serves one node: every single-node mode, no
// multi-node one.
func checkCapabilities(caps []*csipb.VolumeCapability) error {
	if len(caps) == 0 {
		return fmt.Errorf("no volume capabilities")
	}
	for _, c := range caps {
		if err := checkCapability(c); err != nil {
			return err
		}
	}
	return nil
}

func checkCapability(c *csipb.VolumeCapability) error {
	if c == nil {
		return fmt.Errorf("empty volume capability")
	}
	switch m := c.GetAccessMode().GetMode(); m {
	case csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
	case csipb.VolumeCapability_AccessMode_UNKNOWN:
		return fmt.Errorf("no access mode")
	default:
		return fmt.Errorf("access mode %s: a thind volume lives on one node", m)
	}
	switch t := c.GetAccessType().(type) {
	case *csipb.VolumeCapability_Block:
	case *csipb.VolumeCapability_Mount:
		if fs := t.Mount.GetFsType(); fs != "" && !slices.Contains(filesystems, fs) {
			return fmt.Errorf("filesystem %q: want one of %v", fs, filesystems)
		}
	default:
		return fmt.Errorf("no access type (block or mount)")
	}
	return nil
}
