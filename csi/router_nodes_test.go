package csi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/kubeapi"
)

// apiServer answers the two GETs the router makes, as kube-apiserver
// does (JSON of the k8s.io/api types, a Status on error), to the
// service-account token only. No kube-apiserver runs here; the client
// code under test is the real one, over HTTPS.
func apiServer(t *testing.T) *kubeapi.Client {
	t.Helper()
	const token = "sa-token"
	nodes := map[string]corev1.Node{
		"node-a": {ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "node-a"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.7"}}}},
		"node-6": {ObjectMeta: metav1.ObjectMeta{Name: "node-6"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "fd00::6"}}}},
		"bare": {ObjectMeta: metav1.ObjectMeta{Name: "bare"}},
	}
	csiNodes := storagev1.CSINodeList{Items: []storagev1.CSINode{
		{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "other.csi.io", NodeID: "i-123"}, {Name: csi.DriverName, NodeID: "node-a"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: csi.DriverName, NodeID: "node-b"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gpu-1"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "other.csi.io", NodeID: "i-456"}}}},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		n, ok := nodes[r.PathValue("name")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"kind": "Status", "message": `nodes "` + r.PathValue("name") + `" not found`})
			return
		}
		json.NewEncoder(w).Encode(n)
	})
	mux.HandleFunc("GET /apis/storage.k8s.io/v1/csinodes", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(csiNodes)
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeapi.New(srv.URL, tokenFile, srv.Client())
}

func TestRouterFindsNodesAndAddresses(t *testing.T) {
	ctx := context.Background()
	kube := apiServer(t)
	t.Run("the known nodes are those whose CSINode lists the driver", func(t *testing.T) {
		nodes, err := csi.KubeNodes(kube)(ctx)
		if err != nil || !slices.Equal(nodes, []string{"node-a", "node-b"}) {
			t.Fatalf("KubeNodes: %v %v, want node-a and node-b", nodes, err)
		}
	})
	t.Run("an address is the template with the node's name or InternalIP", func(t *testing.T) {
		for _, tc := range []struct{ tmpl, node, want string }{
			{"{node}:9807", "node-a", "node-a:9807"},
			{"{node}.nodes.example:9807", "node-b", "node-b.nodes.example:9807"},
			{"{internal-ip}:9807", "node-a", "10.0.0.7:9807"},
			{"{internal-ip}:9807", "node-6", "[fd00::6]:9807"},
		} {
			addr, err := csi.AddressTemplate(tc.tmpl, kube)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := addr(ctx, tc.node); err != nil || got != tc.want {
				t.Errorf("%s of %s: %q %v, want %q", tc.tmpl, tc.node, got, err, tc.want)
			}
		}
	})
	t.Run("a node without an address is an error", func(t *testing.T) {
		addr, _ := csi.AddressTemplate("{internal-ip}:9807", kube)
		if _, err := addr(ctx, "bare"); err == nil {
			t.Error("a Node without an InternalIP gave an address")
		}
		var se *kubeapi.StatusError
		if _, err := addr(ctx, "gone"); !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Message == "" {
			t.Errorf("a missing Node: %v, want the API server's 404 and its message", err)
		}
	})
	t.Run("a template must name one placeholder and a port", func(t *testing.T) {
		for _, bad := range []string{"node-a:9807", "{node}", "{node}-{internal-ip}:1", "{internal-ip}"} {
			if _, err := csi.AddressTemplate(bad, kube); err == nil {
				t.Errorf("template %q accepted", bad)
			}
		}
		if _, err := csi.AddressTemplate("{internal-ip}:9807", nil); err == nil {
			t.Error("an InternalIP template without the API accepted")
		}
	})
}
