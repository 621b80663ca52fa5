package test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
)

// readmeCerts are README's openssl commands for the router ↔ controller
// certificate (section Kubernetes), run as they are written.
const readmeCerts = `set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=thind-csi-controller-ca -keyout ca.key -out ca.crt
openssl req -newkey rsa:2048 -nodes -subj /CN=thind-csi-controller -addext subjectAltName=DNS:thind-csi-controller -keyout tls.key -out tls.csr
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -copy_extensions copy -extfile <(printf 'extendedKeyUsage=serverAuth,clientAuth') -out tls.crt
`

// TestThindCSIRouterBinary runs `thind csi --mode controller --listen`
// and `thind csi --mode router` as processes, with the certificate
// README's commands make: a volume created and deleted through the
// router lands in, and leaves, the daemon's pool; with the controller
// killed the router says UNAVAILABLE.
func TestThindCSIRouterBinary(t *testing.T) {
	d := startDaemon(t)
	certs := t.TempDir()
	cmd := exec.Command("bash", "-c", readmeCerts)
	cmd.Dir = certs
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README's openssl commands: %v\n%s", err, out)
	}
	tlsFlags := []string{"--tls-cert", filepath.Join(certs, "tls.crt"), "--tls-key", filepath.Join(certs, "tls.key"), "--tls-ca", filepath.Join(certs, "ca.crt")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	// The node is "localhost", so that {node}:PORT reaches it.
	ctlSock := filepath.Join(d.base, "ctl.sock")
	ctl := exec.Command(thindBin, append([]string{"csi", "--mode", "controller", "--endpoint", "unix://" + ctlSock,
		"--node-id", "localhost", "--data-dir", d.dir, "--listen", "127.0.0.1:" + port}, tlsFlags...)...)
	ctl.Env = daemonEnv()
	_, killCtl := tooltest.StartGRPC(t, ctl, ctlSock)
	routerSock := filepath.Join(d.base, "router.sock")
	rt := exec.Command(thindBin, append([]string{"csi", "--mode", "router", "--endpoint", "unix://" + routerSock,
		"--nodes", "localhost", "--node-address", "{node}:" + port, "--tls-server-name", "thind-csi-controller"}, tlsFlags...)...)
	rt.Env = daemonEnv()
	cc, _ := tooltest.StartGRPC(t, rt, routerSock)
	r := csipb.NewControllerClient(cc)
	ctx := context.Background()

	var id string
	waitFor(t, "the router to reach the controller", time.Minute, func() error {
		resp, err := r.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-routed",
			CapacityRange: &csipb.CapacityRange{RequiredBytes: 4 << 20},
			VolumeCapabilities: []*csipb.VolumeCapability{{
				AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
				AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			}},
			AccessibilityRequirements: &csipb.TopologyRequirement{Requisite: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "localhost"}}}},
		})
		id = resp.GetVolume().GetVolumeId()
		return err
	})
	if want := csi.ID("localhost", csi.VolumeName("pvc-routed")); id != want {
		t.Fatalf("id %q, want %q", id, want)
	}
	if v := d.volume(csi.VolumeName("pvc-routed")); v.Size != 4<<20 {
		t.Fatalf("the daemon has %+v", v)
	}
	if _, err := r.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
	for _, v := range d.volumes() {
		if v.Name == csi.VolumeName("pvc-routed") {
			t.Fatal("DeleteVolume through the router left the volume")
		}
	}
	killCtl()
	_, err = r.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: csi.ID("localhost", csi.VolumeName("pvc-other"))})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("DeleteVolume with the controller killed: %v, want UNAVAILABLE", err)
	}
	// And the flags' mistakes are clear errors.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"csi", "--mode", "router", "--nodes", "n1"}, "--tls-cert, --tls-key and --tls-ca"},
		{append([]string{"csi", "--mode", "router"}, tlsFlags...), "needs --nodes"},
		{append([]string{"csi", "--mode", "router", "--nodes", "n1", "--node-address", "n1:1"}, tlsFlags...), "want exactly one of"},
		{[]string{"csi", "--mode", "node", "--node-id", "n1", "--listen", ":0", "--data-dir", d.dir}, "only --mode controller serves the router"},
		{[]string{"csi", "--mode", "controller", "--node-id", "n1", "--listen", ":0", "--data-dir", d.dir}, "--tls-cert, --tls-key and --tls-ca"},
	} {
		c := exec.Command(thindBin, tc.args...)
		c.Env = append(daemonEnv(), "KUBERNETES_SERVICE_HOST=")
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("thind %v: %v\n%s\nwant an error saying %q", tc.args, err, out, tc.want)
		}
	}
}
