package main

import (
	"bufio"
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
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// do sends req; an answer other than success becomes the daemon's error.
func (c *control) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return nil, fmt.Errorf("cannot reach thind at %s (is `thind serve` running? --data-dir or THIND_DATA_DIR select the pool)", c.sock)
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e daemon.ErrorJSON
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return resp, nil
}

// stream GETs path and calls fn with each line of the answer (NDJSON),
// without a time limit: a stream lasts as long as it has lines to send.
func (c *control) stream(ctx context.Context, path string, fn func(line []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://thind"+path, nil)
	if err != nil {
		return err
	}
	sc := *c
	h := *c.http
	h.Timeout = 0
	sc.http = &h
	resp, err := sc.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewScanner(resp.Body)
	br.Buffer(make([]byte, 64<<10), 1<<20)
	for br.Scan() {
		if err := fn(br.Bytes()); err != nil {
			return err
		}
	}
	return br.Err()
}
