package csi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
)

func blockCaps() []*csipb.VolumeCapability {
	return []*csipb.VolumeCapability{{
		AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func onNode(nodes ...string) []*csipb.Topology {
	var out []*csipb.Topology
	for _, n := range nodes {
		out = append(out, &csipb.Topology{Segments: map[string]string{csi.TopologyKey: n}})
	}
	return out
}

// thindName is the thind name in a CSI id, failing t if it has none.
func thindName(t *testing.T, id string) string {
	t.Helper()
	_, name, ok := csi.SplitID(id)
	if !ok {
		t.Fatalf("id %q names no node", id)
	}
	return name
}

// has reports whether node's pool has the thind volume of the CSI id.
func (cl *cluster) has(t *testing.T, node, id string) bool {
	t.Helper()
	_, err := cl.nodes[node].c.Volume(context.Background(), thindName(t, id))
	if err != nil && !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("%s: volume %s: %v", node, id, err)
	}
	return err == nil
}

// write writes a pattern into the volume of id through its node's NBD
// socket.
func (cl *cluster) write(t *testing.T, node, id string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	uri := fmt.Sprintf("nbd+unix:///%s?socket=%s", thindName(t, id), cl.nodes[node].nbdSock)
	tooltest.Run(t, "qemu-io", "qemu-utils", append(append(args, "-c", "flush"), uri)...)
}

// TestRouterRoutesByNode drives the router in front of two nodes: each
// RPC reaches the node its id or topology names, and only that node.
func TestRouterRoutesByNode(t *testing.T) {
	cl := startCluster(t)
	r := csipb.NewControllerClient(dialUnix(t, cl.router))
	rmeta := csipb.NewSnapshotMetadataClient(dialUnix(t, cl.router))
	ctx := context.Background()
	a, b := cl.nodes["node-a"], cl.nodes["node-b"]
	create := func(t *testing.T, name string, top *csipb.TopologyRequirement, src *csipb.VolumeContentSource) (*csipb.Volume, error) {
		t.Helper()
		resp, err := r.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: blockCaps(),
			CapacityRange: &csipb.CapacityRange{RequiredBytes: 16 << 20}, AccessibilityRequirements: top, VolumeContentSource: src})
		return resp.GetVolume(), err
	}
	mustCreate := func(t *testing.T, name string, top *csipb.TopologyRequirement, src *csipb.VolumeContentSource) *csipb.Volume {
		t.Helper()
		v, err := create(t, name, top, src)
		if err != nil {
			t.Fatalf("CreateVolume %s: %v", name, err)
		}
		return v
	}
	snapshot := func(t *testing.T, name, src string) string {
		t.Helper()
		s, err := r.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: name, SourceVolumeId: src})
		if err != nil {
			t.Fatalf("CreateSnapshot %s: %v", name, err)
		}
		return s.GetSnapshot().GetSnapshotId()
	}

	var onB string // a volume of node-b's, for the later parts
	t.Run("a volume lands in the pool of the node its topology prefers", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			top  *csipb.TopologyRequirement
			want string
		}{
			{"pvc-b", &csipb.TopologyRequirement{Requisite: onNode("node-a", "node-b"), Preferred: onNode("node-b", "node-a")}, "node-b"},
			{"pvc-a", &csipb.TopologyRequirement{Requisite: onNode("node-a")}, "node-a"},
			{"pvc-b2", &csipb.TopologyRequirement{Preferred: onNode("node-b")}, "node-b"},
		} {
			v := mustCreate(t, tc.name, tc.top, nil)
			other := map[string]string{"node-a": "node-b", "node-b": "node-a"}[tc.want]
			if node, _, _ := csi.SplitID(v.GetVolumeId()); node != tc.want || !cl.has(t, tc.want, v.GetVolumeId()) || cl.has(t, other, csi.ID(other, thindName(t, v.GetVolumeId()))) {
				t.Fatalf("%s: id %s: want it in %s's pool only", tc.name, v.GetVolumeId(), tc.want)
			}
			if got := v.GetAccessibleTopology(); len(got) != 1 || got[0].GetSegments()[csi.TopologyKey] != tc.want {
				t.Fatalf("%s: accessible topology %v, want %s", tc.name, got, tc.want)
			}
			// A retry, by any route, finds the same volume.
			if again := mustCreate(t, tc.name, nil, nil); again.GetVolumeId() != v.GetVolumeId() {
				t.Fatalf("%s: a retry made %s, the first try %s", tc.name, again.GetVolumeId(), v.GetVolumeId())
			}
		}
		onB = csi.ID("node-b", csi.VolumeName("pvc-b"))
	})

	t.Run("snapshots and clones stay on their source's node", func(t *testing.T) {
		snap := snapshot(t, "snap-b", onB)
		if !strings.HasPrefix(snap, "node-b/") || !cl.has(t, "node-b", snap) {
			t.Fatalf("snapshot %s of %s: want it in node-b's pool", snap, onB)
		}
		fromSnap := &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: snap}}}
		fromVol := &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: onB}}}
		for name, src := range map[string]*csipb.VolumeContentSource{"clone-of-snap": fromSnap, "clone-of-vol": fromVol} {
			v := mustCreate(t, name, &csipb.TopologyRequirement{Requisite: onNode("node-a", "node-b"), Preferred: onNode("node-a")}, src)
			if !strings.HasPrefix(v.GetVolumeId(), "node-b/") || !cl.has(t, "node-b", v.GetVolumeId()) {
				t.Fatalf("%s: id %s, want a clone in node-b's pool", name, v.GetVolumeId())
			}
		}
		// A clone the topology keeps off its source's node cannot be.
		_, err := create(t, "clone-on-a", &csipb.TopologyRequirement{Requisite: onNode("node-a")}, fromSnap)
		wantCode(t, "a clone required on another node", err, codes.ResourceExhausted)
		if cl.has(t, "node-a", csi.ID("node-a", csi.VolumeName("clone-on-a"))) {
			t.Fatal("node-a made the clone of node-b's snapshot")
		}
	})

	t.Run("SnapshotMetadata through the router equals the direct answer", func(t *testing.T) {
		v := mustCreate(t, "pvc-meta", &csipb.TopologyRequirement{Requisite: onNode("node-b")}, nil).GetVolumeId()
		cl.write(t, "node-b", v, "write -P 0x11 0 1M", "write -P 0x22 8M 64k")
		s1 := snapshot(t, "meta-1", v)
		cl.write(t, "node-b", v, "write -P 0x33 4M 256k", "write -z 8M 64k")
		s2 := snapshot(t, "meta-2", v)
		for _, tc := range []struct {
			what string
			get  func(csipb.SnapshotMetadataClient, int32) ([]*csipb.BlockMetadata, error)
		}{
			{"allocated", func(m csipb.SnapshotMetadataClient, max int32) ([]*csipb.BlockMetadata, error) {
				s, err := m.GetMetadataAllocated(ctx, &csipb.GetMetadataAllocatedRequest{SnapshotId: s2, MaxResults: max})
				return drain[*csipb.GetMetadataAllocatedResponse](s, err)
			}},
			{"delta", func(m csipb.SnapshotMetadataClient, max int32) ([]*csipb.BlockMetadata, error) {
				s, err := m.GetMetadataDelta(ctx, &csipb.GetMetadataDeltaRequest{BaseSnapshotId: s1, TargetSnapshotId: s2, MaxResults: max})
				return drain[*csipb.GetMetadataDeltaResponse](s, err)
			}},
		} {
			for _, max := range []int32{0, 1} {
				routed, err := tc.get(rmeta, max)
				if err != nil {
					t.Fatalf("%s through the router: %v", tc.what, err)
				}
				direct, err := tc.get(b.meta, max)
				if err != nil {
					t.Fatalf("%s from node-b: %v", tc.what, err)
				}
				if len(direct) == 0 || !slices.EqualFunc(routed, direct, func(x, y *csipb.BlockMetadata) bool {
					return x.GetByteOffset() == y.GetByteOffset() && x.GetSizeBytes() == y.GetSizeBytes()
				}) {
					t.Fatalf("%s (max %d): the router gives %v, node-b %v", tc.what, max, routed, direct)
				}
				t.Logf("%s (max_results %d): %d ranges, the same through the router", tc.what, max, len(routed))
			}
		}
		onA := snapshot(t, "meta-a", csi.ID("node-a", csi.VolumeName("pvc-a")))
		s, err := rmeta.GetMetadataDelta(ctx, &csipb.GetMetadataDeltaRequest{BaseSnapshotId: onA, TargetSnapshotId: s2})
		_, err = drain[*csipb.GetMetadataDeltaResponse](s, err)
		wantCode(t, "a delta across nodes", err, codes.FailedPrecondition)
	})

	t.Run("a controller refuses another node's id", func(t *testing.T) {
		_, err := a.ctl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: onB})
		wantCode(t, "node-a deletes node-b's volume", err, codes.InvalidArgument)
		_, err = a.ctl.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: csi.ID("node-b", csi.SnapshotName("snap-b"))})
		wantCode(t, "node-a deletes node-b's snapshot", err, codes.InvalidArgument)
		_, err = a.ctl.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{VolumeId: onB, VolumeCapabilities: blockCaps()})
		wantCode(t, "node-a validates node-b's volume", err, codes.InvalidArgument)
		_, err = a.ctl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "snap-elsewhere", SourceVolumeId: onB})
		wantCode(t, "node-a snapshots node-b's volume", err, codes.InvalidArgument)
		if !cl.has(t, "node-b", onB) || !cl.has(t, "node-b", csi.ID("node-b", csi.SnapshotName("snap-b"))) {
			t.Fatal("node-b lost a volume to node-a's controller")
		}
		// An id of no node is nothing of the driver's, anywhere.
		if _, err := r.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "csi-v-pvc-b"}); err != nil {
			t.Fatalf("the router deletes an id of no node: %v", err)
		}
		if !cl.has(t, "node-b", onB) {
			t.Fatal("an id without its node deleted node-b's volume")
		}
	})

	t.Run("the lists page through both nodes in order", func(t *testing.T) {
		var want []string
		for _, n := range cl.names {
			vols, err := cl.nodes[n].c.Volumes(ctx, map[string]string{csi.LabelKind: csi.KindVolume})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, v := range vols {
				ids = append(ids, csi.ID(n, v.Name))
			}
			slices.Sort(ids)
			want = append(want, ids...)
		}
		for _, max := range []int32{0, 1, 2, 3} {
			var got []string
			token := ""
			for page := 0; ; page++ {
				resp, err := r.ListVolumes(ctx, &csipb.ListVolumesRequest{MaxEntries: max, StartingToken: token})
				if err != nil {
					t.Fatalf("ListVolumes max %d page %d: %v", max, page, err)
				}
				if max > 0 && len(resp.GetEntries()) > int(max) {
					t.Fatalf("ListVolumes max %d: %d entries", max, len(resp.GetEntries()))
				}
				for _, e := range resp.GetEntries() {
					got = append(got, e.GetVolume().GetVolumeId())
				}
				if token = resp.GetNextToken(); token == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ListVolumes max %d:\n got %v\nwant %v", max, got, want)
			}
		}
		var snaps []string
		token := ""
		for {
			resp, err := r.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{MaxEntries: 1, StartingToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.GetEntries() {
				snaps = append(snaps, e.GetSnapshot().GetSnapshotId())
			}
			if token = resp.GetNextToken(); token == "" {
				break
			}
		}
		if len(snaps) != 4 || !slices.IsSorted(snaps) || snaps[0] != csi.ID("node-a", csi.SnapshotName("meta-a")) {
			t.Fatalf("ListSnapshots: %v, want node-a's one then node-b's three", snaps)
		}
		_, err := r.ListVolumes(ctx, &csipb.ListVolumesRequest{StartingToken: "not-a-token"})
		wantCode(t, "a token the router never gave", err, codes.Aborted)
	})

	t.Run("GetCapacity asks the segment's node, or sums them", func(t *testing.T) {
		one, err := r.GetCapacity(ctx, &csipb.GetCapacityRequest{AccessibleTopology: onNode("node-a")[0]})
		if err != nil {
			t.Fatal(err)
		}
		direct, err := a.ctl.GetCapacity(ctx, &csipb.GetCapacityRequest{AccessibleTopology: onNode("node-a")[0]})
		if err != nil || one.GetAvailableCapacity() != direct.GetAvailableCapacity() || one.GetAvailableCapacity() == 0 {
			t.Fatalf("node-a's capacity: %v through the router, %v (%v) directly", one, direct, err)
		}
		all, err := r.GetCapacity(ctx, &csipb.GetCapacityRequest{})
		if err != nil || all.GetAvailableCapacity() <= one.GetAvailableCapacity() {
			t.Fatalf("the cluster's capacity %v (%v): want more than node-a's %d", all, err, one.GetAvailableCapacity())
		}
	})

	t.Run("the controllers take only certificates their CA signed", func(t *testing.T) {
		// No client certificate at all.
		tc, err := cl.ca.issue("plain").ClientTLS()
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates, tc.ServerName = nil, "node-a"
		cc, err := grpc.NewClient("passthrough:///"+a.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = csipb.NewControllerClient(cc).DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: csi.ID("node-a", csi.VolumeName("pvc-a"))})
		if err == nil {
			t.Fatal("node-a's controller served a client without a certificate")
		}
		// A router whose certificate another CA signed.
		rogue, err := newTestCA(t, cl.dir, "rogue").issue("rogue-router").ClientTLS()
		if err != nil {
			t.Fatal(err)
		}
		rogue.RootCAs = mustClientTLS(t, cl.ca.issue("router2")).RootCAs // it trusts the nodes, they do not trust it
		ep := "unix://" + filepath.Join(cl.dir, "rogue.sock")
		cl.serveRouter(t, ep, rogue)
		_, err = csipb.NewControllerClient(dialUnix(t, ep)).DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: csi.ID("node-a", csi.VolumeName("pvc-a"))})
		wantCode(t, "a router the nodes do not trust", err, codes.Unavailable)
		if !cl.has(t, "node-a", csi.ID("node-a", csi.VolumeName("pvc-a"))) {
			t.Fatal("a rogue router deleted node-a's volume")
		}
	})

	t.Run("a stopped node is UNAVAILABLE, never not found or deleted", func(t *testing.T) {
		b.stop()
		snapB := csi.ID("node-b", csi.SnapshotName("snap-b"))
		for what, call := range map[string]func() error{
			"DeleteVolume": func() error { _, err := r.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: onB}); return err },
			"DeleteSnapshot": func() error {
				_, err := r.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: snapB})
				return err
			},
			"GetSnapshot": func() error { _, err := r.GetSnapshot(ctx, &csipb.GetSnapshotRequest{SnapshotId: snapB}); return err },
			"ValidateVolumeCapabilities": func() error {
				_, err := r.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{VolumeId: onB, VolumeCapabilities: blockCaps()})
				return err
			},
			"ListVolumes":   func() error { _, err := r.ListVolumes(ctx, &csipb.ListVolumesRequest{}); return err },
			"ListSnapshots": func() error { _, err := r.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{}); return err },
			"GetMetadataAllocated": func() error {
				s, err := rmeta.GetMetadataAllocated(ctx, &csipb.GetMetadataAllocatedRequest{SnapshotId: snapB})
				_, err = drain[*csipb.GetMetadataAllocatedResponse](s, err)
				return err
			},
			// The name may be on the node out of reach: no new volume.
			"CreateVolume on node-a": func() error {
				_, err := create(t, "pvc-new", &csipb.TopologyRequirement{Requisite: onNode("node-a")}, nil)
				return err
			},
		} {
			wantCode(t, what+" of a stopped node", call(), codes.Unavailable)
		}
		if !cl.has(t, "node-b", onB) || !cl.has(t, "node-b", snapB) {
			t.Fatal("node-b's volumes went while its controller was down")
		}
		// node-a's own ids still work.
		if _, err := r.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{
			VolumeId: csi.ID("node-a", csi.VolumeName("pvc-a")), VolumeCapabilities: blockCaps()}); err != nil {
			t.Fatalf("node-a's volume through the router: %v", err)
		}
	})
}

func mustClientTLS(t *testing.T, f csi.TLSFiles) *tls.Config {
	t.Helper()
	tc, err := f.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// drain collects a SnapshotMetadata stream's ranges.
func drain[T interface{ GetBlockMetadata() []*csipb.BlockMetadata }](s interface{ Recv() (T, error) }, err error) ([]*csipb.BlockMetadata, error) {
	if err != nil {
		return nil, err
	}
	var out []*csipb.BlockMetadata
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m.GetBlockMetadata()...)
	}
}
