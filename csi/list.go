package csi

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/control"
)

// page cuts the driver's objects of one kind into pages. The token is the
// id the previous page ended with: the thind names of one node sort, so a page starts after it
// whatever was created or deleted meanwhile, and no object is listed
// twice.
func (d *Driver) page(ctx context.Context, kind string, maxEntries int32, token string, keep func(control.Volume) bool) ([]control.Volume, string, error) {
	if maxEntries < 0 {
		return nil, "", invalid("max_entries %d: negative", maxEntries)
	}
	isName := isVolumeName
	if kind == KindSnapshot {
		isName = isSnapshotName
	}
	after := ""
	if token != "" {
		name, ours, err := d.nameOf(token)
		if err != nil || !ours || !isName(name) {
			return nil, "", status.Errorf(codes.Aborted, "starting token %q: not one this driver gave", token)
		}
		after = name
	}
	vols, err := d.c.Volumes(ctx, map[string]string{LabelKind: kind})
	if err != nil {
		return nil, "", grpcError("list "+kind+"s", err)
	}
	slices.SortFunc(vols, func(a, b control.Volume) int { return strings.Compare(a.Name, b.Name) })
	var out []control.Volume
	for _, v := range vols {
		if !isName(v.Name) || v.Name <= after || keep != nil && !keep(v) {
			continue
		}
		if maxEntries > 0 && len(out) == int(maxEntries) {
			return out, d.id(out[len(out)-1].Name), nil
		}
		out = append(out, v)
	}
	return out, "", nil
}
