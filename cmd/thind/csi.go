package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/kubeapi"
)

func newCSICommand() *cobra.Command {
	var mode, endpoint, nodeID, stateDir, nbdSock, nbdAddr, logLevel, logFormat string
	var listen, nodeAddress, serverName string
	var nodes []string
	var tlsFiles csi.TLSFiles
	cmd := &cobra.Command{
		Use:   "csi --mode controller|node|router",
		Short: "Serve the Kubernetes CSI driver for this node's thind daemon",
		Long: `Serve the CSI Identity and Controller services (--mode controller) or the
Identity and Node services (--mode node) on a unix socket, for the thind
daemon of this node. Volumes are pinned to the node by the topology key
` + csi.TopologyKey + `, and their ids name it (NODE/NAME).

A controller with --listen also serves the router over TCP with mutual
TLS. --mode router serves the Controller and SnapshotMetadata services for
the whole cluster, forwarding each RPC to the controller of the node its id
names, at --node-address; see docs/scale-out.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch csi.Mode(mode) {
			case csi.ModeController, csi.ModeNode:
			case csi.ModeRouter:
				return runRouter(ctx, endpoint, nodeAddress, serverName, nodes, tlsFiles, log)
			default:
				return fmt.Errorf("csi: --mode %q: want %q, %q or %q", mode, csi.ModeController, csi.ModeNode, csi.ModeRouter)
			}
			sock, _ := cmd.Flags().GetString("control-socket")
			if sock == "" {
				sock = filepath.Join(dataDir(cmd), "control.sock")
			}
			if nbdSock == "" {
				nbdSock = filepath.Join(dataDir(cmd), "nbd.sock")
			}
			if stateDir == "" {
				stateDir = filepath.Join(dataDir(cmd), "csi")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			d, err := csi.New(csi.Config{
				Mode: csi.Mode(mode), NodeID: nodeID,
				ControlSocket: sock, StateDir: stateDir,
				Attacher: csi.ExecAttacher{Binary: self, NBDSocket: nbdSock, NBDAddr: nbdAddr},
				Logger:   log,
			})
			if err != nil {
				return err
			}
			var remote []csi.Remote
			if listen != "" && csi.Mode(mode) != csi.ModeController {
				return fmt.Errorf("csi: --listen: only --mode controller serves the router")
			}
			if listen != "" {
				tc, err := tlsFiles.ServerTLS()
				if err != nil {
					return err
				}
				rl, err := net.Listen("tcp", listen)
				if err != nil {
					return fmt.Errorf("csi: --listen: %w", err)
				}
				remote = append(remote, csi.Remote{Listener: rl, TLS: tc})
			}
			l, err := csi.Listen(endpoint)
			if err != nil {
				return err
			}
			return d.Serve(ctx, l, remote...)
		},
	}
	addControlFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "controller, node or router")
	f.StringVar(&endpoint, "endpoint", "unix:///csi/csi.sock", "the gRPC endpoint the CO's sidecars dial")
	f.StringVar(&nodeID, "node-id", os.Getenv("NODE_ID"), "this node's name (default $NODE_ID); the value of the topology key")
	f.StringVar(&nbdSock, "socket", "", "the daemon's NBD unix socket (default DATA_DIR/nbd.sock)")
	f.StringVar(&nbdAddr, "addr", "", "the daemon's NBD TCP address HOST:PORT, instead of --socket")
	f.StringVar(&stateDir, "state-dir", "", "where the node keeps which device each staged volume is on (default DATA_DIR/csi)")
	f.StringVar(&listen, "listen", "", "controller: also serve the router on this TCP address (e.g. :9807), with mutual TLS")
	f.StringVar(&tlsFiles.Cert, "tls-cert", "", "controller with --listen, and router: this side's PEM certificate")
	f.StringVar(&tlsFiles.Key, "tls-key", "", "controller with --listen, and router: this side's PEM key")
	f.StringVar(&tlsFiles.CA, "tls-ca", "", "controller with --listen, and router: the PEM CA that signs the other side's certificates")
	f.StringVar(&nodeAddress, "node-address", csi.PlaceNode+":9807", "router: where a node's controller listens; "+csi.PlaceNode+" is the node's name, "+csi.PlaceInternalIP+" its InternalIP (read from the API server)")
	f.StringSliceVar(&nodes, "nodes", nil, "router: the nodes with a thind controller (default: those whose CSINode lists "+csi.DriverName+")")
	f.StringVar(&serverName, "tls-server-name", "", "router: the name every controller's certificate carries (default: the node's name)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// runRouter serves `thind csi --mode router`.
func runRouter(ctx context.Context, endpoint, nodeAddress, serverName string, nodes []string, files csi.TLSFiles, log *slog.Logger) error {
	tc, err := files.ClientTLS()
	if err != nil {
		return err
	}
	kube, err := kubeapi.InCluster()
	if err != nil && (len(nodes) == 0 || strings.Contains(nodeAddress, csi.PlaceInternalIP)) {
		return fmt.Errorf("csi: the router needs --nodes and a %s address outside a cluster: %w", csi.PlaceNode, err)
	}
	addr, err := csi.AddressTemplate(nodeAddress, kube)
	if err != nil {
		return err
	}
	list := csi.StaticNodes(nodes)
	if len(nodes) == 0 {
		list = csi.KubeNodes(kube)
	}
	r, err := csi.NewRouter(csi.RouterConfig{Address: addr, Nodes: list, TLS: tc, ServerName: serverName, Logger: log})
	if err != nil {
		return err
	}
	l, err := csi.Listen(endpoint)
	if err != nil {
		return err
	}
	return r.Serve(ctx, l)
}
