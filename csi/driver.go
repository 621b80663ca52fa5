package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"

	"github.com/thind-storage/thind/control"
)

// Mode selects the services a driver serves.
type Mode string

const (
	ModeController Mode = "controller"
	ModeNode       Mode = "node"
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

// Serve serves the mode's services on l until ctx ends.
func (d *Driver) Serve(ctx context.Context, l net.Listener) error {
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls), grpc.StreamInterceptor(d.logStreams))
	csipb.RegisterIdentityServer(srv, d)
	if d.cfg.Mode == ModeController {
		csipb.RegisterControllerServer(srv, d)
		// The external-snapshot-metadata sidecar runs beside the
		// controller and dials its socket.
		csipb.RegisterSnapshotMetadataServer(srv, d)
	} else {
		csipb.RegisterNodeServer(srv, d)
	}
	d.log.Info("csi driver serving", "mode", d.cfg.Mode, "endpoint", l.Addr().String(), "node", d.cfg.NodeID)
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
	d.c.Close()
	if ctx.Err() != nil {
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
func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		d.log.Warn("csi call failed", "method", info.FullMethod, "err", err)
	} else {
		d.log.Debug("csi call", "method", info.FullMethod)
	}
	return resp, err
}

// logStreams logs the streaming RPCs (SnapshotMetadata) that fail.
func (d *Driver) logStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	if err != nil {
		d.log.Warn("csi stream failed", "method", info.FullMethod, "err", err)
	}
	return err
}
