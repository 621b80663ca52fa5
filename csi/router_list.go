package csi

import (
	"context"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// nodes are the known nodes, sorted: the List RPCs walk them in this
// order.
func (r *Router) nodes(ctx context.Context) ([]string, error) {
	nodes, err := r.cfg.Nodes(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "the list of thind nodes: %v", err)
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// fanOut pages through every node's objects in (node, id) order, for
// ListVolumes and ListSnapshots. The token is the id the previous page
// ended with, as each node's is: a page goes on from its node, after
// it, whatever was created or deleted meanwhile. list asks one node for
// a page; it returns the ids it took and the node's next token. A node out of reach fails the whole list (UNAVAILABLE): a list
// without its volumes would read as if they were gone.
func (r *Router) fanOut(ctx context.Context, maxEntries int32, token string, list func(c csipb.ControllerClient, max int32, token string) ([]string, string, error)) (string, error) {
	if maxEntries < 0 {
		return "", invalid("max_entries %d: negative", maxEntries)
	}
	from := ""
	if token != "" {
		if from = nodeOf(token); from == "" {
			return "", status.Errorf(codes.Aborted, "starting token %q: not one this driver gave", token)
		}
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return "", err
	}
	got := 0
	for _, node := range nodes {
		if node < from {
			continue
		}
		start := ""
		if node == from {
			start = token
		}
		c, err := r.ctl(ctx, node)
		if err != nil {
			return "", err
		}
		for {
			want := int32(0)
			if maxEntries > 0 {
				want = maxEntries - int32(got)
			}
			ids, next, err := list(c, want, start)
			if err != nil {
				return "", err
			}
			got += len(ids)
			if maxEntries > 0 && int32(got) >= maxEntries && len(ids) > 0 {
				return ids[len(ids)-1], nil
			}
			if next == "" {
				break
			}
			start = next
		}
	}
	return "", nil
}

// ListVolumes merges every node's volumes.
func (r *Router) ListVolumes(ctx context.Context, req *csipb.ListVolumesRequest) (*csipb.ListVolumesResponse, error) {
	entries, next, err := listAll(ctx, r, req.GetMaxEntries(), req.GetStartingToken(),
		func(c csipb.ControllerClient, max int32, token string) ([]*csipb.ListVolumesResponse_Entry, string, error) {
			resp, err := c.ListVolumes(ctx, &csipb.ListVolumesRequest{MaxEntries: max, StartingToken: token})
			return resp.GetEntries(), resp.GetNextToken(), err
		},
		func(e *csipb.ListVolumesResponse_Entry) string { return e.GetVolume().GetVolumeId() })
	if err != nil {
		return nil, err
	}
	return &csipb.ListVolumesResponse{Entries: entries, NextToken: next}, nil
}

// listAll is fanOut collecting the entries of each node's pages; id
// names an entry's object.
func listAll[E any](ctx context.Context, r *Router, maxEntries int32, token string, page func(c csipb.ControllerClient, max int32, token string) ([]E, string, error), id func(E) string) ([]E, string, error) {
	var out []E
	next, err := r.fanOut(ctx, maxEntries, token, func(c csipb.ControllerClient, max int32, token string) ([]string, string, error) {
		entries, next, err := page(c, max, token)
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = id(e)
		}
		out = append(out, entries...)
		return ids, next, err
	})
	return out, next, err
}

// ListSnapshots goes to the one node a snapshot or source id names, or
// merges every node's snapshots.
func (r *Router) ListSnapshots(ctx context.Context, req *csipb.ListSnapshotsRequest) (*csipb.ListSnapshotsResponse, error) {
	if id := req.GetSnapshotId() + req.GetSourceVolumeId(); id != "" {
		node := nodeOf(req.GetSnapshotId())
		if req.GetSnapshotId() == "" {
			node = nodeOf(req.GetSourceVolumeId())
		}
		if node == "" {
			return &csipb.ListSnapshotsResponse{}, nil // none of the driver's
		}
		c, err := r.ctl(ctx, node)
		if err != nil {
			return nil, err
		}
		return c.ListSnapshots(ctx, req)
	}
	entries, next, err := listAll(ctx, r, req.GetMaxEntries(), req.GetStartingToken(),
		func(c csipb.ControllerClient, max int32, token string) ([]*csipb.ListSnapshotsResponse_Entry, string, error) {
			resp, err := c.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{MaxEntries: max, StartingToken: token})
			return resp.GetEntries(), resp.GetNextToken(), err
		},
		func(e *csipb.ListSnapshotsResponse_Entry) string { return e.GetSnapshot().GetSnapshotId() })
	if err != nil {
		return nil, err
	}
	return &csipb.ListSnapshotsResponse{Entries: entries, NextToken: next}, nil
}

// GetCapacity asks the node of the segment; without one it sums every
// node's (a volume still lives on one node: MaximumVolumeSize is the
// largest any node offers).
func (r *Router) GetCapacity(ctx context.Context, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	if t := req.GetAccessibleTopology(); t != nil {
		node := t.GetSegments()[TopologyKey]
		if node == "" {
			return &csipb.GetCapacityResponse{}, nil // no thind node's segment
		}
		c, err := r.ctl(ctx, node)
		if err != nil {
			return nil, err
		}
		return c.GetCapacity(ctx, req)
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := &csipb.GetCapacityResponse{}
	for _, node := range nodes {
		c, err := r.ctl(ctx, node)
		if err != nil {
			return nil, err
		}
		resp, err := c.GetCapacity(ctx, req)
		if err != nil {
			return nil, err
		}
		out.AvailableCapacity += resp.GetAvailableCapacity()
		if m := resp.GetMaximumVolumeSize(); m != nil && m.GetValue() > out.GetMaximumVolumeSize().GetValue() {
			out.MaximumVolumeSize = wrapperspb.Int64(m.GetValue())
		}
		if m := resp.GetMinimumVolumeSize(); m != nil && (out.MinimumVolumeSize == nil || m.GetValue() < out.GetMinimumVolumeSize().GetValue()) {
			out.MinimumVolumeSize = wrapperspb.Int64(m.GetValue())
		}
	}
	return out, nil
}
