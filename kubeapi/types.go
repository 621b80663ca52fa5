package kubeapi

// The fields of the objects the router reads, with the JSON names of
// k8s.io/api's core/v1 Node and storage/v1 CSINode. Declaring only these
// keeps k8s.io/api and its scheme registrations (about a third of a
// megabyte allocated at every start of the thind binary, whatever the
// command) out of the daemon and CLI; the tests check the decoding
// against k8s.io/api's own types.

// ObjectMeta is the metadata every object has.
type ObjectMeta struct {
	Name string `json:"name"`
}

// Node is a core/v1 Node.
type Node struct {
	ObjectMeta `json:"metadata"`
	Status     NodeStatus `json:"status"`
}

// NodeStatus holds a node's addresses.
type NodeStatus struct {
	Addresses []NodeAddress `json:"addresses"`
}

// NodeAddress is one of a node's addresses, by type.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// NodeInternalIP is the address type of a node's cluster-internal IP.
const NodeInternalIP = "InternalIP"

// CSINode is a storage/v1 CSINode: the CSI drivers registered on a node.
type CSINode struct {
	ObjectMeta `json:"metadata"`
	Spec       CSINodeSpec `json:"spec"`
}

// CSINodeSpec lists the drivers.
type CSINodeSpec struct {
	Drivers []CSINodeDriver `json:"drivers"`
}

// CSINodeDriver is one driver on a node, under the node id its node
// plugin reported.
type CSINodeDriver struct {
	Name   string `json:"name"`
	NodeID string `json:"nodeID"`
}

type csiNodeList struct {
	Items []CSINode `json:"items"`
}
