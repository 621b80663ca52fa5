package daemon

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/thind-storage/thind/metrics"
)

// replStats counts what send and receive did, for metrics: the delta
// bytes the sender computed (changed and unmapped ranges, or the mapped
// bytes of a full stream), the bytes of stream sent and received, and
// the seconds each spent.
type replStats struct {
	deltaBytes, sentBytes, receivedBytes         atomic.Uint64
	deltaNanos, sendNanos, receiveNanos          atomic.Int64
	sends, receives, receivesFailed, sendsFailed atomic.Uint64
	sending, receiving                           atomic.Int64
}

func (s *replStats) snapshot() metrics.Replication {
	return metrics.Replication{
		DeltaBytes: s.deltaBytes.Load(), SentBytes: s.sentBytes.Load(), ReceivedBytes: s.receivedBytes.Load(),
		DeltaSeconds: seconds(s.deltaNanos.Load()), SendSeconds: seconds(s.sendNanos.Load()), ReceiveSeconds: seconds(s.receiveNanos.Load()),
		Sends: s.sends.Load(), SendsFailed: s.sendsFailed.Load(), Receives: s.receives.Load(), ReceivesFailed: s.receivesFailed.Load(),
		SendsRunning: s.sending.Load(), ReceivesRunning: s.receiving.Load(),
	}
}

func seconds(ns int64) float64 { return time.Duration(ns).Seconds() }

// countingWriter counts the bytes it passes on.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

// countingReader counts the bytes it passes on.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}
