package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/thind-storage/thind/csi"
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
		{[]string{"csi", "--mode", "both", "--node-id", "n1"}, `--mode "both": want "controller" or "node"`},
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
	if v := d.volume(vol.GetVolume().GetVolumeId()); v.Size != 8<<20 {
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
