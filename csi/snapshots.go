package csi

import (
	"context"
	"errors"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/thind-storage/thind/control"
)

// ListVolumes pages through the driver's volumes.
func (d *Driver) ListVolumes(ctx context.Context, req *csipb.ListVolumesRequest) (*csipb.ListVolumesResponse, error) {
	vols, next, err := d.page(ctx, KindVolume, req.GetMaxEntries(), req.GetStartingToken(), nil)
	if err != nil {
		return nil, err
	}
	out := &csipb.ListVolumesResponse{NextToken: next}
	for _, v := range vols {
		out.Entries = append(out.Entries, &csipb.ListVolumesResponse_Entry{Volume: d.csiVolume(v, params{})})
	}
	return out, nil
}

// CreateSnapshot takes a read-only thin snapshot of a volume, in O(1). A
// second call with the same name and source returns the same snapshot;
// with another source, ALREADY_EXISTS.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csipb.CreateSnapshotRequest) (*csipb.CreateSnapshotResponse, error) {
	src := req.GetSourceVolumeId()
	switch {
	case req.GetName() == "":
		return nil, invalid("CreateSnapshot: no name")
	case src == "":
		return nil, invalid("CreateSnapshot %s: no source volume id", req.GetName())
	}
	for k := range req.GetParameters() {
		if !strings.HasPrefix(k, reservedParamPrefix) {
			return nil, invalid("CreateSnapshot %s: unknown parameter %q (snapshots take none)", req.GetName(), k)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// A source of another node is an error (a snapshot is taken in its
	// source's pool) unless the name is taken here already.
	srcName, ours, srcErr := d.nameOf(src)
	name := SnapshotName(req.GetName())
	if v, err := d.c.Volume(ctx, name); err == nil {
		if v.Labels[LabelKind] != KindSnapshot || !ours || v.Origin != srcName {
			return nil, status.Errorf(codes.AlreadyExists, "CreateSnapshot %s: snapshot %s exists of another volume", req.GetName(), name)
		}
		return &csipb.CreateSnapshotResponse{Snapshot: d.csiSnapshot(v)}, nil
	} else if !errors.Is(err, control.ErrNotFound) {
		return nil, grpcError("CreateSnapshot "+req.GetName(), err)
	}
	if srcErr != nil {
		return nil, srcErr
	}
	if _, err := d.csiOf(ctx, src, KindVolume); err != nil {
		return nil, err
	}
	labels := labelsFor(KindSnapshot, req.GetName(), "")
	ro := true
	v, err := d.c.Snapshot(ctx, srcName, control.VolumeRequest{Name: name, Labels: &labels, ReadOnly: &ro})
	if err != nil {
		return nil, grpcError("CreateSnapshot "+req.GetName(), err)
	}
	return &csipb.CreateSnapshotResponse{Snapshot: d.csiSnapshot(v)}, nil
}

// csiSnapshot is a thind snapshot as CSI sees it: its source is in the
// same pool.
func (d *Driver) csiSnapshot(v control.Volume) *csipb.Snapshot {
	return &csipb.Snapshot{
		SnapshotId: d.id(v.Name), SourceVolumeId: d.id(v.Origin), SizeBytes: int64(v.Size),
		CreationTime: timestamppb.New(v.Created), ReadyToUse: true,
	}
}

// DeleteSnapshot deletes a snapshot; one that is not there is deleted
// already. Volumes cloned from it keep their data: thin snapshots share
// blocks, they do not depend on each other.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csipb.DeleteSnapshotRequest) (*csipb.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, invalid("DeleteSnapshot: no snapshot id")
	}
	name, ours, err := d.nameOf(id)
	if err != nil {
		return nil, err
	}
	if !ours || !isSnapshotName(name) {
		return &csipb.DeleteSnapshotResponse{}, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return &csipb.DeleteSnapshotResponse{}, d.deleteKind(ctx, name, KindSnapshot)
}

// ListSnapshots pages through the snapshots, all, one by id, or those of
// one source volume.
func (d *Driver) ListSnapshots(ctx context.Context, req *csipb.ListSnapshotsRequest) (*csipb.ListSnapshotsResponse, error) {
	id, src := req.GetSnapshotId(), req.GetSourceVolumeId()
	snaps, next, err := d.page(ctx, KindSnapshot, req.GetMaxEntries(), req.GetStartingToken(), func(v control.Volume) bool {
		return (id == "" || d.id(v.Name) == id) && (src == "" || d.id(v.Origin) == src)
	})
	if err != nil {
		return nil, err
	}
	out := &csipb.ListSnapshotsResponse{NextToken: next}
	for _, v := range snaps {
		out.Entries = append(out.Entries, &csipb.ListSnapshotsResponse_Entry{Snapshot: d.csiSnapshot(v)})
	}
	return out, nil
}

// GetSnapshot returns one snapshot.
func (d *Driver) GetSnapshot(ctx context.Context, req *csipb.GetSnapshotRequest) (*csipb.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, invalid("GetSnapshot: no snapshot id")
	}
	v, err := d.csiOf(ctx, req.GetSnapshotId(), KindSnapshot)
	if err != nil {
		return nil, err
	}
	return &csipb.GetSnapshotResponse{Snapshot: d.csiSnapshot(v)}, nil
}
