package csi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
)

// clients are gRPC clients of both drivers and a control client of the
// daemon, to see what the driver did.
type clients struct {
	csipb.ControllerClient
	node csipb.NodeClient
	id   csipb.IdentityClient
	c    *control.Client
	env  *env
}

func dial(t *testing.T, e *env) *clients {
	t.Helper()
	conn := func(ep string) *grpc.ClientConn {
		cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctl, node := conn(e.controller), conn(e.node)
	c := control.New(e.controlSock)
	t.Cleanup(c.Close)
	return &clients{ControllerClient: csipb.NewControllerClient(ctl), node: csipb.NewNodeClient(node), id: csipb.NewIdentityClient(ctl), c: c, env: e}
}

func mountCap() []*csipb.VolumeCapability {
	return []*csipb.VolumeCapability{{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

func TestNamesMapDeterministically(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"pvc-0b5c4d1e-7f0a-4c1e-9a53-6d2b8f0e1a2c", "csi-v-pvc-0b5c4d1e-7f0a-4c1e-9a53-6d2b8f0e1a2c"},
		{"data.v1_x", "csi-v-data.v1_x"},
		{"PVC-Upper", "csi-vh-"},
		{"with space", "csi-vh-"},
		{"h-abc", "csi-v-h-abc"},
		{strings.Repeat("a", 123), "csi-vh-"}, // "csi-v-" + 123 bytes is past catalog.MaxNameLen
		{strings.Repeat("a", 122), "csi-v-" + strings.Repeat("a", 122)},
	} {
		got := csi.VolumeName(tc.name)
		if !strings.HasPrefix(got, tc.want) || (!strings.HasSuffix(tc.want, "-vh-") && got != tc.want) {
			t.Errorf("VolumeName(%q) = %q, want %q...", tc.name, got, tc.want)
		}
		if got != csi.VolumeName(tc.name) {
			t.Errorf("VolumeName(%q) is not deterministic", tc.name)
		}
		if s := csi.SnapshotName(tc.name); s == got || !strings.HasPrefix(s, "csi-s") {
			t.Errorf("SnapshotName(%q) = %q: volume and snapshot names must not collide", tc.name, s)
		}
	}
	if csi.VolumeName("A") == csi.VolumeName("B") {
		t.Error("two hashed names collide")
	}
}

func TestControllerBeyondSanity(t *testing.T) {
	e := startEnv(t, false)
	cl := dial(t, e)
	ctx := context.Background()

	t.Run("an odd long name gets a hashed id and keeps the CSI name in a label", func(t *testing.T) {
		name := "Große Daten/" + strings.Repeat("x", 100)
		var ids []string
		for range 2 {
			r, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: mountCap(),
				CapacityRange: &csipb.CapacityRange{RequiredBytes: 10 << 20}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.GetVolume().GetVolumeId())
		}
		if ids[0] != ids[1] || !strings.HasPrefix(ids[0], "node-a/csi-vh-") {
			t.Fatalf("ids %v: want one hashed id on node-a", ids)
		}
		_, thindName, _ := csi.SplitID(ids[0])
		v, err := cl.c.Volume(ctx, thindName)
		if err != nil || v.Labels[csi.LabelName] != name || v.Labels[csi.LabelKind] != csi.KindVolume || v.Size != 10<<20 {
			t.Fatalf("catalog: %+v %v", v, err)
		}
		_, err = cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: mountCap(),
			CapacityRange: &csipb.CapacityRange{RequiredBytes: 20 << 20}})
		wantCode(t, "the same name with another size", err, codes.AlreadyExists)
	})

	t.Run("volumes are pinned to their node by the topology key", func(t *testing.T) {
		other := &csipb.TopologyRequirement{Requisite: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "node-b"}}}}
		_, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "elsewhere", VolumeCapabilities: mountCap(), AccessibilityRequirements: other})
		wantCode(t, "a volume required on another node", err, codes.ResourceExhausted)
		here := &csipb.TopologyRequirement{
			Requisite: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "node-b"}}, {Segments: map[string]string{csi.TopologyKey: "node-a"}}},
			Preferred: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "node-a"}}},
		}
		r, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "here", VolumeCapabilities: mountCap(), AccessibilityRequirements: here})
		if err != nil {
			t.Fatal(err)
		}
		top := r.GetVolume().GetAccessibleTopology()
		if len(top) != 1 || top[0].GetSegments()[csi.TopologyKey] != "node-a" {
			t.Fatalf("accessible topology %v", top)
		}
		info, err := cl.node.NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
		if err != nil || info.GetNodeId() != "node-a" || info.GetAccessibleTopology().GetSegments()[csi.TopologyKey] != "node-a" {
			t.Fatalf("NodeGetInfo %v %v", info, err)
		}
	})

	t.Run("GetCapacity offers free space, or the ratio's virtual size left", func(t *testing.T) {
		st, err := cl.c.Pool(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r, err := cl.GetCapacity(ctx, &csipb.GetCapacityRequest{})
		if err != nil || uint64(r.GetAvailableCapacity()) != st.DataBytes-st.DataBytesUsed {
			t.Fatalf("no ratio: %v %v, pool %+v", r, err, st)
		}
		vols, err := cl.c.Volumes(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var virtual uint64
		for _, v := range vols {
			virtual += v.Size
		}
		r, err = cl.GetCapacity(ctx, &csipb.GetCapacityRequest{Parameters: map[string]string{csi.ParamOverprovisioning: "2.5"}})
		if want := uint64(2.5*float64(st.DataBytes)) - virtual; err != nil || uint64(r.GetAvailableCapacity()) != want {
			t.Fatalf("ratio 2.5: %v %v, want %d", r, err, want)
		}
		r, err = cl.GetCapacity(ctx, &csipb.GetCapacityRequest{AccessibleTopology: &csipb.Topology{Segments: map[string]string{csi.TopologyKey: "node-b"}}})
		if err != nil || r.GetAvailableCapacity() != 0 {
			t.Fatalf("another node: %v %v", r, err)
		}
		for _, bad := range []string{"0.5", "x", "NaN"} {
			_, err = cl.GetCapacity(ctx, &csipb.GetCapacityRequest{Parameters: map[string]string{csi.ParamOverprovisioning: bad}})
			wantCode(t, "ratio "+bad, err, codes.InvalidArgument)
		}
	})

	t.Run("the pool's other volumes are not the driver's", func(t *testing.T) {
		if _, err := cl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "default"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.c.Volume(ctx, "default"); err != nil {
			t.Fatalf("DeleteVolume removed a volume the driver did not make: %v", err)
		}
		_, err := cl.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{VolumeId: "default", VolumeCapabilities: mountCap()})
		wantCode(t, "validate a non-CSI volume", err, codes.NotFound)
		_, err = cl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "s", SourceVolumeId: "default"})
		wantCode(t, "snapshot a non-CSI volume", err, codes.NotFound)
	})

	t.Run("bad parameters and capabilities are invalid arguments", func(t *testing.T) {
		for _, p := range []map[string]string{{"fsType": "btrfs"}, {"readOnly": "maybe"}, {"bogus": "1"}} {
			_, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "p", VolumeCapabilities: mountCap(), Parameters: p})
			wantCode(t, fmt.Sprint(p), err, codes.InvalidArgument)
		}
		multi := mountCap()
		multi[0].AccessMode.Mode = csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
		_, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "p", VolumeCapabilities: multi})
		wantCode(t, "multi-node access", err, codes.InvalidArgument)
		r, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "p", VolumeCapabilities: mountCap(),
			Parameters: map[string]string{"fsType": "xfs", "csi.storage.k8s.io/pvc/name": "claim"}})
		if err != nil || r.GetVolume().GetVolumeContext()[csi.ParamFSType] != "xfs" {
			t.Fatalf("fsType in the volume context: %v %v", r, err)
		}
	})
}

// TestClonesShareBlocks clones a volume from a snapshot and from a volume
// and reads the data back over NBD: the clones hold it without the pool
// using a block more.
func TestClonesShareBlocks(t *testing.T) {
	e := startEnv(t, false)
	cl := dial(t, e)
	ctx := context.Background()
	uri := func(vol string) string { return fmt.Sprintf("nbd+unix:///%s?socket=%s", vol, e.nbdSock) }
	qemuIO := func(id string, cmds ...string) string {
		_, vol, _ := csi.SplitID(id) // the export is the thind name
		args := []string{"-f", "raw"}
		if strings.HasPrefix(vol, "csi-s") {
			args = append(args, "-r") // snapshots are exported read-only
		}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		out := tooltest.Run(t, "qemu-io", "qemu-utils", append(args, uri(vol))...)
		if strings.Contains(out, "failed") {
			t.Fatalf("qemu-io %s %v:\n%s", vol, cmds, out)
		}
		return out
	}
	src, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "src", VolumeCapabilities: mountCap(),
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 32 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	srcID := src.GetVolume().GetVolumeId()
	qemuIO(srcID, "write -P 0x5a 0 4M", "write -P 0x5b 16M 1M", "flush")
	snap, err := cl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "snap", SourceVolumeId: srcID})
	if err != nil || !snap.GetSnapshot().GetReadyToUse() || snap.GetSnapshot().GetSizeBytes() != 32<<20 {
		t.Fatalf("snapshot: %v %v", snap, err)
	}
	qemuIO(srcID, "write -P 0x11 0 1M", "flush") // the snapshot keeps the old data
	before, err := cl.c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fromSnap, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "from-snap", VolumeCapabilities: mountCap(),
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20},
		VolumeContentSource: &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
			Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}}})
	if err != nil || fromSnap.GetVolume().GetCapacityBytes() != 64<<20 || fromSnap.GetVolume().GetContentSource().GetSnapshot() == nil {
		t.Fatalf("clone of the snapshot: %v %v", fromSnap, err)
	}
	fromVol, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "from-vol", VolumeCapabilities: mountCap(),
		VolumeContentSource: &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
			Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: srcID}}}})
	if err != nil || fromVol.GetVolume().GetCapacityBytes() != 32<<20 {
		t.Fatalf("clone of the volume: %v %v", fromVol, err)
	}
	after, err := cl.c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.DataBlocksUsed != before.DataBlocksUsed {
		t.Errorf("cloning used %d data blocks, want 0 (O(1) thin snapshots)", after.DataBlocksUsed-before.DataBlocksUsed)
	}
	qemuIO(fromSnap.GetVolume().GetVolumeId(), "read -P 0x5a 0 4M", "read -P 0x5b 16M 1M", "read -P 0 32M 32M")
	qemuIO(fromVol.GetVolume().GetVolumeId(), "read -P 0x11 0 1M", "read -P 0x5a 1M 3M", "read -P 0x5b 16M 1M")
	out := qemuIO(snap.GetSnapshot().GetSnapshotId(), "read -P 0x5a 0 4M")
	if !strings.Contains(out, "read 4194304/4194304") {
		t.Fatalf("the snapshot reads back: %s", out)
	}
	// The snapshot is read-only; deleting it leaves its clone's data.
	if _, err := cl.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	qemuIO(fromSnap.GetVolume().GetVolumeId(), "read -P 0x5a 0 4M")
	for _, id := range []string{srcID, fromSnap.GetVolume().GetVolumeId(), fromVol.GetVolume().GetVolumeId()} {
		if _, err := cl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	vols, err := cl.ListVolumes(ctx, &csipb.ListVolumesRequest{})
	if err != nil || len(vols.GetEntries()) != 0 {
		t.Fatalf("volumes left: %v %v", vols, err)
	}
}
