package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/csi"
)

func newCSICommand() *cobra.Command {
	var mode, endpoint, nodeID, stateDir, nbdSock, nbdAddr, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "csi --mode controller|node --node-id NODE",
		Short: "Serve the Kubernetes CSI driver for this node's thind daemon",
		Long: `Serve the CSI Identity and Controller services (--mode controller) or the
Identity and Node services (--mode node) on a unix socket, for the thind
daemon of this node. Volumes are pinned to the node by the topology key
` + csi.TopologyKey + `; see docs/scale-out.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
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
			l, err := csi.Listen(endpoint)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.Serve(ctx, l)
		},
	}
	addControlFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "controller or node")
	f.StringVar(&endpoint, "endpoint", "unix:///csi/csi.sock", "the gRPC endpoint the CO's sidecars dial")
	f.StringVar(&nodeID, "node-id", os.Getenv("NODE_ID"), "this node's name (default $NODE_ID); the value of the topology key")
	f.StringVar(&nbdSock, "socket", "", "the daemon's NBD unix socket (default DATA_DIR/nbd.sock)")
	f.StringVar(&nbdAddr, "addr", "", "the daemon's NBD TCP address HOST:PORT, instead of --socket")
	f.StringVar(&stateDir, "state-dir", "", "where the node keeps which device each staged volume is on (default DATA_DIR/csi)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
