package blk

import (
	"math"
	"testing"
	"time"
)

func TestLatencyBucketsMatchTheirBounds(t *testing.T) {
	// Every latency lands in the first bucket whose bound is not below it.
	for _, ns := range []int64{0, 1, 999, 1000, 1001, 3999, 4000, 4001, 16000, 16001,
		int64(time.Millisecond), int64(time.Second), int64(time.Second) + 1, math.MaxInt64} {
		b := latencyBucket(ns)
		if d := time.Duration(ns); d > LatencyBucketBound(b) || (b > 0 && d <= LatencyBucketBound(b-1)) || LatencyBucketBound(-1) != 0 {
			t.Errorf("%v went to bucket %d, bounds (%v, %v]", time.Duration(ns), b, LatencyBucketBound(b-1), LatencyBucketBound(b))
		}
	}
	if LatencyBucketBound(NumLatencyBuckets-1) != math.MaxInt64 {
		t.Error("the last bucket is not unbounded")
	}
}

func TestStatsCountEveryRequestOnce(t *testing.T) {
	d, _ := newTestDispatcher(t, 1<<20, Config{HardwareQueues: 2}, FileOptions{})
	ctx := t.Context()
	buf := make([]byte, 8192)
	for i := range 10 {
		if err := d.Write(ctx, buf, int64(i*8192), false); err != nil {
			t.Fatal(err)
		}
		if err := d.Read(ctx, buf[:4096], int64(i*8192)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Discard(ctx, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	s := d.Stats()
	if len(s.Queues) != 2 {
		t.Fatalf("%d queues in stats, want 2", len(s.Queues))
	}
	st := s.Total()
	want := [NumOps]struct{ reqs, bytes uint64 }{
		OpRead:    {10, 10 * 4096},
		OpWrite:   {10, 10 * 8192},
		OpDiscard: {1, 1 << 20},
	}
	for op := range NumOps {
		o := st.Ops[op]
		if o.Requests != want[op].reqs || o.Bytes != want[op].bytes || o.Latency.Count > o.Requests || o.Errors != 0 {
			t.Errorf("%s: %+v, want %d requests of %d bytes", Op(op), o, want[op].reqs, want[op].bytes)
		}
	}
	var buckets uint64
	for _, n := range st.Latency.Buckets {
		buckets += n
	}
	// Latency is sampled by tag: 21 requests walking through 64 tags
	// meet at least two multiples of 8.
	if st.Latency.Count < 2 || st.Latency.Count > 21 || buckets != st.Latency.Count || st.Latency.Sum <= 0 {
		t.Errorf("latency: sample of %d, bucket total %d, sum %v for 21 requests", st.Latency.Count, buckets, st.Latency.Sum)
	}
	if st.Dispatched != 21 || st.Direct != 21 || st.Queued != 0 || st.Depth != 2*defaultQueueDepth {
		t.Errorf("dispatched %d direct %d queued %d depth %d", st.Dispatched, st.Direct, st.Queued, st.Depth)
	}
}
