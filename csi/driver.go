package csi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/thind-storage/thind/control"
)

// Mode selects the services a driver serves.
type Mode string

const (
	ModeController Mode = "controller"
	ModeNode       Mode = "node"
	// ModeRouter is the cluster-wide router (NewRouter), not a Driver.
	ModeRouter Mode = "router"
)

// Config is what `thind csi` is given.
type Config struct {
	Mode Mode
	// NodeID names this node; it is the value of TopologyKey.
	NodeID string
	// ControlSocket is the node's thind daemon's control socket.
	ControlSocket string
	// StateDir keeps which NBD device each staged volume is on (node mode).
	StateDir string
	// Attacher attaches volumes to block devices (node mode): the
	// kernel's NBD client in production (ExecAttacher).
	Attacher Attacher
	// Version is reported by GetPluginInfo.
	Version string
	Logger  *slog.Logger
}

// Driver is one CSI plugin process.
type Driver struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedControllerServer
	csipb.UnimplementedNodeServer
	csipb.UnimplementedSnapshotMetadataServer

	cfg Config
	c   *control.Client
	log *slog.Logger

	// mu serialises the RPCs that change state: the CO may retry an RPC
	// while the first try still runs, and two stages must not pick the
	// same free NBD device.
	mu sync.Mutex
}

// New checks cfg and returns a driver.
func New(cfg Config) (*Driver, error) {
	switch cfg.Mode {
	case ModeController, ModeNode:
	default:
		return nil, fmt.Errorf("csi: --mode %q: want %q or %q", cfg.Mode, ModeController, ModeNode)
	}
	if cfg.NodeID == "" {
		return nil, errors.New("csi: --node-id is required")
	}
	if cfg.ControlSocket == "" {
		return nil, errors.New("csi: no control socket")
	}
	if cfg.Mode == ModeNode && (cfg.StateDir == "" || cfg.Attacher == nil) {
		return nil, errors.New("csi: node mode needs a state directory and an attacher")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Driver{cfg: cfg, c: control.New(cfg.ControlSocket), log: cfg.Logger}, nil
}

// Listen listens on the endpoint's unix socket, replacing a stale one.
func Listen(endpoint string) (net.Listener, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("csi: stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("csi: %w", err)
	}
	return l, nil
}

// Remote is a TCP listener on which a controller serves the router,
// with mutual TLS (ServerTLS).
type Remote struct {
	Listener net.Listener
	TLS      *tls.Config
}

// Serve serves the mode's services on l until ctx ends, and in
// controller mode the Identity, Controller and SnapshotMetadata services
// on each remote too, for the router.
func (d *Driver) Serve(ctx context.Context, l net.Listener, remote ...Remote) error {
	if len(remote) > 0 && d.cfg.Mode != ModeController {
		return errors.New("csi: only a controller serves the router")
	}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(logCalls(d.log)), grpc.StreamInterceptor(logStreams(d.log))}
	srv := grpc.NewServer(opts...)
	csipb.RegisterIdentityServer(srv, d)
	if d.cfg.Mode == ModeController {
		csipb.RegisterControllerServer(srv, d)
		// The external-snapshot-metadata sidecar runs beside the
		// controller and dials its socket.
		csipb.RegisterSnapshotMetadataServer(srv, d)
		// An external-provisioner deployed on each node learns its
		// node's topology from NodeGetInfo on the socket it dials.
		csipb.RegisterNodeServer(srv, nodeInfoServer{d: d})
	} else {
		csipb.RegisterNodeServer(srv, d)
	}
	servers := []*grpc.Server{srv}
	listeners := []net.Listener{l}
	for _, r := range remote {
		rs := grpc.NewServer(append(opts, grpc.Creds(credentials.NewTLS(r.TLS)))...)
		csipb.RegisterIdentityServer(rs, d)
		csipb.RegisterControllerServer(rs, d)
		csipb.RegisterSnapshotMetadataServer(rs, d)
		servers = append(servers, rs)
		listeners = append(listeners, r.Listener)
	}
	d.log.Info("csi driver serving", "mode", d.cfg.Mode, "endpoint", l.Addr().String(), "remote", len(remote), "node", d.cfg.NodeID)
	errs := make(chan error, len(servers))
	for i := range servers {
		go func() { errs <- serveUntil(ctx, servers[i], listeners[i]) }()
	}
	var err error
	for range servers {
		if e := <-errs; e != nil && err == nil {
			err = e
			// One listener failed: stop the others too.
			for _, s := range servers {
				s.Stop()
			}
		}
	}
	d.c.Close()
	return err
}

// nodeInfoServer is the Node service of a controller: NodeGetInfo only.
type nodeInfoServer struct {
	csipb.UnimplementedNodeServer
	d *Driver
}

func (n nodeInfoServer) NodeGetInfo(ctx context.Context, req *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return n.d.NodeGetInfo(ctx, req)
}

// serveUntil serves srv on l until ctx ends, then stops it gracefully.
func serveUntil(ctx context.Context, srv *grpc.Server, l net.Listener) error {
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			srv.GracefulStop()
		case <-stopped:
		}
	}()
	err := srv.Serve(l)
	close(stopped)
	if ctx.Err() != nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// socketPath takes unix:///abs/path, unix:/abs/path or a bare path.
func socketPath(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("csi: endpoint %q: %w", endpoint, err)
	}
	switch {
	case u.Scheme == "unix" && u.Path != "":
		return u.Path, nil
	case u.Scheme == "" && u.Path != "":
		return u.Path, nil
	}
	return "", fmt.Errorf("csi: endpoint %q: want unix:///path/to/csi.sock", endpoint)
}

// logCalls logs every RPC that fails, and the ones that change state.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			log.Warn("csi call failed", "method", info.FullMethod, "err", err)
		} else {
			log.Debug("csi call", "method", info.FullMethod)
		}
		return resp, err
	}
}

// logStreams logs the streaming RPCs (SnapshotMetadata) that fail.
func logStreams(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		if err != nil {
			log.Warn("csi stream failed", "method", info.FullMethod, "err", err)
		}
		return err
	}
}
