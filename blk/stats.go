package blk

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the dispatcher's counters, one entry per hardware
// queue. It is plain data so that the metrics package can export it without
// this package knowing about Prometheus. Counters only grow; gauges
// (InFlight, Backlog) are as of the snapshot.
type Stats struct {
	Queues []QueueStats
}

// QueueStats describes one hardware queue.
type QueueStats struct {
	Depth    int   // tags in the queue's tag set
	InFlight int   // tags held now: requests between tag allocation and completion
	Backlog  int64 // requests waiting in software queues or the dispatch list

	TagSleeps  uint64 // times a submitter slept because every tag was held
	Dispatched uint64 // backend calls made; merged requests share one
	Direct     uint64 // requests issued directly in the submitter's goroutine
	Queued     uint64 // requests handed through software queues to a worker
	Merges     uint64 // requests merged into another request's backend call

	Ops     [NumOps]OpStats // indexed by Op
	Latency LatencyStats    // all operations together
}

// OpStats counts completed requests of one operation.
type OpStats struct {
	Requests uint64
	Bytes    uint64
	Errors   uint64
	Latency  LatencyStats // a sample of the requests, see LatencyStats
}

// NumLatencyBuckets is the number of latency histogram buckets.
const NumLatencyBuckets = 12

// LatencyStats is a histogram of request latency, from tag allocation to
// completion: time queued plus time in the backend. Time spent sleeping for
// a tag is not included; TagSleeps counts that.
//
// It is a sample: only requests whose tag is a multiple of 8 are timed
// (about one in eight; every request when the queue depth is below 8 and
// the tag is 0), because reading the clock was the largest part of the
// dispatcher's cost per request. Count is the sample size; use the
// requests counters for totals and Sum/Count for the mean.
type LatencyStats struct {
	Count uint64
	Sum   time.Duration
	// Buckets[i] counts requests with latency in
	// (LatencyBucketBound(i-1), LatencyBucketBound(i)]; the buckets are not
	// cumulative.
	Buckets [NumLatencyBuckets]uint64
}

// LatencyBucketBound returns the upper bound of bucket i: 1µs·4^i, and
// for the last bucket the largest Duration, standing for +Inf (and 0 below
// the first bucket). The bounds are fixed so that snapshots from different
// times and processes add up.
func LatencyBucketBound(i int) time.Duration {
	switch {
	case i < 0:
		return 0
	case i >= NumLatencyBuckets-1:
		return math.MaxInt64
	}
	return time.Microsecond << (2 * i)
}

// latencyBucket maps a latency to its bucket with a bit count instead of a
// search, as it runs on every completion.
func latencyBucket(ns int64) int {
	if ns <= 1000 {
		return 0
	}
	q := uint64(ns-1) / 1000
	return min((bits.Len64(q)+1)/2, NumLatencyBuckets-1)
}

// Total adds up all hardware queues.
func (s Stats) Total() QueueStats {
	var t QueueStats
	for _, q := range s.Queues {
		t.Depth += q.Depth
		t.InFlight += q.InFlight
		t.Backlog += q.Backlog
		t.TagSleeps += q.TagSleeps
		t.Dispatched += q.Dispatched
		t.Direct += q.Direct
		t.Queued += q.Queued
		t.Merges += q.Merges
		for i := range t.Ops {
			t.Ops[i].Requests += q.Ops[i].Requests
			t.Ops[i].Bytes += q.Ops[i].Bytes
			t.Ops[i].Errors += q.Ops[i].Errors
			t.Ops[i].Latency.add(&q.Ops[i].Latency)
		}
		t.Latency.add(&q.Latency)
	}
	return t
}

func (l *LatencyStats) add(o *LatencyStats) {
	l.Count += o.Count
	l.Sum += o.Sum
	for i := range l.Buckets {
		l.Buckets[i] += o.Buckets[i]
	}
}

// swStats are the counters of one software queue. Counters live in the
// software queue rather than the hardware queue so that submitters on
// different software queues do not share cache lines on every request;
// Stats adds them up per hardware queue, as the kernel sums per-CPU
// counters. Backend calls are derived (direct requests plus worker
// calls) rather than counted, to keep the atomic operations per request
// few.
type swStats struct {
	ops    [NumOps]opCounters
	queued atomic.Uint64 // requests inserted into a software queue
	units  atomic.Uint64 // backend calls made by workers
	merges atomic.Uint64
}

// opCounters count one operation's requests. The counters that a direct
// request adds to come first, on one cache line: with submitters on every
// CPU the line moves between them, and a second line cost a directly
// issued read as much again (perf: the lone atomic add of a separate
// direct counter was half of issueDirect's time).
type opCounters struct {
	reqs, bytes atomic.Uint64
	direct      atomic.Uint64 // requests issued by their submitter, one backend call each
	errs        atomic.Uint64
	latSum      atomic.Int64
	lat         [NumLatencyBuckets]atomic.Uint64
	_           [cacheLine - (5+NumLatencyBuckets)*8%cacheLine]byte
}

// complete records one finished request; latency is negative when the
// request was not sampled.
func (s *swStats) complete(op Op, n int64, direct, failed bool, latency int64) {
	c := &s.ops[op]
	if direct {
		c.direct.Add(1)
	}
	c.reqs.Add(1)
	c.bytes.Add(uint64(n))
	if failed {
		c.errs.Add(1)
	}
	if latency >= 0 {
		c.latSum.Add(latency)
		c.lat[latencyBucket(latency)].Add(1)
	}
}

// addTo adds the counters into q.
func (s *swStats) addTo(q *QueueStats) {
	q.Dispatched += s.units.Load()
	q.Queued += s.queued.Load()
	q.Merges += s.merges.Load()
	for i := range s.ops {
		o, c := &q.Ops[i], &s.ops[i]
		direct := c.direct.Load()
		q.Direct += direct
		q.Dispatched += direct
		o.Requests += c.reqs.Load()
		o.Bytes += c.bytes.Load()
		o.Errors += c.errs.Load()
		o.Latency.Sum += time.Duration(c.latSum.Load())
		for b := range c.lat {
			n := c.lat[b].Load()
			o.Latency.Buckets[b] += n
			o.Latency.Count += n
			q.Latency.Buckets[b] += n
			q.Latency.Count += n
		}
		q.Latency.Sum += time.Duration(c.latSum.Load())
	}
}
