package test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/randtest"
)

// metadataStream is either SnapshotMetadata stream, as collect reads it.
type metadataStream interface {
	Recv() (metadataMessage, error)
}

type metadataMessage interface {
	GetBlockMetadataType() csipb.BlockMetadataType
	GetVolumeCapacityBytes() int64
	GetBlockMetadata() []*csipb.BlockMetadata
}

type allocatedStream struct {
	csipb.SnapshotMetadata_GetMetadataAllocatedClient
}

func (s allocatedStream) Recv() (metadataMessage, error) {
	return s.SnapshotMetadata_GetMetadataAllocatedClient.Recv()
}

type deltaStream struct {
	csipb.SnapshotMetadata_GetMetadataDeltaClient
}

func (s deltaStream) Recv() (metadataMessage, error) {
	return s.SnapshotMetadata_GetMetadataDeltaClient.Recv()
}

// collect reads a stream to its end and checks every message against
// the spec: VARIABLE_LENGTH, the capacity, at most maxResults ranges,
// ranges ascending, apart and not empty, the first ending after start.
func collect(t *testing.T, s metadataStream, err error, capacity int64, start int64, maxResults int32) ([]control.DiffRange, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	var out []control.DiffRange
	msgs := 0
	next := int64(-1)
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		msgs++
		if m.GetBlockMetadataType() != csipb.BlockMetadataType_VARIABLE_LENGTH || m.GetVolumeCapacityBytes() != capacity {
			t.Fatalf("message %d: type %v capacity %d, want VARIABLE_LENGTH %d", msgs, m.GetBlockMetadataType(), m.GetVolumeCapacityBytes(), capacity)
		}
		if maxResults > 0 && len(m.GetBlockMetadata()) > int(maxResults) {
			t.Fatalf("message %d: %d ranges, max_results %d", msgs, len(m.GetBlockMetadata()), maxResults)
		}
		for _, b := range m.GetBlockMetadata() {
			switch {
			case b.SizeBytes <= 0, b.ByteOffset+b.SizeBytes > capacity:
				t.Fatalf("range %v of a %d byte snapshot", b, capacity)
			case b.ByteOffset <= next:
				t.Fatalf("range %v does not come after byte %d (touching ranges merge)", b, next)
			case next < 0 && b.ByteOffset+b.SizeBytes <= start:
				t.Fatalf("first range %v ends before starting_offset %d", b, start)
			}
			next = b.ByteOffset + b.SizeBytes
			out = append(out, control.DiffRange{Offset: uint64(b.ByteOffset), Length: uint64(b.SizeBytes)})
		}
	}
	if msgs == 0 {
		t.Fatal("the stream sent no message: the capacity never came")
	}
	return out, nil
}

func rangeBytes(rs []control.DiffRange) (n uint64) {
	for _, r := range rs {
		n += r.Length
	}
	return n
}

// TestSnapshotMetadataStreams drives `thind csi`'s SnapshotMetadata
// service over random writes and discards between CSI snapshots:
// GetMetadataAllocated gives the blocks the model says each snapshot
// maps, as `thind volume diff SNAPSHOT` does, GetMetadataDelta the ranges `thind volume diff` gives (changed and
// unmapped alike), both in random batch sizes; resumed mid-range from
// starting_offset they give the rest, totals adding up; with the daemon
// stopped thin_delta agrees. Bad requests get the spec's codes.
func TestSnapshotMetadataStreams(t *testing.T) {
	randtest.Each(t, 2, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t, "--data-size", "256M", "--metadata-size", "16M")
		cc, _ := startCSIConn(t, d, filepath.Join(d.base, "csi.sock"))
		ctl, sm := csipb.NewControllerClient(cc), csipb.NewSnapshotMetadataClient(cc)
		ctx := context.Background()
		const size = 32 << 20
		capability := []*csipb.VolumeCapability{{
			AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}}
		for _, name := range []string{"vm", "other"} {
			waitFor(t, "thind csi to create a volume", time.Minute, func() error {
				_, err := ctl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: capability,
					CapacityRange: &csipb.CapacityRange{RequiredBytes: size}})
				return err
			})
		}
		// The test speaks thind names; CSI ids are NODE/NAME.
		vm := csi.VolumeName("vm")
		id := func(name string) string {
			if name == "" {
				return ""
			}
			return csi.ID("n1", name)
		}
		snap := func(src, name string) string {
			t.Helper()
			r, err := ctl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: name, SourceVolumeId: id(src)})
			if err != nil {
				t.Fatal(err)
			}
			_, n, _ := csi.SplitID(r.GetSnapshot().GetSnapshotId())
			return n
		}
		m := &blockModel{vols: map[string]map[int64]int{vm: {}, "": {}}}
		var snaps []string
		for i, ops := range []int{60, 40, 40} {
			m.workload(t, d, rng, vm, size, ops)
			id := snap(vm, []string{"s1", "s2", "s3"}[i])
			m.snapshot(vm, id)
			snaps = append(snaps, id)
		}
		m.workload(t, d, rng, vm, size, 20) // the volume moves on
		other := snap(csi.VolumeName("other"), "o1")
		maxResults := func() int32 { return []int32{0, 1, 2, 3, 7}[rng.IntN(5)] }

		allocated := func(snap string, start int64, max int32) ([]control.DiffRange, error) {
			s, err := sm.GetMetadataAllocated(ctx, &csipb.GetMetadataAllocatedRequest{SnapshotId: id(snap), StartingOffset: start, MaxResults: max})
			return collect(t, allocatedStream{s}, err, size, start, max)
		}
		delta := func(base, target string, start int64, max int32) ([]control.DiffRange, error) {
			s, err := sm.GetMetadataDelta(ctx, &csipb.GetMetadataDeltaRequest{BaseSnapshotId: id(base), TargetSnapshotId: id(target), StartingOffset: start, MaxResults: max})
			return collect(t, deltaStream{s}, err, size, start, max)
		}
		// resumes checks that a stream cut inside a range and resumed
		// from there gives the rest, so the totals add up.
		resumes := func(what string, full []control.DiffRange, from func(start int64) ([]control.DiffRange, error)) {
			t.Helper()
			if len(full) == 0 {
				return
			}
			r := full[len(full)/2]
			mid := r.Offset + min(4096, r.Length-1)
			rest, err := from(int64(mid))
			if err != nil {
				t.Fatalf("%s from %d: %v", what, mid, err)
			}
			head := rangeBytes(full) - rangeBytes(clipFrom(full, mid))
			if !slices.Equal(rest, clipFrom(full, mid)) || head+rangeBytes(rest) != rangeBytes(full) {
				t.Fatalf("%s resumed at %d:\n got %v\nwant %v", what, mid, rest, clipFrom(full, mid))
			}
		}

		for _, id := range snaps {
			got, err := allocated(id, 0, maxResults())
			if err != nil {
				t.Fatalf("GetMetadataAllocated %s: %v", id, err)
			}
			if want := dirtyOnly(m.dirty("", id, size)); !slices.Equal(got, want) {
				t.Fatalf("GetMetadataAllocated %s:\n got %v\nwant %v", id, got, want)
			}
			if cli, h := volumeDiff(t, d, "", id, 0); !slices.Equal(got, dirtyOnly(cli)) || h.Base != "" || h.Size != size {
				t.Fatalf("GetMetadataAllocated %s:\n got %v\nthind volume diff %s: %v (header %+v)", id, got, id, cli, h)
			}
			if v := d.volume(id); rangeBytes(got) != v.MappedBytes {
				t.Fatalf("GetMetadataAllocated %s: %d bytes, the volume maps %d", id, rangeBytes(got), v.MappedBytes)
			}
			resumes("GetMetadataAllocated "+id, got, func(s int64) ([]control.DiffRange, error) { return allocated(id, s, maxResults()) })
		}
		if text := d.mustCLI("volume", "diff", snaps[0]); !strings.HasPrefix(text, "# "+snaps[0]+" allocated from byte 0") {
			t.Fatalf("volume diff %s prints:\n%s", snaps[0], text)
		}
		pairs := [][2]string{{snaps[0], snaps[1]}, {snaps[1], snaps[2]}, {snaps[0], snaps[2]}, {snaps[2], snaps[0]}}
		got := map[[2]string][]control.DiffRange{}
		for _, p := range pairs {
			g, err := delta(p[0], p[1], 0, maxResults())
			if err != nil {
				t.Fatalf("GetMetadataDelta %s %s: %v", p[0], p[1], err)
			}
			cli, _ := volumeDiff(t, d, p[0], p[1], 0)
			if !slices.Equal(g, dirtyOnly(cli)) || !slices.Equal(g, dirtyOnly(m.dirty(p[0], p[1], size))) {
				t.Fatalf("GetMetadataDelta %s %s:\n got %v\nthind volume diff %v", p[0], p[1], g, cli)
			}
			resumes("GetMetadataDelta "+p[0]+" "+p[1], g, func(s int64) ([]control.DiffRange, error) { return delta(p[0], p[1], s, maxResults()) })
			t.Logf("GetMetadataDelta %s %s: %d ranges, %d bytes", p[0], p[1], len(g), rangeBytes(g))
			got[p] = g
		}
		if total := rangeBytes(got[pairs[0]]); total == 0 {
			t.Fatal("the workload changed nothing between s1 and s2")
		}
		// A stream from the very end is empty, but still says the capacity.
		if g, err := delta(snaps[0], snaps[1], size, 0); err != nil || len(g) != 0 {
			t.Fatalf("GetMetadataDelta from the end: %v %v", g, err)
		}

		for _, tc := range []struct {
			what string
			err  error
			want codes.Code
		}{
			{"allocated of no id", second(allocated("", 0, 0)), codes.InvalidArgument},
			{"allocated of a missing snapshot", second(allocated(csi.SnapshotName("nope"), 0, 0)), codes.NotFound},
			{"allocated of a volume", second(allocated(vm, 0, 0)), codes.NotFound},
			{"allocated from -1", second(allocated(snaps[0], -1, 0)), codes.OutOfRange},
			{"allocated past the end", second(allocated(snaps[0], size+1, 0)), codes.OutOfRange},
			{"allocated max_results -1", second(allocated(snaps[0], 0, -1)), codes.InvalidArgument},
			{"delta without a base", second(delta("", snaps[1], 0, 0)), codes.InvalidArgument},
			{"delta without a target", second(delta(snaps[0], "", 0, 0)), codes.InvalidArgument},
			{"delta of a missing base", second(delta(csi.SnapshotName("nope"), snaps[1], 0, 0)), codes.NotFound},
			{"delta of another volume's snapshot", second(delta(other, snaps[1], 0, 0)), codes.FailedPrecondition},
			{"delta of a volume", second(delta(snaps[0], vm, 0, 0)), codes.NotFound},
			{"delta past the end", second(delta(snaps[0], snaps[1], size+1, 0)), codes.OutOfRange},
		} {
			if status.Code(tc.err) != tc.want {
				t.Errorf("%s: %v, want %v", tc.what, tc.err, tc.want)
			}
		}
		caps, err := csipb.NewIdentityClient(cc).GetPluginCapabilities(ctx, &csipb.GetPluginCapabilitiesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(caps.GetCapabilities(), func(c *csipb.PluginCapability) bool {
			return c.GetService().GetType() == csipb.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE
		}) {
			t.Fatalf("GetPluginCapabilities does not offer SNAPSHOT_METADATA_SERVICE: %v", caps)
		}

		ids := map[string]uint64{}
		for _, v := range d.volumes() {
			ids[v.Name] = v.DevID
		}
		d.stop()
		meta := filepath.Join(d.dir, "metadata")
		for _, p := range pairs {
			if td := thinDeltaDirty(t, meta, ids[p[0]], ids[p[1]]); !slices.Equal(td, got[p]) {
				t.Fatalf("thin_delta %s %s:\n got %v\nwant %v", p[0], p[1], td, got[p])
			}
		}
	})
}

func second[T any](_ T, err error) error { return err }
