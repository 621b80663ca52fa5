package thinpool

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/thind-storage/thind/blk"
)

// Config tunes a Pool. The zero value gives dm-thin's defaults.
type Config struct {
	// SkipBlockZeroing leaves the part of a newly provisioned block that
	// a partial write does not cover as the data device had it
	// (skip_block_zeroing): faster, but a block freed by one volume can
	// show its old bytes to another if discard passdown is off.
	SkipBlockZeroing bool
	// NoDiscardPassdown keeps freed data blocks allocated on the data
	// device instead of punching holes (no_discard_passdown).
	NoDiscardPassdown bool
	// IgnoreHoles treats every free data block as possibly holding old
	// bytes, even where the data file has a hole: each new block is
	// zeroed and flushed before the commit that maps it. Without it,
	// blocks found to be holes at open (and when the device grows) skip
	// both on their first provisioning.
	IgnoreHoles bool
	// ErrorIfNoSpace fails writes at once when the data device is full
	// instead of queueing them (error_if_no_space).
	ErrorIfNoSpace bool
	// NoSpaceTimeout bounds how long writes queue for space. Default 60s.
	NoSpaceTimeout time.Duration
	// CommitInterval is the period of background commits. Default 1s.
	CommitInterval time.Duration
	// LowWaterBlocks: OnLowWater runs when free data blocks drop below it.
	// OnLowWater and OnModeChange run on a goroutine of the pool, one
	// event at a time in the order they happened, with no lock of the
	// pool held (they may call the pool); Close delivers the pending ones.
	LowWaterBlocks uint64
	OnLowWater     func(free uint64)
	// OnModeChange runs when the pool changes mode.
	OnModeChange func(from, to Mode)
	// Dispatcher sizes the data device's multi-queue dispatcher.
	Dispatcher blk.Config
	Logger     *slog.Logger
}

// check rejects settings no pool can run with, after setDefaults.
func (c *Config) check() error {
	switch {
	case c.CommitInterval < 0:
		return fmt.Errorf("thinpool: commit interval %v: must be positive", c.CommitInterval)
	case c.NoSpaceTimeout < 0:
		return fmt.Errorf("thinpool: no-space timeout %v: must be positive", c.NoSpaceTimeout)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.NoSpaceTimeout == 0 {
		c.NoSpaceTimeout = 60 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Mode is the pool's mode, as dm-thin's.
type Mode int32

const (
	// ModeWrite: normal service.
	ModeWrite Mode = iota
	// ModeOutOfDataSpace: writes that need a new block queue (or fail
	// with ErrorIfNoSpace) until the data device grows.
	ModeOutOfDataSpace
	// ModeReadOnly: after a metadata failure or a full metadata device,
	// no metadata changes; reads and writes to unshared mapped blocks
	// still work.
	ModeReadOnly
	// ModeFail: nothing works.
	ModeFail
)

// Modes lists every mode, in order.
func Modes() []Mode { return []Mode{ModeWrite, ModeOutOfDataSpace, ModeReadOnly, ModeFail} }

func (m Mode) String() string {
	switch m {
	case ModeWrite:
		return "write"
	case ModeOutOfDataSpace:
		return "out-of-data-space"
	case ModeReadOnly:
		return "read-only"
	case ModeFail:
		return "fail"
	}
	return "unknown"
}
