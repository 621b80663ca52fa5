package csi

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/thind-storage/thind/kubeapi"
)

// The placeholders of a controller address template
// (`thind csi --mode router --node-address`).
const (
	// PlaceNode is the node's name, for clusters where it resolves
	// (the kubelet's --hostname-override is a DNS name).
	PlaceNode = "{node}"
	// PlaceInternalIP is the Node object's InternalIP address, read
	// from the API server.
	PlaceInternalIP = "{internal-ip}"
)

// AddressTemplate turns a template such as "{node}:9807" or
// "{internal-ip}:9807" into RouterConfig.Address; kube is needed for
// PlaceInternalIP only.
func AddressTemplate(tmpl string, kube *kubeapi.Client) (func(context.Context, string) (string, error), error) {
	hasNode, hasIP := strings.Contains(tmpl, PlaceNode), strings.Contains(tmpl, PlaceInternalIP)
	if hasNode == hasIP {
		return nil, fmt.Errorf("csi: node address %q: want exactly one of %s and %s, as in %s:9807", tmpl, PlaceNode, PlaceInternalIP, PlaceNode)
	}
	if _, _, err := net.SplitHostPort(strings.NewReplacer(PlaceNode, "n", PlaceInternalIP, "n").Replace(tmpl)); err != nil {
		return nil, fmt.Errorf("csi: node address %q: want HOST:PORT: %v", tmpl, err)
	}
	if hasNode {
		return func(_ context.Context, node string) (string, error) {
			return strings.ReplaceAll(tmpl, PlaceNode, node), nil
		}, nil
	}
	if kube == nil {
		return nil, fmt.Errorf("csi: node address %q needs the Kubernetes API (in a cluster only)", tmpl)
	}
	return func(ctx context.Context, node string) (string, error) {
		n, err := kube.Node(ctx, node)
		if err != nil {
			return "", err
		}
		ip := internalIP(n)
		if ip == "" {
			return "", fmt.Errorf("node %s has no InternalIP address", node)
		}
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]" // IPv6, in HOST:PORT
		}
		return strings.ReplaceAll(tmpl, PlaceInternalIP, ip), nil
	}, nil
}

func internalIP(n *kubeapi.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == kubeapi.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// StaticNodes is RouterConfig.Nodes for a fixed list.
func StaticNodes(nodes []string) func(context.Context) ([]string, error) {
	nodes = slices.Clone(nodes)
	return func(context.Context) ([]string, error) { return nodes, nil }
}

// KubeNodes is RouterConfig.Nodes from the cluster: the nodes whose
// CSINode object lists this driver, that is where node-driver-registrar
// registered the node plugin, under the node id it reported.
func KubeNodes(kube *kubeapi.Client) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		csiNodes, err := kube.CSINodes(ctx)
		if err != nil {
			return nil, err
		}
		var nodes []string
		for _, cn := range csiNodes {
			for _, d := range cn.Spec.Drivers {
				if d.Name == DriverName {
					nodes = append(nodes, d.NodeID)
				}
			}
		}
		return nodes, nil
	}
}
