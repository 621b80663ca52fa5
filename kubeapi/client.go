package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The service account's files in every pod (kubernetes.io: "Accessing
// the Kubernetes API from a Pod").
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	tokenFile         = serviceAccountDir + "/token"
	caFile            = serviceAccountDir + "/ca.crt"
)

// maxBody bounds what one answer may be: a CSINode list of thousands of
// nodes fits easily.
const maxBody = 64 << 20

// ErrNotInCluster: no API server in the environment.
var ErrNotInCluster = errors.New("kubeapi: not in a cluster (KUBERNETES_SERVICE_HOST and _PORT unset)")

// Client GETs objects from one API server.
type Client struct {
	base      string // https://host:port
	tokenFile string
	http      *http.Client
}

// InCluster is a client of the cluster the pod runs in.
func InCluster() (*Client, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, ErrNotInCluster
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubeapi: %s holds no certificate", caFile)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return New("https://"+net.JoinHostPort(host, port), tokenFile, hc), nil
}

// New is a client of the API server at base, authenticating with the
// bearer token in tokenFile (read again for every request: projected
// service account tokens are rotated).
func New(base, tokenFile string, hc *http.Client) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), tokenFile: tokenFile, http: hc}
}

// Node GETs the Node name.
func (c *Client) Node(ctx context.Context, name string) (*Node, error) {
	var n Node
	if err := c.get(ctx, "/api/v1/nodes/"+url.PathEscape(name), &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// CSINodes lists the CSINode objects: one per node, naming the CSI
// drivers registered there.
func (c *Client) CSINodes(ctx context.Context) ([]CSINode, error) {
	var l csiNodeList
	if err := c.get(ctx, "/apis/storage.k8s.io/v1/csinodes", &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// StatusError is an answer other than 200 OK.
type StatusError struct {
	Path, Status string
	Code         int
	Message      string // the API server's Status message, if any
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubeapi: GET %s: %s: %s", e.Path, e.Status, e.Message)
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("kubeapi: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.tokenFile != "" {
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("kubeapi: token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kubeapi: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("kubeapi: GET %s: %w", path, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("kubeapi: GET %s: answer larger than %d bytes", path, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		var st struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &st)
		return &StatusError{Path: path, Status: resp.Status, Code: resp.StatusCode, Message: st.Message}
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("kubeapi: GET %s: %w", path, err)
	}
	return nil
}
