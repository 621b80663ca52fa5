package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/control"
)

// addDataDirFlag adds --data-dir; THIND_DATA_DIR is its default.
func addDataDirFlag(cmd *cobra.Command) {
	cmd.Flags().String("data-dir", "", "the pool's directory (default $THIND_DATA_DIR or ./thind-data)")
}

func dataDir(cmd *cobra.Command) string {
	if d, _ := cmd.Flags().GetString("data-dir"); d != "" {
		return d
	}
	if d := os.Getenv("THIND_DATA_DIR"); d != "" {
		return d
	}
	return "thind-data"
}

// newControl returns a client of the daemon that --control-socket or
// --data-dir name.
func newControl(cmd *cobra.Command) *control.Client {
	sock, _ := cmd.Flags().GetString("control-socket")
	if sock == "" {
		sock = filepath.Join(dataDir(cmd), "control.sock")
	}
	return control.New(sock)
}

func addControlFlags(cmd *cobra.Command) {
	addDataDirFlag(cmd)
	cmd.Flags().String("control-socket", "", "the daemon's control socket (default DATA_DIR/control.sock)")
}

// withHint adds where the CLI looked for the daemon to an unreachable one.
func withHint(err error) error {
	if errors.Is(err, control.ErrUnreachable) {
		return fmt.Errorf("%w (--data-dir or THIND_DATA_DIR select the pool)", err)
	}
	return err
}
