package daemon

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
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
	// "HOST:PORT". Default: DIR/nbd.sock only; TCP is served only when
	// asked for (a TCP peer has no credentials to check).
	Listen []string
	// SocketMode and SocketGroup are the permissions of the unix sockets
	// (NBD and control): default 0660 and the daemon's group. The daemon
	// also checks each unix peer's credentials against them (sockets.go).
	SocketMode  os.FileMode
	SocketGroup string // a group name or id
	// ControlGroup (a name or id) may change volumes through the control
	// API, as root and the daemon's user may; others can only read.
	ControlGroup string
	// MetricsAddr serves /metrics; "" takes the default 127.0.0.1:9810,
	// "off" disables it.
	MetricsAddr string
	// ControlSocket is the control API's unix socket; default
	// DIR/control.sock.
	ControlSocket string

	// TLS for NBD: nil disables STARTTLS. TLSRequired refuses clients
	// that do not start TLS. Client certificates (TLS.ClientCAs) need
	// TLSRequired (checkTLS).
	TLS         *tls.Config
	TLSRequired bool

	// Engine tuning (block zeroing, passdown, no-space policy...).
	Engine thinpool.Config
	// MetadataCacheBytes bounds the metadata block cache.
	MetadataCacheBytes int64

	// Resource limits of the NBD server (nbd.Options; zero takes its
	// defaults): connections, handshakes in progress, the buffered
	// payload bytes of all connections, and how long a client may take
	// no reply bytes before it is dropped.
	MaxConnections int
	MaxHandshakes  int
	BufferBudget   int64
	ReplyTimeout   time.Duration
	// MaxConnectionsPerVolume caps the NBD connections to one volume
	// (default DefaultMaxConnectionsPerVolume; negative: no cap). A
	// client beyond it is refused the volume (NBD_REP_ERR_POLICY).
	MaxConnectionsPerVolume int

	Logger *slog.Logger
	// ShutdownTimeout bounds a graceful stop: after it, NBD connections
	// still open are closed. Default 30s.
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
	DefaultSocketMode   = 0o660
	DefaultMetricsAddr  = "127.0.0.1:9810"

	DefaultMaxConnectionsPerVolume = 64
	DefaultShutdownTimeout         = 30 * time.Second
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
		c.Listen = []string{"unix:" + filepath.Join(c.DataDir, "nbd.sock")}
	}
	if c.SocketMode == 0 {
		c.SocketMode = DefaultSocketMode
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
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxConnectionsPerVolume == 0 {
		c.MaxConnectionsPerVolume = DefaultMaxConnectionsPerVolume
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

// ErrClientCAWithoutTLSRequired refuses client-certificate authentication
// that a client could bypass by never starting TLS.
var ErrClientCAWithoutTLSRequired = errors.New("a client CA (--tls-client-ca) needs --tls-required: without it, a client that never starts TLS is served with no certificate at all")

// checkTLS checks the TLS settings against each other.
func checkTLS(c *Config) error {
	if c.TLS != nil && c.TLS.ClientCAs != nil && !c.TLSRequired {
		return ErrClientCAWithoutTLSRequired
	}
	// Access lists trust a client certificate's names only once it is
	// verified against ClientCAs.
	if c.TLS != nil && c.TLS.ClientCAs == nil && (c.TLS.ClientAuth == tls.RequestClientCert || c.TLS.ClientAuth == tls.RequireAnyClientCert) {
		return errors.New("TLS asks for client certificates without ClientCAs to verify them against")
	}
	if c.TLSRequired && c.TLS == nil {
		return errors.New("TLS required but no TLS configuration (--tls-cert, --tls-key)")
	}
	return nil
}
