package csi

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The router answers only what needs no node: a missing id, and an id
// the driver never gave (no node part: nothing of the driver's anywhere,
// so "deleted" or NOT_FOUND). Every other RPC goes to the node its id
// names, whose controller checks the rest; its answer comes back as it
// is, codes included.

// nodeOf is the node of a CSI id, "" for an id the driver never gave.
func nodeOf(id string) string {
	node, _, ok := SplitID(id)
	if !ok {
		return ""
	}
	return node
}

// CreateVolume goes to the node that already has a volume of that name
// (a retry, or ALREADY_EXISTS), else to the source's node for a clone
// (clones stay in their source's pool), else to the candidates in turn
// while they answer RESOURCE_EXHAUSTED (no room there: nothing made).
func (r *Router) CreateVolume(ctx context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("CreateVolume: no name")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("CreateVolume %s: no volume capabilities", req.GetName())
	}
	if node, err := r.holder(ctx, VolumeName(req.GetName()), func(c csipb.ControllerClient, id string) error {
		_, err := c.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: req.GetVolumeCapabilities()})
		return err
	}); err != nil {
		return nil, err
	} else if node != "" {
		return r.createOn(ctx, node, req)
	}
	if s := req.GetVolumeContentSource(); s != nil {
		id := s.GetSnapshot().GetSnapshotId() + s.GetVolume().GetVolumeId()
		node := nodeOf(id)
		if node == "" {
			return nil, status.Errorf(codes.NotFound, "CreateVolume %s: content source %q: not found", req.GetName(), id)
		}
		return r.createOn(ctx, node, req)
	}
	candidates, err := r.candidates(ctx, req.GetName(), req.GetAccessibilityRequirements())
	if err != nil {
		return nil, err
	}
	for _, node := range candidates {
		resp, err := r.createOn(ctx, node, req)
		if status.Code(err) != codes.ResourceExhausted {
			return resp, err
		}
		r.log.Info("csi router: node has no room, trying the next", "node", node, "volume", req.GetName(), "err", err)
	}
	return nil, status.Errorf(codes.ResourceExhausted, "CreateVolume %s: no node of %v can take it", req.GetName(), candidates)
}

func (r *Router) createOn(ctx context.Context, node string, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	c, err := r.ctl(ctx, node)
	if err != nil {
		return nil, err
	}
	return c.CreateVolume(ctx, req)
}

// holder is the known node that has the thind name, found by asking each
// with probe (NOT_FOUND: not there), or "". Names are idempotent per
// node; asking every node makes them so across the cluster. A node out
// of reach is UNAVAILABLE: the name may be there.
func (r *Router) holder(ctx context.Context, name string, probe func(csipb.ControllerClient, string) error) (string, error) {
	nodes, err := r.nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, node := range nodes {
		c, err := r.ctl(ctx, node)
		if err != nil {
			return "", err
		}
		switch err := probe(c, ID(node, name)); status.Code(err) {
		case codes.NotFound:
		case codes.OK:
			return node, nil
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown:
			return "", err
		default:
			return node, nil // there, but the request does not fit it: its controller says why
		}
	}
	return "", nil
}

// candidates are the nodes a new volume may go to, best first: the
// preferred segments in order, then the requisite ones; without
// requirements every known node, in an order hashed from the name
// (rendezvous), so that a retry tries the same node first and volumes
// spread.
func (r *Router) candidates(ctx context.Context, name string, req *csipb.TopologyRequirement) ([]string, error) {
	var out []string
	for _, t := range append(slices.Clone(req.GetPreferred()), req.GetRequisite()...) {
		if n := t.GetSegments()[TopologyKey]; n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(req.GetRequisite()) > 0 || len(req.GetPreferred()) > 0 {
		return nil, status.Errorf(codes.ResourceExhausted, "CreateVolume %s: the topology requirements name no %s segment", name, TopologyKey)
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	score := func(n string) uint64 {
		h := sha256.Sum256([]byte(n + "\x00" + name))
		return binary.BigEndian.Uint64(h[:8])
	}
	slices.SortFunc(nodes, func(a, b string) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	if len(nodes) == 0 {
		return nil, status.Errorf(codes.Unavailable, "CreateVolume %s: no thind node is known", name)
	}
	return nodes, nil
}

// DeleteVolume goes to the volume's node; an id the driver never gave is
// deleted already.
func (r *Router) DeleteVolume(ctx context.Context, req *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	node, c, err := r.route(ctx, "DeleteVolume", req.GetVolumeId())
	if err != nil || node == "" {
		return &csipb.DeleteVolumeResponse{}, err
	}
	return c.DeleteVolume(ctx, req)
}

// route is the node and controller client of id; node "" for an id the
// driver never gave.
func (r *Router) route(ctx context.Context, what, id string) (string, csipb.ControllerClient, error) {
	if id == "" {
		return "", nil, invalid("%s: no id", what)
	}
	node := nodeOf(id)
	if node == "" {
		return "", nil, nil
	}
	c, err := r.ctl(ctx, node)
	return node, c, err
}

// routeFound is route for the RPCs where an id the driver never gave is
// NOT_FOUND.
func (r *Router) routeFound(ctx context.Context, what, id string) (csipb.ControllerClient, error) {
	node, c, err := r.route(ctx, what, id)
	if err == nil && node == "" {
		err = status.Errorf(codes.NotFound, "%s %q: not found", what, id)
	}
	return c, err
}

func (r *Router) ControllerExpandVolume(ctx context.Context, req *csipb.ControllerExpandVolumeRequest) (*csipb.ControllerExpandVolumeResponse, error) {
	c, err := r.routeFound(ctx, "ControllerExpandVolume", req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return c.ControllerExpandVolume(ctx, req)
}

func (r *Router) ValidateVolumeCapabilities(ctx context.Context, req *csipb.ValidateVolumeCapabilitiesRequest) (*csipb.ValidateVolumeCapabilitiesResponse, error) {
	c, err := r.routeFound(ctx, "ValidateVolumeCapabilities", req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return c.ValidateVolumeCapabilities(ctx, req)
}

// CreateSnapshot goes to the node that already has a snapshot of that
// name, else to the source volume's: a thin snapshot is made in its
// source's pool.
func (r *Router) CreateSnapshot(ctx context.Context, req *csipb.CreateSnapshotRequest) (*csipb.CreateSnapshotResponse, error) {
	switch {
	case req.GetName() == "":
		return nil, invalid("CreateSnapshot: no name")
	case req.GetSourceVolumeId() == "":
		return nil, invalid("CreateSnapshot %s: no source volume id", req.GetName())
	}
	node, err := r.holder(ctx, SnapshotName(req.GetName()), func(c csipb.ControllerClient, id string) error {
		_, err := c.GetSnapshot(ctx, &csipb.GetSnapshotRequest{SnapshotId: id})
		return err
	})
	if err != nil {
		return nil, err
	}
	if node == "" {
		if node = nodeOf(req.GetSourceVolumeId()); node == "" {
			return nil, status.Errorf(codes.NotFound, "CreateSnapshot %s: source volume %q: not found", req.GetName(), req.GetSourceVolumeId())
		}
	}
	c, err := r.ctl(ctx, node)
	if err != nil {
		return nil, err
	}
	return c.CreateSnapshot(ctx, req)
}

func (r *Router) DeleteSnapshot(ctx context.Context, req *csipb.DeleteSnapshotRequest) (*csipb.DeleteSnapshotResponse, error) {
	node, c, err := r.route(ctx, "DeleteSnapshot", req.GetSnapshotId())
	if err != nil || node == "" {
		return &csipb.DeleteSnapshotResponse{}, err
	}
	return c.DeleteSnapshot(ctx, req)
}

func (r *Router) GetSnapshot(ctx context.Context, req *csipb.GetSnapshotRequest) (*csipb.GetSnapshotResponse, error) {
	c, err := r.routeFound(ctx, "GetSnapshot", req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	return c.GetSnapshot(ctx, req)
}

// GetMetadataAllocated relays the stream of the snapshot's node.
func (r *Router) GetMetadataAllocated(req *csipb.GetMetadataAllocatedRequest, stream csipb.SnapshotMetadata_GetMetadataAllocatedServer) error {
	ctx := stream.Context()
	id := req.GetSnapshotId()
	if id == "" {
		return invalid("GetMetadataAllocated: no snapshot id")
	}
	node := nodeOf(id)
	if node == "" {
		return status.Errorf(codes.NotFound, "GetMetadataAllocated %q: not found", id)
	}
	m, err := r.meta(ctx, node)
	if err != nil {
		return err
	}
	s, err := m.GetMetadataAllocated(ctx, req)
	if err != nil {
		return err
	}
	return relay(s.Recv, stream.Send)
}

// GetMetadataDelta relays the stream of the snapshots' node. Snapshots on
// two nodes share no history: FAILED_PRECONDITION, a full backup.
func (r *Router) GetMetadataDelta(req *csipb.GetMetadataDeltaRequest, stream csipb.SnapshotMetadata_GetMetadataDeltaServer) error {
	ctx := stream.Context()
	baseID, targetID := req.GetBaseSnapshotId(), req.GetTargetSnapshotId()
	switch {
	case baseID == "":
		return invalid("GetMetadataDelta: no base snapshot id")
	case targetID == "":
		return invalid("GetMetadataDelta: no target snapshot id")
	}
	base, target := nodeOf(baseID), nodeOf(targetID)
	switch {
	case base == "" || target == "":
		return status.Errorf(codes.NotFound, "GetMetadataDelta %s %s: not found", baseID, targetID)
	case base != target:
		return status.Errorf(codes.FailedPrecondition, "GetMetadataDelta %s %s: snapshots on nodes %s and %s share no history: no delta, take a full backup", baseID, targetID, base, target)
	}
	m, err := r.meta(ctx, target)
	if err != nil {
		return err
	}
	s, err := m.GetMetadataDelta(ctx, req)
	if err != nil {
		return err
	}
	return relay(s.Recv, stream.Send)
}

// relay copies a node's stream to the caller; the node's error, code
// included, ends it.
func relay[T any](recv func() (T, error), send func(T) error) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := send(m); err != nil {
			return err
		}
	}
}
