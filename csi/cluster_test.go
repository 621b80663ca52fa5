package csi_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
)

// cluster is two storage nodes, each a daemon with its pool and its
// controller, on a unix socket for its own sidecars and on TCP with
// mutual TLS for the router; and the router in front of both, as
// deploy/kubernetes lays them out.
type cluster struct {
	dir    string
	router string // the router's unix endpoint
	// node is node-a's node plugin: csi-sanity cleans up through one
	// (its unpublish and unstage of another node's volume are no-ops).
	node  string
	ca    *testCA
	nodes map[string]*clusterNode
	names []string
}

type clusterNode struct {
	*env
	addr string // the controller's TCP address
	stop func() // stops the controller (the daemon runs on)
	c    *control.Client
	ctl  csipb.ControllerClient       // the controller, directly
	meta csipb.SnapshotMetadataClient // the same, SnapshotMetadata
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := tooltest.ShortDir(t)
	cl := &cluster{dir: dir, router: "unix://" + filepath.Join(dir, "router.sock"), ca: newTestCA(t, dir, "thind"),
		nodes: map[string]*clusterNode{}, names: []string{"node-a", "node-b"}}
	for _, name := range cl.names {
		ndir := filepath.Join(dir, name)
		if err := os.Mkdir(ndir, 0o755); err != nil {
			t.Fatal(err)
		}
		e := startPool(t, ndir)
		tc, err := cl.ca.issue(name).ServerTLS()
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := &clusterNode{env: e, addr: l.Addr().String(), c: control.New(e.controlSock)}
		t.Cleanup(n.c.Close)
		n.stop = serveDriver(t, csi.Config{Mode: csi.ModeController, NodeID: name, ControlSocket: e.controlSock}, e.controller,
			csi.Remote{Listener: l, TLS: tc})
		cc := dialUnix(t, e.controller)
		n.ctl, n.meta = csipb.NewControllerClient(cc), csipb.NewSnapshotMetadataClient(cc)
		cl.nodes[name] = n
	}
	tc, err := cl.ca.issue("router").ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	cl.serveRouter(t, cl.router, tc)
	a := cl.nodes["node-a"]
	cl.node = "unix://" + filepath.Join(a.dir, "node.sock")
	serveDriver(t, csi.Config{Mode: csi.ModeNode, NodeID: "node-a", ControlSocket: a.controlSock,
		StateDir: filepath.Join(a.dir, "csi"), Attacher: csi.ExecAttacher{Binary: "thind", NBDSocket: a.nbdSock}}, cl.node)
	return cl
}

// serveRouter serves a router with the client TLS tc on endpoint.
func (cl *cluster) serveRouter(t *testing.T, endpoint string, tc *tls.Config) {
	t.Helper()
	r, err := csi.NewRouter(csi.RouterConfig{
		Address: func(_ context.Context, node string) (string, error) {
			if n, ok := cl.nodes[node]; ok {
				return n.addr, nil
			}
			return "", fmt.Errorf("no node %s in this cluster", node)
		},
		Nodes: csi.StaticNodes(cl.names), TLS: tc, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := csi.Listen(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	serveUntilStopped(t, func(ctx context.Context) error { return r.Serve(ctx, l) })
}

func dialUnix(t *testing.T, endpoint string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
