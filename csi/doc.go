// Package csi is thind's Kubernetes CSI driver: `thind csi --mode
// controller` serves the Identity and Controller services, `--mode node`
// the Identity and Node services, both over gRPC on a unix socket. Each
// talks to the thind daemon of its own node through the control API
// (package control); a node's pool is that node's storage, so every
// volume is pinned to its node by the topology key TopologyKey, and
// every storage node runs its own controller.
//
// Ids. A CSI volume or snapshot id is NODE/NAME (ids.go): the node's
// name, and the thind name below in that node's pool. A controller
// serves its own node's ids only; another node's id is INVALID_ARGUMENT,
// never NOT_FOUND or "deleted", so that no controller mistakes another
// node's volume for a missing one. `--mode router` (router*.go) serves
// the Controller and SnapshotMetadata services for the whole cluster,
// to the sidecars that have no per-node mode, by forwarding each RPC to
// the controller of the node its id, source or topology names, over TCP
// with mutual TLS (tls.go); the RPCs no id routes fan out to every known
// node (router_list.go). docs/scale-out.md has the whole layout.
//
// Names. CSI names are free-form strings; thind names are short lower-case
// words (catalog.ValidName). A CSI name maps to a thind name
// deterministically, so that a retried CreateVolume or CreateSnapshot
// finds what the first try made (names.go):
//
//	volume   "csi-v-"  + name          when name is a valid thind name that fits
//	         "csi-vh-" + sha256(name)  otherwise (40 hex digits)
//	snapshot "csi-s-"  + name, or "csi-sh-" + sha256(name)
//
// The two forms of each kind cannot collide ("csi-v-" vs "csi-vh"). The
// thind name, after its node, is the CSI volume or snapshot id; the CSI
// name itself is kept in the label LabelName where it is a valid label
// value. Names without these prefixes are not the driver's: it reports
// them as not found and never deletes them, so the pool's other volumes
// are safe.
//
// The controller also serves SnapshotMetadata, changed-block tracking
// (metadata.go): a snapshot's allocated ranges and the ranges where two
// snapshots of one volume differ, straight from the daemon's diff of
// their mapping trees.
//
// Snapshots are thin snapshots marked read-only; a volume made from a
// snapshot or a volume is a thin snapshot of it, in O(1). Every RPC is
// idempotent by name, and answers with the gRPC codes the CSI spec lists
// (errors.go).
package csi
