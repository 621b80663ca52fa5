package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/daemon"
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

// control talks to a running daemon's control API.
type control struct {
	http *http.Client
	sock string
}

func newControl(cmd *cobra.Command) *control {
	sock, _ := cmd.Flags().GetString("control-socket")
	if sock == "" {
		sock = filepath.Join(dataDir(cmd), "control.sock")
	}
	return &control{
		sock: sock,
		http: &http.Client{
			Timeout: 5 * time.Minute,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}},
		},
	}
}

func addControlFlags(cmd *cobra.Command) {
	addDataDirFlag(cmd)
	cmd.Flags().String("control-socket", "", "the daemon's control socket (default DATA_DIR/control.sock)")
}

// call sends a request and decodes the answer into out (if not nil).
func (c *control) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://thind"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return fmt.Errorf("cannot reach thind at %s (is `thind serve` running? --data-dir or THIND_DATA_DIR select the pool)", c.sock)
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e daemon.ErrorJSON
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}
