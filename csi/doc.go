// Package csi is thind's Kubernetes CSI driver: `thind csi --mode
// controller` serves the Identity and Controller services, `--mode node`
// the Identity and Node services, both over gRPC on a unix socket. Each
// talks to the thind daemon of its own node through the control API
// (package control); a node's pool is that node's storage, so every
// volume is pinned to its node by the topology key TopologyKey.
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
// thind name is the CSI volume or snapshot id; the CSI name itself is
// kept in the label LabelName where it is a valid label value. Ids
// without these prefixes are not the driver's: it reports them as not
// found and never deletes them, so the pool's other volumes are safe.
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
