// Package kubeapi reads the few Kubernetes objects the CSI router needs
// (Nodes and CSINodes) from the API server of the cluster it runs in, as
// its service account: a GET over net/http with the pod's token, decoded
// into the few fields it uses (types.go). It watches nothing and writes
// nothing, which is why it is not client-go.
package kubeapi
