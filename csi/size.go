package csi

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/thind-storage/thind/catalog"
)

// DefaultVolumeSize is the size of a volume whose request names none.
const DefaultVolumeSize = 1 << 30

// volumeSize picks the size of a volume from its capacity range, at least
// least bytes (a content source's size): the required size, else the
// source's or the default bounded by the limit, rounded up to whole
// sectors.
func volumeSize(r *csipb.CapacityRange, least uint64) (uint64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, invalid("capacity range %d..%d: negative", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.OutOfRange, "capacity range: required %d bytes is more than the limit %d", req, lim)
	}
	size := uint64(req)
	if size == 0 && least > 0 {
		size = least
	}
	if size == 0 {
		size = DefaultVolumeSize
		if lim > 0 && uint64(lim) < size {
			size = uint64(lim)
		}
	}
	size = max(size, least)
	size = (size + catalog.SectorSize - 1) / catalog.SectorSize * catalog.SectorSize
	if lim > 0 && size > uint64(lim) {
		return 0, status.Errorf(codes.OutOfRange, "capacity range: %d bytes (whole sectors of %d, at least the source's %d) is more than the limit %d",
			size, catalog.SectorSize, least, lim)
	}
	if size > catalog.MaxSize {
		return 0, status.Errorf(codes.OutOfRange, "capacity range: %d bytes, at most %d", size, uint64(catalog.MaxSize))
	}
	return size, nil
}

// fits reports whether an existing volume of size satisfies r.
func fits(size uint64, r *csipb.CapacityRange) bool {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	return size >= uint64(max(req, 0)) && (lim <= 0 || size <= uint64(lim))
}
