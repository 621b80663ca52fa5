package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
)

// TestThindCSIServesAndStops runs `thind csi --mode controller` as a
// user does, against `thind serve`: it answers over its socket, creates
// volumes in the daemon's pool, and exits 0 on SIGTERM. Bad flags are
// one clear line.
func TestThindCSIServesAndStops(t *testing.T) {
	d := startDaemon(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"csi", "--mode", "both", "--node-id", "n1"}, `--mode "both": want "controller", "node" or "router"`},
		{[]string{"csi", "--mode", "controller"}, "--node-id is required"},
		{[]string{"csi", "--mode", "controller", "--node-id", "n1", "--endpoint", "tcp://127.0.0.1:1"}, "want unix:///path/to/csi.sock"},
	} {
		out, errOut, code := runThind(t, append(daemonEnv(), "NODE_ID=", "THIND_DATA_DIR="+d.dir), tc.args...)
		checkOneLineError(t, tc.args, out, errOut, code, tc.want)
	}

	sock := filepath.Join(d.base, "csi.sock")
	cmd := exec.Command(thindBin, "csi", "--mode", "controller", "--endpoint", "unix://"+sock, "--node-id", "n1", "--data-dir", d.dir)
	cmd.Env = daemonEnv()
	logPath := filepath.Join(d.base, "csi.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("thind csi:\n%s", b)
		}
	})
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	id := csipb.NewIdentityClient(cc)
	ctx := context.Background()
	waitFor(t, "thind csi to answer", time.Minute, func() error {
		_, err := os.Stat(sock)
		return err
	})
	info, err := id.GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	if err != nil || info.GetName() != csi.DriverName {
		t.Fatalf("GetPluginInfo: %v %v", info, err)
	}
	if p, err := id.Probe(ctx, &csipb.ProbeRequest{}); err != nil || !p.GetReady().GetValue() {
		t.Fatalf("Probe: %v %v", p, err)
	}
	vol, err := csipb.NewControllerClient(cc).CreateVolume(ctx, &csipb.CreateVolumeRequest{
		Name:          "pvc-from-the-binary",
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 8 << 20},
		VolumeCapabilities: []*csipb.VolumeCapability{{
			AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, name, _ := csi.SplitID(vol.GetVolume().GetVolumeId()); d.volume(name).Size != 8<<20 {
		t.Fatalf("the daemon has %+v", d.volume(name))
	}
	if v := d.volume(csi.VolumeName("pvc-from-the-binary")); v.Size != 8<<20 {
		t.Fatalf("the daemon has %+v", v)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("thind csi exited with %v after SIGTERM, want 0", waitErr)
		}
	case <-time.After(time.Minute):
		t.Fatal("thind csi did not stop within a minute of SIGTERM")
	}
}

// startCSI runs `thind csi --mode controller` on sock against d and
// returns a client of it and a kill -9.
func startCSI(t *testing.T, d *daemon, sock string) (csipb.ControllerClient, func()) {
	t.Helper()
	cc, kill := startCSIConn(t, d, sock)
	return csipb.NewControllerClient(cc), kill
}

// startCSIConn is startCSI with a connection for any of its services.
func startCSIConn(t *testing.T, d *daemon, sock string) (*grpc.ClientConn, func()) {
	t.Helper()
	cmd := exec.Command(thindBin, "csi", "--mode", "controller", "--endpoint", "unix://"+sock, "--node-id", "n1", "--data-dir", d.dir)
	cmd.Env = daemonEnv()
	cc, kill := tooltest.StartGRPC(t, cmd, sock)
	return cc, kill
}

// TestThindCSIKilledMidRPCConverges kills `thind csi` with SIGKILL at
// random moments of CreateVolume, CreateSnapshot, ControllerExpandVolume,
// DeleteSnapshot and DeleteVolume, then retries each on a new process:
// every retry succeeds and the pool ends as if each RPC had run once.
func TestThindCSIKilledMidRPCConverges(t *testing.T) {
	d := startDaemon(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	capability := []*csipb.VolumeCapability{{
		AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
	const rounds = 4
	for i := range rounds {
		vol, snap := fmt.Sprintf("pvc-%d", i), fmt.Sprintf("snap-%d", i)
		steps := []func(csipb.ControllerClient) error{
			func(c csipb.ControllerClient) error {
				_, err := c.CreateVolume(context.Background(), &csipb.CreateVolumeRequest{Name: vol, VolumeCapabilities: capability,
					CapacityRange: &csipb.CapacityRange{RequiredBytes: 4 << 20}})
				return err
			},
			func(c csipb.ControllerClient) error {
				_, err := c.CreateSnapshot(context.Background(), &csipb.CreateSnapshotRequest{Name: snap, SourceVolumeId: csi.ID("n1", csi.VolumeName(vol))})
				return err
			},
			func(c csipb.ControllerClient) error {
				_, err := c.ControllerExpandVolume(context.Background(), &csipb.ControllerExpandVolumeRequest{VolumeId: csi.ID("n1", csi.VolumeName(vol)),
					CapacityRange: &csipb.CapacityRange{RequiredBytes: 8 << 20}})
				return err
			},
			func(c csipb.ControllerClient) error {
				_, err := c.DeleteSnapshot(context.Background(), &csipb.DeleteSnapshotRequest{SnapshotId: csi.ID("n1", csi.SnapshotName(snap))})
				return err
			},
		}
		if i%2 == 0 { // half the volumes are deleted again
			steps = append(steps, func(c csipb.ControllerClient) error {
				_, err := c.DeleteVolume(context.Background(), &csipb.DeleteVolumeRequest{VolumeId: csi.ID("n1", csi.VolumeName(vol))})
				return err
			})
		}
		for j, step := range steps {
			sock := filepath.Join(d.base, fmt.Sprintf("k%d-%d.sock", i, j))
			c, kill := startCSI(t, d, sock)
			go step(c) // the try the kill interrupts; its result does not matter
			time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond)
			kill()
			c, kill = startCSI(t, d, sock+"2")
			// The new process needs a moment to listen: retry as a CO does.
			var err error
			for try := 0; try < 200; try++ {
				if err = step(c); status.Code(err) != codes.Unavailable {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("round %d step %d: the retry failed: %v", i, j, err)
			}
			kill()
		}
	}
	var got []string
	for _, v := range d.volumes() {
		if strings.HasPrefix(v.Name, "csi-") {
			got = append(got, fmt.Sprintf("%s:%d", v.Name, v.Size))
		}
	}
	var want []string
	for i := 1; i < rounds; i += 2 {
		want = append(want, fmt.Sprintf("%s:%d", csi.VolumeName(fmt.Sprintf("pvc-%d", i)), 8<<20))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the pool holds %v, want %v", got, want)
	}
}
