package thinmeta

// runBuilder merges per-block results into runs: a block extends the
// current run if it has the same kind, follows it, and its data blocks
// follow the run's on each side that maps it.
type runBuilder struct {
	fn      func(DeltaRun) error
	cur     DeltaRun
	has     bool
	anyData bool // DeltaOptions.AnyData: data blocks need not follow
}

func (rb *runBuilder) add(kind DeltaKind, vblock, leftData, rightData uint64) error {
	return rb.addRun(kind, vblock, 1, leftData, rightData)
}

// addRun adds n blocks from vblock on whose data blocks are contiguous on
// each side from leftData and rightData: a run already made, as add
// would make it one block at a time.
func (rb *runBuilder) addRun(kind DeltaKind, vblock, n, leftData, rightData uint64) error {
	if rb.anyData {
		leftData, rightData = 0, 0
	}
	c := &rb.cur
	if rb.has && c.Kind == kind && c.Begin+c.Len == vblock && (rb.anyData ||
		(kind == DeltaRightOnly || c.LeftData+c.Len == leftData) &&
			(kind == DeltaLeftOnly || c.RightData+c.Len == rightData)) {
		c.Len += n
		return nil
	}
	if err := rb.flush(); err != nil {
		return err
	}
	rb.cur = DeltaRun{Kind: kind, Begin: vblock, Len: n, LeftData: leftData, RightData: rightData}
	rb.has = true
	return nil
}

func (rb *runBuilder) flush() error {
	if !rb.has {
		return nil
	}
	rb.has = false
	return rb.fn(rb.cur)
}
