package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/nbd"
)

// Handler returns an HTTP handler serving the metrics of src, plus Go and
// process metrics, from a registry of its own.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Collector is a prometheus.Collector over a Source.
type Collector struct{ src Source }

// NewCollector returns a collector over src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("thind_"+name, help, labels, nil)
}

var (
	poolMode          = desc("pool_mode", "1 for the pool's current mode (write, out-of-data-space, read-only, fail), 0 for the others.", "mode")
	poolDataBlocks    = desc("pool_data_blocks", "Size of the data device in data blocks.")
	poolDataUsed      = desc("pool_data_blocks_used", "Data blocks in use (allocated, or freed but not yet reusable before the next commit).")
	poolDataBytes     = desc("pool_data_bytes", "Size of the data device in bytes.")
	poolDataUsedBytes = desc("pool_data_used_bytes", "Data in use, in bytes.")
	poolBlockSize     = desc("pool_data_block_size_bytes", "Data block size.")
	poolMetaBlocks    = desc("pool_metadata_blocks", "Size of the metadata space map in 4 KiB blocks.")
	poolMetaUsed      = desc("pool_metadata_blocks_used", "Metadata blocks in use, the reserve included (as dmsetup status reports).")
	poolTxID          = desc("pool_transaction_id", "The metadata's transaction id.")
	poolNeedsCheck    = desc("pool_needs_check", "1 when the metadata's needs_check flag is set.")
	poolCommits       = desc("pool_commits_total", "Metadata commits.")
	poolCommitSeconds = desc("pool_commit_duration_seconds_total", "Time spent in commits (flush of the data device, then the metadata).")
	poolCommitErrors  = desc("pool_commit_errors_total", "Commits that failed.")
	poolMetaErrors    = desc("pool_metadata_errors_total", "Metadata operations that failed (each sends the pool read-only).")
	poolPrisonWaits   = desc("pool_prison_waits_total", "Requests that waited in a bio prison cell for another request's mapping change.")
	poolPrisonCells   = desc("pool_prison_cells", "Prison cells held now.")
	poolNoSpaceWaits  = desc("pool_no_space_waits_total", "Writes that waited for data space.")
	poolNoSpaceErrors = desc("pool_no_space_errors_total", "Writes failed for lack of data space.")
	cacheHits         = desc("metadata_cache_hits_total", "Metadata block cache hits.")
	cacheMisses       = desc("metadata_cache_misses_total", "Metadata block cache misses.")
	cacheBlocks       = desc("metadata_cache_blocks", "Metadata blocks cached.")
	cacheDirty        = desc("metadata_cache_dirty_blocks", "Metadata blocks changed since the last commit.")
	volSize           = desc("volume_size_bytes", "Volume size.", "volume")
	volMapped         = desc("volume_mapped_blocks", "Data blocks the volume maps (shared ones included).", "volume")
	volMappedBytes    = desc("volume_mapped_bytes", "Bytes the volume maps (shared ones included).", "volume")
	volProvisioned    = desc("volume_provisioned_blocks_total", "Data blocks provisioned by writes to unmapped blocks.", "volume")
	volCoW            = desc("volume_sharing_broken_total", "Writes that broke sharing with a snapshot (copy on write).", "volume")
	volUnmapped       = desc("volume_unmapped_blocks_total", "Blocks unmapped by discard, write-zeroes and shrink.", "volume")
	volPassdown       = desc("volume_discard_passdown_bytes_total", "Freed data passed down to the data device as holes.", "volume")
	volReadRetries    = desc("volume_read_retries_total", "Read batches read again because a commit raced them.", "volume")
	volRequests       = desc("volume_requests_total", "NBD requests.", "volume", "op")
	volRequestErrors  = desc("volume_request_errors_total", "NBD requests answered with an error.", "volume", "op")
	volBytes          = desc("volume_bytes_total", "Bytes read, written, trimmed, zeroed, cached or queried by NBD requests.", "volume", "op")
	volLatency        = desc("volume_request_duration_seconds", "NBD request latency, from header read to reply sent.", "volume", "op")
	volErrors         = desc("volume_errors_total", "NBD error replies by errno.", "volume", "errno")
	volConnections    = desc("volume_connections", "NBD connections in transmission on the volume.", "volume")
	nbdConnections    = desc("nbd_connections", "NBD connections open (handshake or transmission).")
	nbdConnectionsTot = desc("nbd_connections_total", "NBD connections accepted.")
	nbdHandshakeFails = desc("nbd_handshake_failures_total", "NBD connections that ended before transmission, by reason.", "reason")
	nbdAccessDenied   = desc("nbd_access_denied_total", "Export opens (INFO, GO, EXPORT_NAME) a volume's access list refused.")
	nbdLimitHits      = desc("nbd_limit_hits_total", "Times a resource limit turned an NBD client away or held it back, by limit (connections, handshakes, buffer_budget, reply_timeout, export_connections).", "limit")
	nbdBuffered       = desc("nbd_buffered_bytes", "Payload bytes NBD connections hold now against the buffer budget.")
	dispDepth         = desc("dispatch_queue_depth", "Tags (request slots) of a hardware queue.", "queue")
	dispInFlight      = desc("dispatch_in_flight", "Requests in flight on a hardware queue.", "queue")
	dispBacklog       = desc("dispatch_backlog", "Requests waiting in software queues for a hardware queue.", "queue")
	dispMerges        = desc("dispatch_merges_total", "Requests merged into another's backend call.", "queue")
	dispDispatched    = desc("dispatch_backend_calls_total", "Backend calls made.", "queue")
	dispTagSleeps     = desc("dispatch_tag_sleeps_total", "Times a submitter slept for a tag.", "queue")
	dispRequests      = desc("dispatch_requests_total", "Requests dispatched to the data device.", "queue", "op")
	dispBytes         = desc("dispatch_bytes_total", "Bytes moved to or from the data device.", "queue", "op")
	dispErrors        = desc("dispatch_errors_total", "Data device requests that failed (each fails only the requests it serves).", "queue", "op")
	dispLatency       = desc("dispatch_latency_seconds", "Data device request latency (a sample of about one request in eight).", "queue")
	replDeltaBytes    = desc("send_delta_bytes_total", "Bytes a send found to send: the ranges changed or unmapped since the base, or a full stream's mapped bytes.")
	replDeltaSeconds  = desc("send_delta_duration_seconds_total", "Time sends spent finding those ranges.")
	replSentBytes     = desc("send_bytes_total", "Send stream bytes written.")
	replSendSeconds   = desc("send_duration_seconds_total", "Time spent sending, the delta included.")
	replSends         = desc("sends_total", "Send streams begun.")
	replSendsFailed   = desc("sends_failed_total", "Send streams that ended in an error (the receiver then resumes).")
	replRecvBytes     = desc("receive_bytes_total", "Send stream bytes received.")
	replRecvSeconds   = desc("receive_duration_seconds_total", "Time spent receiving.")
	replReceives      = desc("receives_total", "Receives begun.")
	replRecvFailed    = desc("receives_failed_total", "Receives refused or interrupted (nothing visible; a resume continues).")
	replSendsRunning  = desc("sends_in_progress", "Send streams being written now.")
	replRecvRunning   = desc("receives_in_progress", "Receives applying a stream now.")
)

var all = []*prometheus.Desc{poolMode, poolDataBlocks, poolDataUsed, poolDataBytes, poolDataUsedBytes, poolBlockSize,
	poolMetaBlocks, poolMetaUsed, poolTxID, poolNeedsCheck, poolCommits, poolCommitSeconds, poolCommitErrors,
	poolMetaErrors, poolPrisonWaits, poolPrisonCells, poolNoSpaceWaits, poolNoSpaceErrors, cacheHits, cacheMisses,
	cacheBlocks, cacheDirty, volSize, volMapped, volMappedBytes, volProvisioned, volCoW, volUnmapped, volPassdown, volReadRetries,
	volRequests, volRequestErrors, volBytes, volLatency, volErrors, volConnections, nbdConnections, nbdConnectionsTot,
	nbdHandshakeFails, nbdAccessDenied, nbdLimitHits, nbdBuffered, dispDepth, dispInFlight, dispBacklog, dispMerges, dispDispatched, dispTagSleeps, dispRequests,
	dispBytes, dispErrors, dispLatency, replDeltaBytes, replDeltaSeconds, replSentBytes, replSendSeconds, replSends, replSendsFailed,
	replRecvBytes, replRecvSeconds, replReceives, replRecvFailed, replSendsRunning, replRecvRunning}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	var vols []Volume
	if c.src.Volumes != nil {
		vols = c.src.Volumes()
	}
	if c.src.Pool != nil {
		ps := c.src.Pool()
		c.collectPool(ps, vols, gauge, counter)
		c.collectDispatcher(ps.Dispatcher, gauge, counter, ch)
	}
	if c.src.NBD != nil {
		c.collectNBD(c.src.NBD(), gauge, counter, ch)
	}
	if c.src.Repl != nil {
		r := c.src.Repl()
		for _, x := range []struct {
			d *prometheus.Desc
			v float64
		}{{replDeltaBytes, float64(r.DeltaBytes)}, {replDeltaSeconds, r.DeltaSeconds}, {replSentBytes, float64(r.SentBytes)},
			{replSendSeconds, r.SendSeconds}, {replSends, float64(r.Sends)}, {replSendsFailed, float64(r.SendsFailed)},
			{replRecvBytes, float64(r.ReceivedBytes)}, {replRecvSeconds, r.ReceiveSeconds}, {replReceives, float64(r.Receives)},
			{replRecvFailed, float64(r.ReceivesFailed)}} {
			counter(x.d, x.v)
		}
		gauge(replSendsRunning, float64(r.SendsRunning))
		gauge(replRecvRunning, float64(r.ReceivesRunning))
	}
}

type emit func(d *prometheus.Desc, v float64, l ...string)

func (c *Collector) collectPool(ps Pool, vols []Volume, gauge, counter emit) {
	m := ps.Metadata
	for _, mode := range ps.Modes {
		gauge(poolMode, b2f(ps.Mode == mode), mode)
	}
	bs := float64(m.DataBlockSize) * 512
	used := m.DataBlocks - m.DataBlocksFree
	gauge(poolDataBlocks, float64(m.DataBlocks))
	gauge(poolDataUsed, float64(used))
	gauge(poolDataBytes, float64(m.DataBlocks)*bs)
	gauge(poolDataUsedBytes, float64(used)*bs)
	gauge(poolBlockSize, bs)
	gauge(poolMetaBlocks, float64(m.MetadataBlocks))
	gauge(poolMetaUsed, float64(m.MetadataBlocks-m.MetadataBlocksFree))
	gauge(poolTxID, float64(m.TransactionID))
	gauge(poolNeedsCheck, b2f(m.NeedsCheck))
	counter(poolCommits, float64(ps.Commits))
	counter(poolCommitSeconds, ps.CommitSeconds)
	counter(poolCommitErrors, float64(ps.CommitErrors))
	counter(poolMetaErrors, float64(ps.MetadataErrors))
	counter(poolPrisonWaits, float64(ps.PrisonWaits))
	gauge(poolPrisonCells, float64(ps.PrisonCells))
	counter(poolNoSpaceWaits, float64(ps.NoSpaceWaits))
	counter(poolNoSpaceErrors, float64(ps.NoSpaceErrors))
	counter(cacheHits, float64(m.Cache.Hits))
	counter(cacheMisses, float64(m.Cache.Misses))
	gauge(cacheBlocks, float64(m.Cache.CachedBlocks))
	gauge(cacheDirty, float64(m.Cache.DirtyBlocks))
	for _, v := range vols {
		gauge(volSize, float64(v.Size), v.Name)
		t, open := ps.Thins[v.DevID]
		if !open {
			continue
		}
		gauge(volMapped, float64(t.MappedBlocks), v.Name)
		gauge(volMappedBytes, float64(t.MappedBlocks)*bs, v.Name)
		counter(volProvisioned, float64(t.Provisioned), v.Name)
		counter(volCoW, float64(t.SharingBroken), v.Name)
		counter(volUnmapped, float64(t.BlocksUnmapped), v.Name)
		counter(volPassdown, float64(t.PassdownBytes), v.Name)
		counter(volReadRetries, float64(t.ReadRetries), v.Name)
	}
}

func (c *Collector) collectNBD(ns nbd.Stats, gauge, counter emit, ch chan<- prometheus.Metric) {
	gauge(nbdConnections, float64(ns.ConnectionsOpen))
	counter(nbdConnectionsTot, float64(ns.ConnectionsTotal))
	for reason, n := range ns.HandshakeFailures {
		counter(nbdHandshakeFails, float64(n), reason)
	}
	counter(nbdAccessDenied, float64(ns.AccessDenied))
	for kind, n := range ns.LimitHits {
		counter(nbdLimitHits, float64(n), kind)
	}
	gauge(nbdBuffered, float64(ns.BufferedBytes))
	for name, e := range ns.Exports {
		gauge(volConnections, float64(e.Connections), name)
		for op, o := range e.Ops {
			counter(volRequests, float64(o.Requests), name, op)
			counter(volRequestErrors, float64(o.Errors), name, op)
			counter(volBytes, float64(o.Bytes), name, op)
			buckets := map[float64]uint64{}
			cum := uint64(0)
			for i, bound := range nbd.LatencyBounds {
				cum += o.LatencyBuckets[i]
				buckets[bound.Seconds()] = cum
			}
			count := cum + o.LatencyBuckets[len(nbd.LatencyBounds)]
			ch <- prometheus.MustNewConstHistogram(volLatency, count, o.LatencySum.Seconds(), buckets, name, op)
		}
		for errno, n := range e.Errors {
			counter(volErrors, float64(n), name, errno)
		}
	}
}

func (c *Collector) collectDispatcher(ds blk.Stats, gauge, counter emit, ch chan<- prometheus.Metric) {
	for i, q := range ds.Queues {
		id := strconv.Itoa(i)
		gauge(dispDepth, float64(q.Depth), id)
		gauge(dispInFlight, float64(q.InFlight), id)
		gauge(dispBacklog, float64(q.Backlog), id)
		counter(dispMerges, float64(q.Merges), id)
		counter(dispDispatched, float64(q.Dispatched), id)
		counter(dispTagSleeps, float64(q.TagSleeps), id)
		for op := blk.Op(0); int(op) < blk.NumOps; op++ {
			o := q.Ops[op]
			counter(dispRequests, float64(o.Requests), id, op.String())
			counter(dispBytes, float64(o.Bytes), id, op.String())
			counter(dispErrors, float64(o.Errors), id, op.String())
		}
		buckets := map[float64]uint64{}
		cum := uint64(0)
		for b := 0; b < blk.NumLatencyBuckets-1; b++ {
			cum += q.Latency.Buckets[b]
			buckets[blk.LatencyBucketBound(b).Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(dispLatency, q.Latency.Count, q.Latency.Sum.Seconds(), buckets, id)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
