package daemon

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinpool"
)

// Config is a daemon's configuration. Zero fields take the defaults below.
type Config struct {
	// DataDir holds the pool: metadata, data, catalog/, the sockets.
	DataDir string
	// MetadataDevice and DataDevice override DIR/metadata and DIR/data:
	// existing files or block devices (a pool Linux's dm-thin wrote works).
	MetadataDevice, DataDevice string

	// For a new pool; for an existing one, a set value must agree with the
	// pool, except a larger DataSize, which grows it.
	DataSize        uint64 // bytes; default 64 GiB
	MetadataSize    uint64 // bytes; default 1 GiB
	BlockSize       uint64 // data block size in bytes; default 64 KiB
	DataSizeSet     bool
	MetadataSizeSet bool
	BlockSizeSet    bool
	DefaultSize     uint64 // the "default" volume's size; default 16 GiB
	// Adopt makes this catalog the owner of devices whose identity it
	// does not share (identity.go); both get a new identity.
	Adopt         bool
	DefaultVolume string // name of the volume made on first start; default "default"

	// Listen holds NBD listen addresses: "unix:PATH", "tcp:HOST:PORT" or
	// "HOST:PORT". Default: DIR/nbd.sock and 127.0.0.1:10809.
	Listen []string
	// MetricsAddr serves /metrics; "" takes the default 127.0.0.1:9810,
	// "off" disables it.
	MetricsAddr string
	// ControlSocket is the control API's unix socket; default
	// DIR/control.sock.
	ControlSocket string

	// TLS for NBD: nil disables STARTTLS. TLSRequired refuses clients
	// that do not start TLS.
	TLS         *tls.Config
	TLSRequired bool

	// Engine tuning (block zeroing, passdown, no-space policy...).
	Engine thinpool.Config
	// MetadataCacheBytes bounds the metadata block cache.
	MetadataCacheBytes int64

	Logger          *slog.Logger
	ShutdownTimeout time.Duration

	// WrapMetadata and WrapData, when set, are given the metadata and the
	// data device as they are opened, and the pool runs on what they
	// return. Tests put fault injection (internal/faultdev) under a
	// running daemon with them.
	WrapMetadata func(bm.Device) bm.Device
	WrapData     func(blk.Backend) blk.Backend
}

// Defaults.
const (
	DefaultDataSize     = 64 << 30
	DefaultMetadataSize = 1 << 30
	DefaultBlockSize    = 64 << 10
	DefaultVolumeSize   = 16 << 30
	DefaultVolumeName   = "default"
	DefaultNBDAddr      = "127.0.0.1:10809"
	DefaultMetricsAddr  = "127.0.0.1:9810"
)

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "thind-data"
	}
	if c.DataSize == 0 {
		c.DataSize = DefaultDataSize
	}
	if c.MetadataSize == 0 {
		c.MetadataSize = DefaultMetadataSize
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.DefaultSize == 0 {
		c.DefaultSize = DefaultVolumeSize
	}
	if c.DefaultVolume == "" {
		c.DefaultVolume = DefaultVolumeName
	}
	if c.Listen == nil {
		c.Listen = []string{"unix:" + filepath.Join(c.DataDir, "nbd.sock"), "tcp:" + DefaultNBDAddr}
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = DefaultMetricsAddr
	}
	if c.ControlSocket == "" {
		c.ControlSocket = filepath.Join(c.DataDir, "control.sock")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.MetadataDevice == "" {
		c.MetadataDevice = filepath.Join(c.DataDir, "metadata")
	}
	if c.DataDevice == "" {
		c.DataDevice = filepath.Join(c.DataDir, "data")
	}
	if c.Engine.Logger == nil {
		c.Engine.Logger = c.Logger
	}
}
