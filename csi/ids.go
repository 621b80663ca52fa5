package csi

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// id is the CSI id of a thind name in this node's pool.
func (d *Driver) id(name string) string { return ID(d.cfg.NodeID, name) }

// nameOf is the thind name of a CSI id of this node. ours is false for an
// id the driver never gave (no node part): such an id names nothing of
// the driver's anywhere. Another node's id is an error, never "not
// found": that volume exists, this is only the wrong node to ask, and a
// DeleteVolume answered "deleted" would leak it.
func (d *Driver) nameOf(id string) (name string, ours bool, err error) {
	node, name, ok := SplitID(id)
	if !ok {
		return "", false, nil
	}
	if node != d.cfg.NodeID {
		return "", false, status.Errorf(codes.InvalidArgument, "%q lives on node %s, and this driver serves node %s: ask that node's controller (or the router)", id, node, d.cfg.NodeID)
	}
	return name, true, nil
}
