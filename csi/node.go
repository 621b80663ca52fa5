package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/kernelnbd"
)

// nbdsMax is where the nbd module says how many devices it made.
const nbdsMax = "/sys/module/nbd/parameters/nbds_max"

// NodeGetCapabilities: stage (attach and mount once per node), expand,
// stats.
func (d *Driver) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	var caps []*csipb.NodeServiceCapability
	for _, t := range []csipb.NodeServiceCapability_RPC_Type{
		csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csipb.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csipb.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		caps = append(caps, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
			Rpc: &csipb.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csipb.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetInfo names the node, its topology segment and how many volumes
// it can attach: one per /dev/nbdN.
func (d *Driver) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	var maxVols int64
	if b, err := os.ReadFile(nbdsMax); err == nil {
		maxVols, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	return &csipb.NodeGetInfoResponse{
		NodeId:             d.cfg.NodeID,
		MaxVolumesPerNode:  maxVols,
		AccessibleTopology: d.topology()[0],
	}, nil
}

// NodeStageVolume attaches the volume to a kernel NBD device and, for a
// mount volume, formats it if blank and mounts it at the staging path.
func (d *Driver) NodeStageVolume(ctx context.Context, req *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	id, target, c := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, invalid("NodeStageVolume: no volume id")
	case target == "":
		return nil, invalid("NodeStageVolume %s: no staging target path", id)
	case c == nil:
		return nil, invalid("NodeStageVolume %s: no volume capability", id)
	}
	if err := checkCapability(c); err != nil {
		return nil, invalid("NodeStageVolume %s: %v", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.csiOf(ctx, id, KindVolume); err != nil {
		return nil, err
	}
	dev, err := d.attachSettled(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.GetBlock() != nil {
		return &csipb.NodeStageVolumeResponse{}, nil // published as the device itself
	}
	if m, err := isMountPoint(target); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeStageVolume %s: %v", id, err)
	} else if m {
		return &csipb.NodeStageVolumeResponse{}, nil
	}
	want := c.GetMount().GetFsType()
	if want == "" {
		want = req.GetVolumeContext()[ParamFSType]
	}
	if want == "" {
		want = defaultFS
	}
	have, err := fsType(ctx, dev)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeStageVolume %s: %v", id, err)
	}
	if have == "" {
		if err := mkfs(ctx, want, dev); err != nil {
			return nil, status.Errorf(codes.Internal, "NodeStageVolume %s: %v", id, err)
		}
		have = want
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeStageVolume %s: %v", id, err)
	}
	args := []string{"-t", have}
	flags := append([]string(nil), c.GetMount().GetMountFlags()...)
	if have == "xfs" {
		// A clone has its source's filesystem UUID, which xfs refuses
		// to mount twice on one node.
		flags = append(flags, "nouuid")
	}
	if len(flags) > 0 {
		args = append(args, "-o", strings.Join(flags, ","))
	}
	if _, err := run(ctx, "mount", append(args, dev, target)...); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeStageVolume %s: %v", id, err)
	}
	return &csipb.NodeStageVolumeResponse{}, nil
}

// attach returns the volume's device, attaching it unless it is
// attached already. The device is recorded before the attach, so a retry
// after a crash in between attaches the same device (see Attacher).
func (d *Driver) attach(ctx context.Context, id string) (string, error) {
	s, ok, err := d.loadStaged(id)
	if err != nil {
		return "", status.Errorf(codes.Internal, "%v", err)
	}
	if ok && d.cfg.Attacher.Attached(s.Device) {
		return s.Device, nil
	}
	if !ok {
		taken, err := d.takenDevices()
		if err != nil {
			return "", status.Errorf(codes.Internal, "attach %s: %v", id, err)
		}
		dev, err := d.cfg.Attacher.FreeDevice(func(dev string) bool { return taken[dev] })
		if err != nil {
			return "", status.Errorf(codes.ResourceExhausted, "attach %s: %v", id, err)
		}
		s = staged{Device: dev}
		if err := d.saveStaged(id, s); err != nil {
			return "", status.Errorf(codes.Internal, "attach %s: %v", id, err)
		}
	}
	_, name, _ := SplitID(id)
	if err := d.cfg.Attacher.Attach(ctx, name, s.Device); err != nil {
		// The attach failed, it did not die: nothing holds the device,
		// and a retry may pick another.
		if derr := d.dropStaged(id); derr != nil {
			err = fmt.Errorf("%w; and forgetting %s: %v", err, s.Device, derr)
		}
		return "", status.Errorf(codes.Internal, "attach %s: %v", id, err)
	}
	return s.Device, nil
}

// NodeUnstageVolume unmounts the staging path and detaches the device.
func (d *Driver) NodeUnstageVolume(ctx context.Context, req *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodeUnstageVolume: no volume id")
	case target == "":
		return nil, invalid("NodeUnstageVolume %s: no staging target path", id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unmount(ctx, target); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeUnstageVolume %s: %v", id, err)
	}
	s, ok, err := d.loadStaged(id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeUnstageVolume %s: %v", id, err)
	}
	if ok && d.cfg.Attacher.Attached(s.Device) {
		if err := d.cfg.Attacher.Detach(ctx, s.Device); err != nil {
			return nil, status.Errorf(codes.Internal, "NodeUnstageVolume %s: %v", id, err)
		}
	}
	if err := d.dropStaged(id); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeUnstageVolume %s: %v", id, err)
	}
	return &csipb.NodeUnstageVolumeResponse{}, nil
}

// unmount unmounts path if it is a mount point.
func unmount(ctx context.Context, path string) error {
	m, err := isMountPoint(path)
	if err != nil || !m {
		return err
	}
	_, err = run(ctx, "umount", path)
	return err
}

// NodePublishVolume bind-mounts the staged filesystem, or for a block
// volume the device itself, at the target path.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	id, staging, target, c := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, invalid("NodePublishVolume: no volume id")
	case staging == "":
		return nil, invalid("NodePublishVolume %s: no staging target path", id)
	case target == "":
		return nil, invalid("NodePublishVolume %s: no target path", id)
	case c == nil:
		return nil, invalid("NodePublishVolume %s: no volume capability", id)
	}
	if err := checkCapability(c); err != nil {
		return nil, invalid("NodePublishVolume %s: %v", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.csiOf(ctx, id, KindVolume); err != nil {
		return nil, err
	}
	s, ok, err := d.loadStaged(id)
	if err != nil || !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "NodePublishVolume %s: not staged (%v)", id, err)
	}
	single := c.GetAccessMode().GetMode() == csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	if m, err := isMountPoint(target); err != nil {
		return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
	} else if m {
		// Published already (by a try that may have died before
		// recording it).
		return &csipb.NodePublishVolumeResponse{}, d.recordPublished(id, s, target, single)
	}
	for other, otherSingle := range s.Published {
		if other != target && (single || otherSingle) {
			return nil, status.Errorf(codes.FailedPrecondition, "NodePublishVolume %s: published at %s already, with a single-writer access mode", id, other)
		}
	}
	src := staging
	if c.GetBlock() != nil {
		src = s.Device
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
		}
		f, err := os.OpenFile(target, os.O_CREATE, 0o600)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
		}
		f.Close()
	} else {
		if m, err := isMountPoint(staging); err != nil || !m {
			return nil, status.Errorf(codes.FailedPrecondition, "NodePublishVolume %s: %s is not staged", id, staging)
		}
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
		}
	}
	if _, err := run(ctx, "mount", "--bind", src, target); err != nil {
		return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
	}
	if req.GetReadonly() {
		if _, err := run(ctx, "mount", "-o", "remount,bind,ro", target); err != nil {
			unmount(ctx, target)
			return nil, status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
		}
	}
	if err := d.recordPublished(id, s, target, single); err != nil {
		unmount(ctx, target)
		return nil, err
	}
	return &csipb.NodePublishVolumeResponse{}, nil
}

// recordPublished adds target to the volume's publications.
func (d *Driver) recordPublished(id string, s staged, target string, single bool) error {
	if was, ok := s.Published[target]; ok && was == single {
		return nil
	}
	if s.Published == nil {
		s.Published = map[string]bool{}
	}
	s.Published[target] = single
	if err := d.saveStaged(id, s); err != nil {
		return status.Errorf(codes.Internal, "NodePublishVolume %s: %v", id, err)
	}
	return nil
}

// NodeUnpublishVolume unmounts and removes the target path.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodeUnpublishVolume: no volume id")
	case target == "":
		return nil, invalid("NodeUnpublishVolume %s: no target path", id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unmount(ctx, target); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeUnpublishVolume %s: %v", id, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "NodeUnpublishVolume %s: %v", id, err)
	}
	if s, ok, err := d.loadStaged(id); err == nil && ok && s.Published != nil {
		if _, was := s.Published[target]; was {
			delete(s.Published, target)
			if err := d.saveStaged(id, s); err != nil {
				return nil, status.Errorf(codes.Internal, "NodeUnpublishVolume %s: %v", id, err)
			}
		}
	}
	return &csipb.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports a mounted volume's bytes and inodes, or a
// block volume's size.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csipb.NodeGetVolumeStatsRequest) (*csipb.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("NodeGetVolumeStats: no volume id")
	case path == "":
		return nil, invalid("NodeGetVolumeStats %s: no volume path", id)
	}
	vol, err := d.csiOf(ctx, id, KindVolume)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "NodeGetVolumeStats %s: %s does not exist", id, path)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeGetVolumeStats %s: %v", id, err)
	}
	if !fi.IsDir() {
		v, err := d.c.Volume(ctx, vol.Name)
		if err != nil {
			return nil, grpcError("NodeGetVolumeStats "+id, err)
		}
		return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{
			{Unit: csipb.VolumeUsage_BYTES, Total: int64(v.Size)},
		}}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeGetVolumeStats %s: %v", id, err)
	}
	bs := int64(st.Bsize)
	return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{
		{Unit: csipb.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csipb.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// NodeExpandVolume grows a staged volume online to the size the
// controller gave it: first the kernel's device (Attacher.Grow, while the
// filesystem stays mounted and the pods keep writing), then for a mount
// volume the filesystem (resize2fs, xfs_growfs). Each step is idempotent:
// a retry after a crash finds the device grown already and the
// filesystem grown or growing (see growFS).
func (d *Driver) NodeExpandVolume(ctx context.Context, req *csipb.NodeExpandVolumeRequest) (*csipb.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("NodeExpandVolume: no volume id")
	case path == "":
		return nil, invalid("NodeExpandVolume %s: no volume path", id)
	}
	if c := req.GetVolumeCapability(); c != nil {
		if err := checkCapability(c); err != nil {
			return nil, invalid("NodeExpandVolume %s: %v", id, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.csiOf(ctx, id, KindVolume)
	if err != nil {
		return nil, err
	}
	if lim := req.GetCapacityRange().GetLimitBytes(); lim > 0 && v.Size > uint64(lim) {
		return nil, status.Errorf(codes.OutOfRange, "NodeExpandVolume %s: the volume is %d bytes, more than the limit %d", id, v.Size, lim)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "NodeExpandVolume %s: %s does not exist", id, path)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeExpandVolume %s: %v", id, err)
	}
	s, ok, err := d.loadStaged(id)
	if err != nil || !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "NodeExpandVolume %s: not staged on this node (%v)", id, err)
	}
	have, err := kernelnbd.Size(s.Device)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeExpandVolume %s: %v", id, err)
	}
	if have < v.Size {
		if err := d.cfg.Attacher.Grow(ctx, s.Device, v.Size); errors.Is(err, ErrCannotGrow) {
			return nil, status.Errorf(codes.FailedPrecondition, "NodeExpandVolume %s: %s shows %d bytes of the volume's %d: %v", id, s.Device, have, v.Size, err)
		} else if err != nil {
			return nil, status.Errorf(codes.Internal, "NodeExpandVolume %s: %v", id, err)
		}
	}
	// A block volume (published as the device, or said so) is grown.
	if req.GetVolumeCapability().GetBlock() != nil || !fi.IsDir() {
		return &csipb.NodeExpandVolumeResponse{CapacityBytes: int64(v.Size)}, nil
	}
	fs, err := fsType(ctx, s.Device)
	if err == nil {
		err = growFS(ctx, fs, s.Device, path)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "NodeExpandVolume %s: %v", id, err)
	}
	return &csipb.NodeExpandVolumeResponse{CapacityBytes: int64(v.Size)}, nil
}
