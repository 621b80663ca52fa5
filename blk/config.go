package blk

import (
	"fmt"
	"runtime"
)

// ConfigError reports a Config field that New cannot use.
type ConfigError struct {
	Field  string
	Value  int64
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("blk: config %s = %d: %s", e.Field, e.Value, e.Reason)
}

// Config sizes a Dispatcher. The zero value picks the defaults below.
type Config struct {
	// HardwareQueues is the number of hardware queues, each with its own
	// tag set and workers. Default runtime.GOMAXPROCS(0), the Go analogue
	// of one hctx per CPU.
	HardwareQueues int
	// SoftwareQueues is the total number of software queues, spread
	// round-robin over the hardware queues. More queues mean fewer
	// submitters sharing a lock. Default 4 per hardware queue, at most 64
	// per hardware queue.
	SoftwareQueues int
	// QueueDepth is the number of tags, the bound on requests in flight,
	// per hardware queue. Default 64.
	QueueDepth int
	// Workers is the number of goroutines per hardware queue that issue
	// queued requests. A backend call blocks its goroutine, so this is the
	// queue's parallelism for asynchronous and plugged I/O. Default 4.
	Workers int
	// MaxMergeBytes bounds a merged request, like max_sectors_kb.
	// Default 512 KiB.
	MaxMergeBytes int64
	// MaxSegments bounds the buffers of a merged read or write, like
	// max_segments (and far below IOV_MAX). Default 128.
	MaxSegments int
	// PlugLimit is the number of requests after which a plug flushes by
	// itself, like BLK_MAX_REQUEST_COUNT. Default 32.
	PlugLimit int
}

const (
	defaultQueueDepth  = 64
	defaultWorkers     = 4
	defaultMergeBytes  = 512 << 10
	defaultMaxSegments = 128
	defaultPlugLimit   = 32
	swqPerHWQueue      = 4
	maxSWQPerHWQueue   = 64 // one bit each in hwQueue.busy
	maxQueueDepth      = 1 << 16
	maxIOVecs          = 1024 // IOV_MAX on Linux
)

// withDefaults fills zero fields and rejects impossible values.
func (c Config) withDefaults() (Config, error) {
	if c.HardwareQueues == 0 {
		c.HardwareQueues = runtime.GOMAXPROCS(0)
	}
	if c.SoftwareQueues == 0 {
		c.SoftwareQueues = swqPerHWQueue * c.HardwareQueues
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = defaultQueueDepth
	}
	if c.Workers == 0 {
		c.Workers = defaultWorkers
	}
	if c.MaxMergeBytes == 0 {
		c.MaxMergeBytes = defaultMergeBytes
	}
	if c.MaxSegments == 0 {
		c.MaxSegments = defaultMaxSegments
	}
	if c.PlugLimit == 0 {
		c.PlugLimit = defaultPlugLimit
	}
	bad := func(field string, v int64, reason string) (Config, error) {
		return c, &ConfigError{Field: field, Value: v, Reason: reason}
	}
	switch {
	case c.HardwareQueues < 0:
		return bad("HardwareQueues", int64(c.HardwareQueues), "must be positive")
	case c.SoftwareQueues < c.HardwareQueues:
		return bad("SoftwareQueues", int64(c.SoftwareQueues), "must be at least HardwareQueues")
	case c.SoftwareQueues > maxSWQPerHWQueue*c.HardwareQueues:
		return bad("SoftwareQueues", int64(c.SoftwareQueues), "at most 64 per hardware queue")
	case c.QueueDepth < 1 || c.QueueDepth > maxQueueDepth:
		return bad("QueueDepth", int64(c.QueueDepth), "must be in [1, 65536]")
	case c.Workers < 1:
		return bad("Workers", int64(c.Workers), "must be positive")
	case c.MaxMergeBytes < 1:
		return bad("MaxMergeBytes", c.MaxMergeBytes, "must be positive")
	case c.MaxSegments < 1 || c.MaxSegments > maxIOVecs:
		return bad("MaxSegments", int64(c.MaxSegments), "must be in [1, 1024] (IOV_MAX)")
	case c.PlugLimit < 1:
		return bad("PlugLimit", int64(c.PlugLimit), "must be positive")
	}
	return c, nil
}
