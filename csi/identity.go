package csi

import (
	"context"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GetPluginInfo names the driver.
func (d *Driver) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: DriverName, VendorVersion: d.cfg.Version}, nil
}

// GetPluginCapabilities: a controller, volumes bound to their node, and
// changed-block tracking (metadata.go).
func (d *Driver) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	return pluginCapabilities(), nil
}

// pluginCapabilities are the node controllers' and the router's alike.
func pluginCapabilities() *csipb.GetPluginCapabilitiesResponse {
	svc := func(t csipb.PluginCapability_Service_Type) *csipb.PluginCapability {
		return &csipb.PluginCapability{Type: &csipb.PluginCapability_Service_{Service: &csipb.PluginCapability_Service{Type: t}}}
	}
	return &csipb.GetPluginCapabilitiesResponse{Capabilities: []*csipb.PluginCapability{
		svc(csipb.PluginCapability_Service_CONTROLLER_SERVICE),
		svc(csipb.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
		svc(csipb.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE),
		// ONLINE: a volume grows while staged and published; the NBD
		// server serves the new size on the node's open connection and
		// the node grows its device with NBD_SET_SIZE (NodeExpandVolume).
		{Type: &csipb.PluginCapability_VolumeExpansion_{VolumeExpansion: &csipb.PluginCapability_VolumeExpansion{
			Type: csipb.PluginCapability_VolumeExpansion_ONLINE,
		}}},
	}}
}

// Probe is ready when the node's daemon answers and its pool takes writes.
func (d *Driver) Probe(ctx context.Context, _ *csipb.ProbeRequest) (*csipb.ProbeResponse, error) {
	st, err := d.c.Pool(ctx)
	if err != nil {
		return nil, grpcError("probe", err)
	}
	return &csipb.ProbeResponse{Ready: wrapperspb.Bool(st.Mode == "write")}, nil
}
