package thinpool

import (
	"sync/atomic"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/thinmeta"
)

type poolCounters struct {
	commits        atomic.Uint64
	commitNanos    atomic.Uint64
	commitErrors   atomic.Uint64
	metadataErrors atomic.Uint64
	noSpaceWaits   atomic.Uint64
	noSpaceErrors  atomic.Uint64
}

type thinCounters struct {
	provisioned    atomic.Uint64 // data blocks provisioned by writes
	sharingBroken  atomic.Uint64 // copy-on-write breaks
	blocksUnmapped atomic.Uint64 // by discard, write-zeroes and shrink
	passdownBytes  atomic.Uint64 // freed data passed down as holes
	readRetries    atomic.Uint64 // read batches read again after a commit raced them
}

// Stats is a snapshot of the pool's state and counters.
type Stats struct {
	Mode           Mode
	ModeReason     string // why the pool entered Mode
	Metadata       thinmeta.Stats
	Commits        uint64
	CommitSeconds  float64 // total time spent committing
	CommitErrors   uint64
	MetadataErrors uint64
	PrisonWaits    uint64
	Prison         bioprison.Stats
	NoSpaceWaits   uint64
	NoSpaceErrors  uint64
	Dispatcher     blk.Stats
	Thins          map[uint64]ThinStats
}

// ThinStats counts one open thin device's work.
type ThinStats struct {
	SizeBytes      uint64
	MappedBlocks   uint64
	Provisioned    uint64
	SharingBroken  uint64
	BlocksUnmapped uint64
	PassdownBytes  uint64
	// ReadRetries counts read batches that a commit or abort raced (it
	// may have let their blocks be reused), so they were read again.
	ReadRetries uint64
}

// Stats returns a snapshot.
func (p *Pool) Stats() Stats {
	s := Stats{
		Mode:           p.Mode(),
		ModeReason:     p.ModeReason(),
		Metadata:       p.md.Stats(),
		Commits:        p.st.commits.Load(),
		CommitSeconds:  float64(p.st.commitNanos.Load()) / 1e9,
		CommitErrors:   p.st.commitErrors.Load(),
		MetadataErrors: p.st.metadataErrors.Load(),
		PrisonWaits:    p.cells.Waits(),
		Prison:         p.cells.Stats(),
		NoSpaceWaits:   p.st.noSpaceWaits.Load(),
		NoSpaceErrors:  p.st.noSpaceErrors.Load(),
		Dispatcher:     p.data.Stats(),
		Thins:          map[uint64]ThinStats{},
	}
	p.thinsMu.Lock()
	for id, t := range p.thins {
		mapped, _ := p.md.MappedBlocks(id)
		s.Thins[id] = ThinStats{
			SizeBytes:      t.size.Load(),
			MappedBlocks:   mapped,
			Provisioned:    t.st.provisioned.Load(),
			SharingBroken:  t.st.sharingBroken.Load(),
			BlocksUnmapped: t.st.blocksUnmapped.Load(),
			PassdownBytes:  t.st.passdownBytes.Load(),
			ReadRetries:    t.st.readRetries.Load(),
		}
	}
	p.thinsMu.Unlock()
	return s
}
