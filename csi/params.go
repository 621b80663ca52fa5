package csi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// StorageClass parameters the driver takes. The CO passes the same map to
// CreateVolume and GetCapacity.
const (
	// ParamFSType is the filesystem of mount volumes (ext4 or xfs), used
	// where the volume capability names none.
	ParamFSType = "fsType"
	// ParamReadOnly "true" exports the volume read-only.
	ParamReadOnly = "readOnly"
	// ParamOverprovisioning is how many bytes of virtual size GetCapacity
	// offers per byte of pool data space (a ratio of at least 1).
	// Without it, GetCapacity offers the free data space.
	ParamOverprovisioning = "overprovisioningRatio"
)

// reservedParamPrefix marks the keys the CO's sidecars add; they are not
// the driver's to judge.
const reservedParamPrefix = "csi.storage.k8s.io/"

// params are the parsed StorageClass parameters.
type params struct {
	fsType   string
	readOnly bool
	ratio    float64 // 0: not given
}

func parseParams(m map[string]string) (params, error) {
	var p params
	for k, v := range m {
		switch {
		case k == ParamFSType:
			if !slices.Contains(filesystems, v) {
				return p, fmt.Errorf("parameter %s=%q: want one of %v", k, v, filesystems)
			}
			p.fsType = v
		case k == ParamReadOnly:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return p, fmt.Errorf("parameter %s=%q: want true or false", k, v)
			}
			p.readOnly = b
		case k == ParamOverprovisioning:
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || !(r >= 1 && r <= 1000) {
				return p, fmt.Errorf("parameter %s=%q: want a ratio from 1 to 1000", k, v)
			}
			p.ratio = r
		case strings.HasPrefix(k, reservedParamPrefix):
		default:
			return p, fmt.Errorf("unknown parameter %q (want %s, %s or %s)", k, ParamFSType, ParamReadOnly, ParamOverprovisioning)
		}
	}
	return p, nil
}
