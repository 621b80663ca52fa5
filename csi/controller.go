package csi

import (
	"context"
	"errors"
	"math"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
)

// ControllerGetCapabilities: no attach step (the node attaches over NBD
// itself), so no PUBLISH_UNPUBLISH_VOLUME.
func (d *Driver) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	return controllerCapabilities(), nil
}

// controllerCapabilities are the node controllers' and the router's
// alike: the router only forwards.
func controllerCapabilities() *csipb.ControllerGetCapabilitiesResponse {
	var caps []*csipb.ControllerServiceCapability
	for _, t := range []csipb.ControllerServiceCapability_RPC_Type{
		csipb.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csipb.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csipb.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csipb.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csipb.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csipb.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csipb.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csipb.ControllerServiceCapability_RPC_GET_CAPACITY,
		csipb.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		caps = append(caps, &csipb.ControllerServiceCapability{Type: &csipb.ControllerServiceCapability_Rpc{
			Rpc: &csipb.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csipb.ControllerGetCapabilitiesResponse{Capabilities: caps}
}

// topology is this node's segment.
func (d *Driver) topology() []*csipb.Topology {
	return []*csipb.Topology{{Segments: map[string]string{TopologyKey: d.cfg.NodeID}}}
}

// onThisNode reports whether the accessibility requirements let a volume
// live on this node: no requirements, or a requisite or preferred
// segment naming it.
func (d *Driver) onThisNode(r *csipb.TopologyRequirement) bool {
	if len(r.GetRequisite()) == 0 && len(r.GetPreferred()) == 0 {
		return true
	}
	for _, t := range append(r.GetRequisite(), r.GetPreferred()...) {
		if t.GetSegments()[TopologyKey] == d.cfg.NodeID {
			return true
		}
	}
	return false
}

// CreateVolume makes an empty volume, or an O(1) clone of a snapshot or a
// volume. A second call with the same name returns the same volume if
// it fits the request, else ALREADY_EXISTS.
func (d *Driver) CreateVolume(ctx context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("CreateVolume: no name")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, invalid("CreateVolume %s: %v", req.GetName(), err)
	}
	p, err := parseParams(req.GetParameters())
	if err != nil {
		return nil, invalid("CreateVolume %s: %v", req.GetName(), err)
	}
	if !d.onThisNode(req.GetAccessibilityRequirements()) {
		return nil, status.Errorf(codes.ResourceExhausted, "CreateVolume %s: this driver provisions on node %s only, which the topology requirements exclude", req.GetName(), d.cfg.NodeID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := VolumeName(req.GetName())
	source, origin, least, err := d.contentSource(ctx, req.GetVolumeContentSource())
	if err != nil {
		return nil, err
	}
	size, err := volumeSize(req.GetCapacityRange(), least)
	if err != nil {
		return nil, err
	}
	if v, err := d.c.Volume(ctx, name); err == nil {
		if v.Labels[LabelKind] != KindVolume || v.Labels[LabelSource] != source || !fits(v.Size, req.GetCapacityRange()) || v.ReadOnly != p.readOnly {
			return nil, status.Errorf(codes.AlreadyExists, "CreateVolume %s: volume %s exists with another size, source or read-only setting", req.GetName(), name)
		}
		return &csipb.CreateVolumeResponse{Volume: d.csiVolume(v, p)}, nil
	} else if !errors.Is(err, control.ErrNotFound) {
		return nil, grpcError("CreateVolume "+req.GetName(), err)
	}
	labels := labelsFor(KindVolume, req.GetName(), source)
	vr := control.VolumeRequest{Name: name, Size: size, Labels: &labels, ReadOnly: &p.readOnly}
	var v control.Volume
	if origin == "" {
		v, err = d.c.Create(ctx, vr)
	} else {
		v, err = d.c.Snapshot(ctx, origin, vr)
	}
	if err != nil {
		return nil, grpcError("CreateVolume "+req.GetName(), err)
	}
	return &csipb.CreateVolumeResponse{Volume: d.csiVolume(v, p)}, nil
}

// contentSource resolves a volume's source: its LabelSource value, the
// thind volume to snapshot and its size.
func (d *Driver) contentSource(ctx context.Context, s *csipb.VolumeContentSource) (label, origin string, size uint64, err error) {
	var id, kind string
	switch {
	case s == nil:
		return "", "", 0, nil
	case s.GetSnapshot() != nil:
		id, kind, label = s.GetSnapshot().GetSnapshotId(), KindSnapshot, sourcePrefixSnapshot
	case s.GetVolume() != nil:
		id, kind, label = s.GetVolume().GetVolumeId(), KindVolume, sourcePrefixVolume
	default:
		return "", "", 0, invalid("content source: neither a snapshot nor a volume")
	}
	if node, _, ok := SplitID(id); ok && node != d.cfg.NodeID {
		// The provisioner may try again on another node; the source's
		// is the only one that can take it.
		return "", "", 0, status.Errorf(codes.ResourceExhausted, "content source %q lives on node %s: a clone is made in its source's pool, not on node %s", id, node, d.cfg.NodeID)
	}
	v, err := d.csiOf(ctx, id, kind)
	if err != nil {
		return "", "", 0, err
	}
	// A clone is a thin snapshot, made in its source's pool: csiOf
	// refuses another node's source.
	return label + v.Name, v.Name, v.Size, nil
}

// csiVolume is a thind volume as CSI sees it.
func (d *Driver) csiVolume(v control.Volume, p params) *csipb.Volume {
	out := &csipb.Volume{VolumeId: d.id(v.Name), CapacityBytes: int64(v.Size), AccessibleTopology: d.topology()}
	if p.fsType != "" {
		out.VolumeContext = map[string]string{ParamFSType: p.fsType}
	}
	src := v.Labels[LabelSource]
	if name, ok := strings.CutPrefix(src, sourcePrefixSnapshot); ok {
		out.ContentSource = &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
			Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: d.id(name)}}}
	} else if name, ok := strings.CutPrefix(src, sourcePrefixVolume); ok {
		out.ContentSource = &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
			Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: d.id(name)}}}
	}
	return out
}

// DeleteVolume deletes a volume; one that is not there is deleted
// already. A volume still attached somewhere is FAILED_PRECONDITION.
func (d *Driver) DeleteVolume(ctx context.Context, req *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("DeleteVolume: no volume id")
	}
	name, ours, err := d.nameOf(id)
	if err != nil {
		return nil, err
	}
	if !ours || !isVolumeName(name) {
		return &csipb.DeleteVolumeResponse{}, nil // not the driver's: never one it made
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return &csipb.DeleteVolumeResponse{}, d.deleteKind(ctx, name, KindVolume)
}

// deleteKind deletes the thind volume name if it is a CSI object of kind.
func (d *Driver) deleteKind(ctx context.Context, name, kind string) error {
	v, err := d.c.Volume(ctx, name)
	if errors.Is(err, control.ErrNotFound) {
		return nil
	}
	if err != nil {
		return grpcError("delete "+name, err)
	}
	if v.Labels[LabelKind] != kind {
		return nil // the same name space holds only the driver's own kinds
	}
	if err := d.c.Delete(ctx, name); err != nil && !errors.Is(err, control.ErrNotFound) {
		return grpcError("delete "+name, err)
	}
	return nil
}

// ValidateVolumeCapabilities confirms the capabilities a node-local
// volume serves.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csipb.ValidateVolumeCapabilitiesRequest) (*csipb.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("ValidateVolumeCapabilities: no volume id")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("ValidateVolumeCapabilities %s: no volume capabilities", id)
	}
	if _, err := d.csiOf(ctx, id, KindVolume); err != nil {
		return nil, err
	}
	if _, err := parseParams(req.GetParameters()); err != nil {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csipb.ValidateVolumeCapabilitiesResponse{Confirmed: &csipb.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// csiOf returns the driver's volume or snapshot id (its Name is the
// thind name), NOT_FOUND if there is none of that kind, and an error for
// another node's id (nameOf).
func (d *Driver) csiOf(ctx context.Context, id, kind string) (control.Volume, error) {
	name, ours, err := d.nameOf(id)
	if err != nil {
		return control.Volume{}, err
	}
	if kind == KindSnapshot {
		ours = ours && isSnapshotName(name)
	} else {
		ours = ours && isVolumeName(name)
	}
	if !ours {
		return control.Volume{}, status.Errorf(codes.NotFound, "%s %q: not found", kind, id)
	}
	v, err := d.c.Volume(ctx, name)
	if err != nil {
		return v, grpcError(kind+" "+id, err)
	}
	if v.Labels[LabelKind] != kind {
		return v, status.Errorf(codes.NotFound, "%s %q: not found", kind, id)
	}
	return v, nil
}

// ControllerExpandVolume grows a volume, also while a node has it
// attached (ONLINE expansion, GetPluginCapabilities): the daemon serves
// the new size on the open NBD connection, and NodeExpandVolume then
// grows the node's device and, for a mount volume, its filesystem. A
// volume at least as large as asked is done, as the spec wants: it never
// shrinks.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csipb.ControllerExpandVolumeRequest) (*csipb.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("ControllerExpandVolume: no volume id")
	}
	if req.GetCapacityRange() == nil {
		return nil, invalid("ControllerExpandVolume %s: no capacity range", id)
	}
	if c := req.GetVolumeCapability(); c != nil {
		if err := checkCapability(c); err != nil {
			return nil, invalid("ControllerExpandVolume %s: %v", id, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.csiOf(ctx, id, KindVolume)
	if err != nil {
		return nil, err
	}
	size, err := volumeSize(req.GetCapacityRange(), 0)
	if err != nil {
		return nil, err
	}
	if size > v.Size {
		if v, err = d.c.Resize(ctx, v.Name, size, false); err != nil {
			return nil, grpcError("ControllerExpandVolume "+id, err)
		}
	}
	// Block volumes too: an attached node's device keeps its size until
	// NodeExpandVolume grows it (on a node that attaches later, it does
	// nothing).
	return &csipb.ControllerExpandVolumeResponse{CapacityBytes: int64(v.Size), NodeExpansionRequired: true}, nil
}

// GetCapacity offers the node's free data space, or with an
// overprovisioning ratio the virtual size left: ratio × data space less
// what every volume of the pool may grow to.
func (d *Driver) GetCapacity(ctx context.Context, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	p, err := parseParams(req.GetParameters())
	if err != nil {
		return nil, invalid("GetCapacity: %v", err)
	}
	none := &csipb.GetCapacityResponse{}
	if t := req.GetAccessibleTopology(); t != nil && t.GetSegments()[TopologyKey] != d.cfg.NodeID {
		return none, nil // another node's pool
	}
	for _, c := range req.GetVolumeCapabilities() {
		if checkCapability(c) != nil {
			return none, nil
		}
	}
	st, err := d.c.Pool(ctx)
	if err != nil {
		return nil, grpcError("GetCapacity", err)
	}
	if st.Mode != "write" {
		return none, nil // a read-only or failed pool takes no new volume
	}
	avail := st.DataBytes - st.DataBytesUsed
	if p.ratio > 0 {
		vols, err := d.c.Volumes(ctx, nil)
		if err != nil {
			return nil, grpcError("GetCapacity", err)
		}
		virtual := p.ratio * float64(st.DataBytes)
		for _, v := range vols {
			virtual -= float64(v.Size)
		}
		avail = uint64(max(0, min(virtual, math.MaxInt64/2)))
	}
	return &csipb.GetCapacityResponse{
		AvailableCapacity: int64(min(avail, uint64(catalog.MaxSize))),
		MaximumVolumeSize: wrapperspb.Int64(catalog.MaxSize),
		MinimumVolumeSize: wrapperspb.Int64(catalog.SectorSize),
	}, nil
}
