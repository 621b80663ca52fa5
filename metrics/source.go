package metrics

import (
	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/nbd"
	"github.com/thind-storage/thind/thinmeta"
)

// Source gives the collector its snapshots; each is called once per scrape.
// A nil func leaves its series out.
type Source struct {
	Pool    func() Pool
	NBD     func() nbd.Stats
	Volumes func() []Volume
	Repl    func() Replication
}

// Replication counts send and receive (thind volume send/receive): the
// delta bytes the sender computed (changed and unmapped ranges, or the
// mapped bytes of a full stream), the stream bytes sent and received,
// and the time each took; and how many are running now (a receive that
// runs while no bytes come is stalled).
type Replication struct {
	DeltaBytes, SentBytes, ReceivedBytes         uint64
	DeltaSeconds, SendSeconds, ReceiveSeconds    float64
	Sends, SendsFailed, Receives, ReceivesFailed uint64
	SendsRunning, ReceivesRunning                int64
}

// Volume names a thin device for the per-volume series.
type Volume struct {
	Name  string
	DevID uint64
	Size  uint64
}

// Pool is a snapshot of a thin pool as the collector reads it: the
// engine's own counters, and the plain snapshots of the metadata and of
// the data device's dispatcher, which the engine passes on as it got them.
type Pool struct {
	// Mode is the pool's mode; Modes lists every mode it can be in, so
	// that the others are reported as 0.
	Mode  string
	Modes []string

	Metadata   thinmeta.Stats
	Dispatcher blk.Stats

	Commits        uint64
	CommitSeconds  float64 // total time spent committing
	CommitErrors   uint64
	MetadataErrors uint64
	PrisonWaits    uint64
	PrisonCells    int
	NoSpaceWaits   uint64
	NoSpaceErrors  uint64
	Thins          map[uint64]Thin // by thin device id, for the open ones
}

// Thin counts one open thin device's work.
type Thin struct {
	MappedBlocks   uint64
	Provisioned    uint64
	SharingBroken  uint64
	BlocksUnmapped uint64
	PassdownBytes  uint64
	ReadRetries    uint64
}
