package control

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
	"net/url"
	"time"
)

// maxAnswer bounds what the client reads of one answer: a list of every
// volume of a large pool fits many times over.
const maxAnswer = 64 << 20

// Client talks to one daemon's control socket. It is safe for concurrent
// use.
type Client struct {
	sock string
	http *http.Client
}

// New returns a client of the daemon listening on the unix socket sock.
func New(sock string) *Client {
	return &Client{
		sock: sock,
		http: &http.Client{
			// Long enough for a resize that unmaps a large tail.
			Timeout: 5 * time.Minute,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}},
		},
	}
}

// Socket is the socket the client dials.
func (c *Client) Socket() string { return c.sock }

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Pool returns the pool's status.
func (c *Client) Pool(ctx context.Context) (PoolStatus, error) {
	var s PoolStatus
	err := c.Call(ctx, "GET", "/v1/pool", nil, &s)
	return s, err
}

// Volumes lists the volumes carrying every label of labels (all if nil).
func (c *Client) Volumes(ctx context.Context, labels map[string]string) ([]Volume, error) {
	q := url.Values{}
	for k, v := range labels {
		q.Add("label", k+"="+v)
	}
	var vols []Volume
	err := c.Call(ctx, "GET", "/v1/volumes?"+q.Encode(), nil, &vols)
	return vols, err
}

// Volume returns one volume.
func (c *Client) Volume(ctx context.Context, name string) (Volume, error) {
	var v Volume
	err := c.Call(ctx, "GET", volumePath(name), nil, &v)
	return v, err
}

// Create creates an empty volume.
func (c *Client) Create(ctx context.Context, req VolumeRequest) (Volume, error) {
	var v Volume
	err := c.Call(ctx, "POST", "/v1/volumes", req, &v)
	return v, err
}

// Snapshot snapshots origin into the volume req names.
func (c *Client) Snapshot(ctx context.Context, origin string, req VolumeRequest) (Volume, error) {
	var v Volume
	err := c.Call(ctx, "POST", volumePath(origin)+"/snapshot", req, &v)
	return v, err
}

// Delete deletes a volume.
func (c *Client) Delete(ctx context.Context, name string) error {
	return c.Call(ctx, "DELETE", volumePath(name), nil, nil)
}

// Resize sets a volume's size; a smaller one needs allowShrink.
func (c *Client) Resize(ctx context.Context, name string, size uint64, allowShrink bool) (Volume, error) {
	var v Volume
	err := c.Call(ctx, "POST", volumePath(name)+"/resize", VolumeRequest{Size: size, AllowShrink: allowShrink}, &v)
	return v, err
}

// Update changes the labels, description or export settings req sets.
func (c *Client) Update(ctx context.Context, name string, req VolumeRequest) (Volume, error) {
	var v Volume
	err := c.Call(ctx, "PATCH", volumePath(name), req, &v)
	return v, err
}

// SetMode asks a read-only pool back into write mode (see ModeRequest).
func (c *Client) SetMode(ctx context.Context, req ModeRequest) (ModeAnswer, error) {
	var a ModeAnswer
	err := c.Call(ctx, "POST", "/v1/pool/mode", req, &a)
	return a, err
}

// ResizePool grows the pool's data or metadata device.
func (c *Client) ResizePool(ctx context.Context, req ResizePoolRequest) (PoolStatus, error) {
	var s PoolStatus
	err := c.Call(ctx, "POST", "/v1/pool/resize", req, &s)
	return s, err
}

// MetadataSnap reserves the pool's metadata snapshot (hold true) or
// releases it.
func (c *Client) MetadataSnap(ctx context.Context, hold bool) (PoolStatus, error) {
	method := "DELETE"
	if hold {
		method = "POST"
	}
	var s PoolStatus
	err := c.Call(ctx, method, "/v1/pool/metadata-snap", nil, &s)
	return s, err
}

// Stream GETs path and calls fn with each line of the answer (NDJSON),
// with no time limit: a stream lasts as long as it has lines to send.
func (c *Client) Stream(ctx context.Context, path string, fn func(line []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://thind"+path, nil)
	if err != nil {
		return err
	}
	h := *c.http
	h.Timeout = 0
	resp, err := c.send(&h, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Pipe sends body (if not nil) as a byte stream and copies the answer to
// out, with no time limit; an error the daemon reports in ErrorTrailer,
// after the answer had started, fails it.
func (c *Client) Pipe(ctx context.Context, method, path string, body io.Reader, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://thind"+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	h := *c.http
	h.Timeout = 0
	resp, err := c.send(&h, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	if msg := resp.Trailer.Get(ErrorTrailer); msg != "" {
		return errors.New(msg)
	}
	return nil
}

func volumePath(name string) string { return "/v1/volumes/" + url.PathEscape(name) }

// Call sends a request with body as JSON (if not nil) and decodes the
// answer into out (if not nil). An error answer is an *APIError; a
// daemon that does not answer is ErrUnreachable.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
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
	resp, err := c.send(c.http, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// send sends req with h; an error answer becomes an *APIError, a daemon
// that does not answer ErrUnreachable.
func (c *Client) send(h *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := h.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return nil, fmt.Errorf("%w at %s (is `thind serve` running?): %v", ErrUnreachable, c.sock, ne.Err)
		}
		return nil, err
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &APIError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode}
	var b ErrorBody
	if json.Unmarshal(data, &b) == nil {
		e.Message = b.Error
	}
	return nil, e
}

// Diff streams the ranges where volume target differs from volume base
// (or, with base "", the ranges target maps) from byte offset, calling
// fn with each. A stream that ends without its end line, or with an
// error line, is an error: fn has then seen only a prefix, and the diff
// resumes from the end of the last range fn saw.
func (c *Client) Diff(ctx context.Context, base, target string, offset uint64, fn func(DiffRange) error) (DiffEnd, error) {
	q := url.Values{"offset": {fmt.Sprint(offset)}}
	if base != "" {
		q.Set("base", base)
	}
	var end *DiffEnd
	err := c.Stream(ctx, volumePath(target)+"/diff?"+q.Encode(), func(line []byte) error {
		var l DiffLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("bad diff line from thind: %w", err)
		}
		switch {
		case l.Error != "":
			return fmt.Errorf("diff of %s: %s", target, l.Error)
		case l.DiffRange != nil:
			return fn(*l.DiffRange)
		case l.DiffEnd != nil:
			end = l.DiffEnd
		}
		return nil
	})
	if err == nil && end == nil {
		err = fmt.Errorf("diff of %s: the stream ended early", target)
	}
	if err != nil {
		return DiffEnd{}, err
	}
	return *end, nil
}
