package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/thind-storage/thind/catalog"
)

// DriverName is the CSI driver's name, as the CSIDriver object and the
// StorageClass provisioner give it.
const DriverName = "csi.thind.io"

// TopologyKey names a volume's node: every volume lives in that node's
// pool and can be used only there.
const TopologyKey = "topology.csi.thind.io/node"

// Labels the driver puts on the thind volumes it makes.
const (
	// LabelKind is KindVolume or KindSnapshot.
	LabelKind = "csi.thind.io/kind"
	// LabelName is the CSI name, where it is a valid label value.
	LabelName = "csi.thind.io/name"
	// LabelSource is what a volume was made from: "snapshot:NAME" or
	// "volume:NAME" (thind names: a source is in the same pool), absent
	// for an empty volume.
	LabelSource = "csi.thind.io/source"
)

const (
	KindVolume   = "volume"
	KindSnapshot = "snapshot"
)

// The prefixes of names.go's scheme (see the package doc).
const (
	volumePrefix         = "csi-v-"
	volumeHashPrefix     = "csi-vh-"
	snapshotPrefix       = "csi-s-"
	snapshotHashPrefix   = "csi-sh-"
	hashDigits           = 40
	sourcePrefixSnapshot = "snapshot:"
	sourcePrefixVolume   = "volume:"
)

// VolumeName is the thind name of a CSI volume name.
func VolumeName(csiName string) string {
	return mapName(volumePrefix, volumeHashPrefix, csiName)
}

// SnapshotName is the thind name of a CSI snapshot name.
func SnapshotName(csiName string) string {
	return mapName(snapshotPrefix, snapshotHashPrefix, csiName)
}

func mapName(prefix, hashPrefix, name string) string {
	if n := prefix + name; catalog.ValidName(n) == nil {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return hashPrefix + hex.EncodeToString(sum[:])[:hashDigits]
}

// idSep joins a node and a thind name into a CSI id. Kubernetes node
// names are DNS subdomains and thind names are catalog.ValidName words:
// neither holds a '/', so the first one splits an id unambiguously.
const idSep = "/"

// ID is the CSI volume or snapshot id of the thind volume name in node's
// pool (see the package doc).
func ID(node, name string) string { return node + idSep + name }

// SplitID is the node and the thind name of a CSI id; ok is false for an
// id the driver never gave.
func SplitID(id string) (node, name string, ok bool) {
	node, name, ok = strings.Cut(id, idSep)
	return node, name, ok && node != "" && catalog.ValidName(name) == nil
}

// isVolumeName and isSnapshotName tell the driver's thind names from
// other volumes' names.
func isVolumeName(name string) bool {
	return (strings.HasPrefix(name, volumePrefix) || strings.HasPrefix(name, volumeHashPrefix)) && catalog.ValidName(name) == nil
}

func isSnapshotName(name string) bool {
	return (strings.HasPrefix(name, snapshotPrefix) || strings.HasPrefix(name, snapshotHashPrefix)) && catalog.ValidName(name) == nil
}

// labelsFor are the labels of a new volume or snapshot.
func labelsFor(kind, csiName, source string) map[string]string {
	l := map[string]string{LabelKind: kind}
	if catalog.ValidLabel(LabelName, csiName) == nil {
		l[LabelName] = csiName
	}
	if source != "" {
		l[LabelSource] = source
	}
	return l
}
