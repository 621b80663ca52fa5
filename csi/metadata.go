package csi

import (
	"context"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/control"
)

// defaultMetadataResults is how many ranges one response carries when
// the request leaves max_results 0.
const defaultMetadataResults = 1024

// GetMetadataAllocated streams the byte ranges a snapshot maps, from the
// daemon's diff against nothing: only the mapping tree is read.
func (d *Driver) GetMetadataAllocated(req *csipb.GetMetadataAllocatedRequest, stream csipb.SnapshotMetadata_GetMetadataAllocatedServer) error {
	ctx := stream.Context()
	id := req.GetSnapshotId()
	if id == "" {
		return invalid("GetMetadataAllocated: no snapshot id")
	}
	snap, err := d.csiOf(ctx, id, KindSnapshot)
	if err != nil {
		return err
	}
	capacity := int64(snap.Size)
	return d.streamRanges(ctx, "GetMetadataAllocated "+id, "", snap.Name, req.GetStartingOffset(), req.GetMaxResults(), snap.Size,
		func(b []*csipb.BlockMetadata) error {
			return stream.Send(&csipb.GetMetadataAllocatedResponse{
				BlockMetadataType: csipb.BlockMetadataType_VARIABLE_LENGTH, VolumeCapacityBytes: capacity, BlockMetadata: b,
			})
		})
}

// GetMetadataDelta streams the byte ranges where a snapshot differs from
// an earlier snapshot of the same volume: those whose data changed, and
// those the target no longer maps (they read as zeroes, so a backup must
// write them too). Snapshots of different volumes share no history to
// compare: FAILED_PRECONDITION, the spec's "do a full backup".
func (d *Driver) GetMetadataDelta(req *csipb.GetMetadataDeltaRequest, stream csipb.SnapshotMetadata_GetMetadataDeltaServer) error {
	ctx := stream.Context()
	baseID, targetID := req.GetBaseSnapshotId(), req.GetTargetSnapshotId()
	switch {
	case baseID == "":
		return invalid("GetMetadataDelta: no base snapshot id")
	case targetID == "":
		return invalid("GetMetadataDelta: no target snapshot id")
	}
	base, err := d.csiOf(ctx, baseID, KindSnapshot)
	if err != nil {
		return err
	}
	target, err := d.csiOf(ctx, targetID, KindSnapshot)
	if err != nil {
		return err
	}
	// By device id, not name: a volume deleted and made again under its
	// name is another volume.
	if base.OriginDevID == nil || target.OriginDevID == nil || *base.OriginDevID != *target.OriginDevID {
		return status.Errorf(codes.FailedPrecondition,
			"GetMetadataDelta %s %s: not snapshots of one volume (of %q and %q): no delta, take a full backup",
			baseID, targetID, base.Origin, target.Origin)
	}
	capacity := int64(target.Size)
	return d.streamRanges(ctx, "GetMetadataDelta "+baseID+" "+targetID, base.Name, target.Name, req.GetStartingOffset(), req.GetMaxResults(), target.Size,
		func(b []*csipb.BlockMetadata) error {
			return stream.Send(&csipb.GetMetadataDeltaResponse{
				BlockMetadataType: csipb.BlockMetadataType_VARIABLE_LENGTH, VolumeCapacityBytes: capacity, BlockMetadata: b,
			})
		})
}

// streamRanges sends the daemon's diff of target against base (nothing
// if "") from byte start, in batches of at most maxResults ranges.
// Changed and unmapped ranges are both changed to a backup, so touching
// ones merge. The first range sent ends after start (the stream resumes
// mid-volume); one empty batch is sent if there is no range, so the
// capacity still reaches the caller.
func (d *Driver) streamRanges(ctx context.Context, what, base, target string, start int64, maxResults int32, size uint64, send func([]*csipb.BlockMetadata) error) error {
	if maxResults < 0 {
		return invalid("%s: max_results %d is negative", what, maxResults)
	}
	if start < 0 || uint64(start) > size {
		return status.Errorf(codes.OutOfRange, "%s: starting_offset %d outside the snapshot's %d bytes", what, start, size)
	}
	limit := int(maxResults)
	if limit == 0 {
		limit = defaultMetadataResults
	}
	var batch []*csipb.BlockMetadata
	var pend *csipb.BlockMetadata
	sent := false
	flush := func() error {
		sent = true
		err := send(batch)
		batch = nil
		return err
	}
	_, err := d.c.Diff(ctx, base, target, uint64(start), func(r control.DiffRange) error {
		if pend != nil && pend.ByteOffset+pend.SizeBytes == int64(r.Offset) {
			pend.SizeBytes += int64(r.Length)
			return nil
		}
		if pend != nil {
			if batch = append(batch, pend); len(batch) == limit {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		pend = &csipb.BlockMetadata{ByteOffset: int64(r.Offset), SizeBytes: int64(r.Length)}
		return nil
	})
	if err != nil {
		return grpcError(what, err)
	}
	if pend != nil {
		batch = append(batch, pend)
	}
	if len(batch) > 0 || !sent {
		if err := flush(); err != nil {
			return grpcError(what, err)
		}
	}
	return nil
}
