package blk

// cmd is the request state that belongs to one tag of one hardware queue,
// the analogue of tags->static_rqs[tag]: allocated once when the
// dispatcher is created and reused for every request that holds the tag,
// so that submission does not allocate.
//
// A cmd is owned by whoever holds its tag: the submitter until it is
// queued, then the software queue, the worker that issues it, and finally
// the completion. Nothing reads it concurrently, so it has no lock.
type cmd struct {
	op  Op
	fua bool
	off int64
	n   int64
	src int64 // OpCopy's source offset
	buf []byte

	tag   uint32
	sq    *swQueue // where the request entered; owns its statistics and usage
	user  *Request // asynchronous request to complete, nil for synchronous ones
	wait  bool     // a synchronous caller waits on done
	done  chan error
	start int64 // tag allocation time in nanoseconds since the dispatcher's epoch; -1 when not sampled

	// A unit is one backend call: a request and the requests merged
	// behind it. Only the unit's first request uses these fields.
	next   *cmd      // next unit in a software queue or the dispatch list
	merged *cmd      // next request of the unit, all issued as one call
	ulen   int64     // bytes of the whole unit
	ucount int       // requests in the unit
	ufua   bool      // some request of the unit is FUA
	iov    [1][]byte // a lone FUA write's vector for a vectored backend
}

// end is the request's last byte plus one.
func (c *cmd) end() int64 { return c.off + c.n }

// reset drops references to the caller's memory so a free tag does not
// keep buffers or callbacks alive.
func (c *cmd) reset() {
	c.buf = nil
	c.user = nil
	c.wait = false
	c.next = nil
	c.merged = nil
	c.ucount = 0
}

// single makes c a unit of its own.
func (c *cmd) single() {
	c.next, c.merged = nil, nil
	c.ulen, c.ucount, c.ufua = c.n, 1, c.fua
}
