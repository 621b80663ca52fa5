package csi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// RouterConfig is what `thind csi --mode router` is given.
type RouterConfig struct {
	// Address is where node's controller listens (HOST:PORT): a template
	// such as "{node}:9807", or the Node's InternalIP (router_nodes.go).
	Address func(ctx context.Context, node string) (string, error)
	// Nodes are the nodes with a thind controller, for the RPCs that no
	// id routes: the List RPCs, GetCapacity without a segment, and
	// CreateVolume without a topology requirement.
	Nodes func(ctx context.Context) ([]string, error)
	// TLS is the router's side of the mutual TLS: its own certificate and
	// the CA the controllers' certificates are checked against.
	TLS *tls.Config
	// ServerName is the name the controllers' certificates must carry;
	// "" for the node's own name.
	ServerName string
	Version    string
	Logger     *slog.Logger
}

// Router serves the Controller and SnapshotMetadata services for the
// whole cluster to the sidecars that have no per-node mode
// (external-resizer, external-snapshot-metadata), forwarding each RPC to
// the controller of the node its id names (see the package doc).
type Router struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedControllerServer
	csipb.UnimplementedSnapshotMetadataServer

	cfg RouterConfig
	log *slog.Logger

	mu    sync.Mutex
	conns map[string]routeConn // by node
}

// routeConn is the client of one node's controller, and the address it
// dials: a node's InternalIP may change.
type routeConn struct {
	addr string
	cc   *grpc.ClientConn
}

// NewRouter checks cfg and returns a router.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Address == nil || cfg.Nodes == nil {
		return nil, errors.New("csi: the router needs node addresses and a node list")
	}
	if cfg.TLS == nil {
		return nil, errors.New("csi: the router talks to the node controllers over mutual TLS only: give it a certificate, key and CA")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Router{cfg: cfg, log: cfg.Logger, conns: map[string]routeConn{}}, nil
}

// Serve serves the router on l until ctx ends.
func (r *Router) Serve(ctx context.Context, l net.Listener) error {
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls(r.log)), grpc.StreamInterceptor(logStreams(r.log)))
	csipb.RegisterIdentityServer(srv, r)
	csipb.RegisterControllerServer(srv, r)
	csipb.RegisterSnapshotMetadataServer(srv, r)
	r.log.Info("csi router serving", "endpoint", l.Addr().String())
	err := serveUntil(ctx, srv, l)
	r.mu.Lock()
	for _, c := range r.conns {
		c.cc.Close()
	}
	r.conns = map[string]routeConn{}
	r.mu.Unlock()
	return err
}

// controller is a client of node's controller. Failing to find or dial
// the node is UNAVAILABLE, never NOT_FOUND: its volumes exist, they are
// only out of reach.
func (r *Router) controller(ctx context.Context, node string) (*grpc.ClientConn, error) {
	addr, err := r.cfg.Address(ctx, node)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "node %s: no address: %v", node, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[node]; ok && c.addr == addr {
		return c.cc, nil
	} else if ok {
		c.cc.Close()
		delete(r.conns, node)
	}
	tc := r.cfg.TLS.Clone()
	tc.ServerName = r.cfg.ServerName
	if tc.ServerName == "" {
		tc.ServerName = node
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "node %s at %s: %v", node, addr, err)
	}
	r.conns[node] = routeConn{addr: addr, cc: cc}
	return cc, nil
}

// ctl and meta are the node's Controller and SnapshotMetadata clients.
func (r *Router) ctl(ctx context.Context, node string) (csipb.ControllerClient, error) {
	cc, err := r.controller(ctx, node)
	if err != nil {
		return nil, err
	}
	return csipb.NewControllerClient(cc), nil
}

func (r *Router) meta(ctx context.Context, node string) (csipb.SnapshotMetadataClient, error) {
	cc, err := r.controller(ctx, node)
	if err != nil {
		return nil, err
	}
	return csipb.NewSnapshotMetadataClient(cc), nil
}

// GetPluginInfo names the driver: the router is the same plugin.
func (r *Router) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: DriverName, VendorVersion: r.cfg.Version}, nil
}

// GetPluginCapabilities are the node controllers'.
func (r *Router) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	return pluginCapabilities(), nil
}

// Probe: the router itself is ready; a node out of reach is an error of
// the RPCs that need it, not of the router.
func (r *Router) Probe(context.Context, *csipb.ProbeRequest) (*csipb.ProbeResponse, error) {
	return &csipb.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// ControllerGetCapabilities are the node controllers'.
func (r *Router) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	return controllerCapabilities(), nil
}
