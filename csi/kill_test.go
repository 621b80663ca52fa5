package csi_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/internal/tooltest"
)

// The kill test starts `thind csi --mode node` processes itself: it
// needs the binary and the NBD address the node attaches to.
var (
	killBinary  = flag.String("csi.thind", "", "the thind binary whose node driver TestNodeKilledMidRPCConverges kills")
	killNBDAddr = flag.String("csi.nbd-addr", "", "the daemon's NBD TCP address the killed node drivers attach to")
)

// nodeProc runs `thind csi --mode node` on sock and returns a client of
// it and a kill -9.
func nodeProc(t *testing.T, e *env, sock string) (csipb.NodeClient, func()) {
	t.Helper()
	cmd := exec.Command(*killBinary, "csi", "--mode", "node", "--endpoint", "unix://"+sock, "--node-id", "vm",
		"--control-socket", e.controlSock, "--addr", *killNBDAddr, "--state-dir", filepath.Join(e.dir, "csi"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cc, kill := tooltest.StartGRPC(t, cmd, sock)
	return csipb.NewNodeClient(cc), kill
}

// TestNodeKilledMidRPCConverges kills the node driver with SIGKILL at a
// random moment of each of NodeStageVolume, NodePublishVolume,
// NodeExpandVolume (online, after the controller grew the published
// volume), NodeUnpublishVolume and NodeUnstageVolume, then retries the
// RPC on a new process: each retry succeeds, the volume ends staged and
// published (a file written through it reads back), its filesystem grown
// to the new size with no resize left running, and then released, with
// no mount and no NBD connection left. It needs the kernel's NBD client and
// runs in the kernel VM suite (test/vm/thind.sh, part csi).
func TestNodeKilledMidRPCConverges(t *testing.T) {
	if *killBinary == "" || *killNBDAddr == "" || *extController == "" {
		t.Skip("needs -csi.thind, -csi.nbd-addr and the running controller of -csi.controller (the kernel VM suite)")
	}
	e := startEnv(t, false)
	cl := dial(t, e)
	ctx := context.Background()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	c := fsCap("ext4")
	const grown = 256 << 20
	vol, err := cl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-kill", VolumeCapabilities: []*csipb.VolumeCapability{c},
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id := vol.GetVolume().GetVolumeId()
	staging := filepath.Join(e.dir, "staging", id)
	target := filepath.Join(e.dir, "pods", id, "mount")
	steps := []struct {
		name string
		rpc  func(csipb.NodeClient) error
	}{
		{"stage", func(n csipb.NodeClient) error {
			_, err := n.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: c})
			return err
		}},
		{"publish", func(n csipb.NodeClient) error {
			_, err := n.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: c})
			return err
		}},
		{"expand", func(n csipb.NodeClient) error {
			_, err := n.NodeExpandVolume(ctx, &csipb.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, VolumeCapability: c,
				CapacityRange: &csipb.CapacityRange{RequiredBytes: grown}})
			return err
		}},
		{"unpublish", func(n csipb.NodeClient) error {
			_, err := n.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
			return err
		}},
		{"unstage", func(n csipb.NodeClient) error {
			_, err := n.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
			return err
		}},
	}
	for i, s := range steps {
		if s.name == "expand" {
			// Online: the volume grows while staged and published.
			if _, err := cl.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csipb.CapacityRange{RequiredBytes: grown}, VolumeCapability: c}); err != nil {
				t.Fatal(err)
			}
		}
		sock := filepath.Join(e.dir, fmt.Sprintf("k%d.sock", i))
		n, kill := nodeProc(t, e, sock)
		for try := 0; try < 300 && !exists(sock); try++ {
			time.Sleep(10 * time.Millisecond)
		}
		go s.rpc(n) // the try the kill interrupts; its result does not matter
		start := time.Now()
		moment := ""
		if s.name == "expand" {
			// In the middle of the filesystem's grow: the driver dies
			// with its resize2fs still running, which the retry must
			// not race (growFS).
			seen := false
			for !seen && time.Since(start) < 3*time.Second {
				if seen = len(running(t, "resize2fs")) > 0; !seen {
					time.Sleep(5 * time.Millisecond)
				}
			}
			moment = fmt.Sprintf(" (resize2fs running: %v)", seen)
			time.Sleep(time.Duration(rnd.IntN(50)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(rnd.IntN(1500)) * time.Millisecond)
		}
		ms := time.Since(start).Milliseconds()
		kill()
		n, kill = nodeProc(t, e, sock+"2")
		var err error
		for try := 0; try < 300; try++ {
			if err = s.rpc(n); status.Code(err) != codes.Unavailable {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s, killed after %d ms: the retry failed: %v", s.name, ms, err)
		}
		t.Logf("%s: killed after %d ms%s, the retry succeeded", s.name, ms, moment)
		if s.name == "expand" {
			// The filesystem ends at the new size, its file intact, and
			// no resize is left running.
			var st unix.Statfs_t
			if err := unix.Statfs(target, &st); err != nil {
				t.Fatal(err)
			}
			if total := int64(st.Blocks) * st.Bsize; total < grown*3/4 {
				t.Fatalf("after the expand's retry the filesystem is %d bytes, want about %d", total, grown)
			}
			if got, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(got) != "kept" {
				t.Fatalf("after the expand the volume reads %q %v", got, err)
			}
			if p := running(t, "resize2fs", "xfs_growfs"); len(p) != 0 {
				t.Fatalf("still running after the expand's retry: %v", p)
			}
		}
		if s.name == "publish" {
			if err := os.WriteFile(filepath.Join(target, "f"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(got) != "kept" {
				t.Fatalf("the published volume reads %q %v", got, err)
			}
		}
		kill()
	}
	if m := mountsUnder(t, e.dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
	// The attach process of an interrupted stage may take a moment to
	// notice its device was disconnected.
	deadline := time.Now().Add(30 * time.Second)
	for len(nbdConnected(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if d := nbdConnected(t); len(d) != 0 {
		t.Fatalf("NBD devices left connected: %s", strings.Join(d, " "))
	}
	if _, err := cl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// running lists the processes whose command is one of names.
func running(t *testing.T, names ...string) []string {
	t.Helper()
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil {
			continue // gone meanwhile
		}
		if comm := strings.TrimSpace(string(b)); slices.Contains(names, comm) {
			out = append(out, filepath.Base(filepath.Dir(c))+" "+comm)
		}
	}
	return out
}
