package blk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// Concurrent submitters run random operations through every path (direct,
// queued, plugged and merged, asynchronous) against their own region of
// the file, each checking its reads against an in-memory model; at the end
// the whole file must equal the models. The same seed runs under every
// configuration.
func TestConcurrentSubmittersMatchAModel(t *testing.T) {
	seed := randtest.Seed(t)
	for _, tc := range configs {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/direct=%v", tc.name, direct), func(t *testing.T) {
				runModel(t, seed, tc.cfg, FileOptions{Direct: direct})
			})
		}
	}
}

const (
	modelSubmitters = 8
	modelRegion     = 256 << 10
	modelOps        = 150
	modelUnit       = 4096 // offsets and lengths are multiples of this, so O_DIRECT works too
)

func runModel(t *testing.T, seed uint64, cfg Config, opt FileOptions) {
	cfg.PlugLimit = 8
	d, path := newTestDispatcher(t, modelSubmitters*modelRegion, cfg, opt)
	models := make([][]byte, modelSubmitters)
	var wg sync.WaitGroup
	for s := range modelSubmitters {
		models[s] = make([]byte, modelRegion)
		wg.Go(func() {
			m := &modelSubmitter{t: t, d: d, base: int64(s * modelRegion), model: models[s],
				rng: randtest.Stream(seed, uint64(s)), plug: d.NewPlug(), done: make(completions, cfg.PlugLimit)}
			for i := 0; i < modelOps && !t.Failed(); i++ {
				m.step(i)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	want := bytes.Join(models, nil)
	if got := fileBytes(t, path); !bytes.Equal(got, want) {
		t.Fatalf("file differs from the model: %s", firstDiff(got, want))
	}
	st := d.Stats().Total()
	// With a single tag a plug can never hold two requests, so nothing
	// merges; every other shape must exercise every path.
	if (st.Merges == 0 && cfg.QueueDepth != 1) || st.Direct == 0 || st.Queued == 0 {
		t.Errorf("a path was not exercised: %d merges, %d direct, %d queued", st.Merges, st.Direct, st.Queued)
	}
	t.Logf("%d backend calls, %d direct, %d queued, %d merges, %d tag sleeps", st.Dispatched, st.Direct, st.Queued, st.Merges, st.TagSleeps)
}

// modelSubmitter owns [base, base+modelRegion) of the file.
type modelSubmitter struct {
	t     *testing.T
	d     *Dispatcher
	base  int64
	model []byte
	rng   *rand.Rand
	plug  *Plug
	done  completions
}

// extent picks a random range of whole units inside the region, at most
// max units long, as a region-relative offset and a length.
func (m *modelSubmitter) extent(max int) (int64, int64) {
	units := modelRegion / modelUnit
	n := 1 + m.rng.IntN(max)
	off := m.rng.IntN(units - n + 1)
	return int64(off * modelUnit), int64(n * modelUnit)
}

func (m *modelSubmitter) buffer(n int64) []byte {
	b, err := AlignedBuffer(int(n), modelUnit)
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

func (m *modelSubmitter) fail(step int, what string, err error) {
	m.t.Errorf("submitter at %d, step %d: %s: %v", m.base, step, what, err)
}

func (m *modelSubmitter) step(i int) {
	ctx := m.t.Context()
	switch op := m.rng.IntN(10); op {
	case 0, 1: // synchronous write, sometimes FUA
		off, n := m.extent(8)
		b := m.buffer(n)
		fillPattern(b, m.rng.Int64())
		if err := m.d.Write(ctx, b, m.base+off, m.rng.IntN(4) == 0); err != nil {
			m.fail(i, "write", err)
			return
		}
		copy(m.model[off:], b)
	case 2, 3: // synchronous read
		off, n := m.extent(16)
		b := m.buffer(n)
		if err := m.d.Read(ctx, b, m.base+off); err != nil {
			m.fail(i, "read", err)
			return
		}
		if !bytes.Equal(b, m.model[off:off+n]) {
			m.fail(i, fmt.Sprintf("read [%d,+%d)", m.base+off, n), fmt.Errorf("%s", firstDiff(b, m.model[off:off+n])))
		}
	case 4: // discard or write zeroes
		off, n := m.extent(8)
		var err error
		if m.rng.IntN(2) == 0 {
			err = m.d.Discard(ctx, m.base+off, n)
		} else {
			err = m.d.WriteZeroes(ctx, m.base+off, n)
		}
		if err != nil {
			m.fail(i, "discard/zeroes", err)
			return
		}
		clear(m.model[off : off+n])
	case 5, 6: // a plugged batch of non-overlapping writes, mostly contiguous
		m.pluggedWrites(i)
	case 7: // a plugged batch of contiguous reads
		m.pluggedReads(i)
	case 8: // one asynchronous write
		off, n := m.extent(4)
		b := m.buffer(n)
		fillPattern(b, m.rng.Int64())
		if err := m.d.Submit(ctx, &Request{Op: OpWrite, Off: m.base + off, Buf: b, End: m.done.end}); err != nil {
			m.fail(i, "submit", err)
			return
		}
		if err := <-m.done; err != nil {
			m.fail(i, "async write", err)
			return
		}
		copy(m.model[off:], b)
	case 9:
		if err := m.d.Flush(ctx); err != nil {
			m.fail(i, "flush", err)
		}
	}
}

func (m *modelSubmitter) pluggedWrites(i int) {
	count := 1 + m.rng.IntN(cap(m.done))
	off, _ := m.extent(1)
	type write struct {
		off int64
		b   []byte
	}
	var ws []write
	for range count {
		n := int64((1 + m.rng.IntN(4)) * modelUnit)
		if off+n > modelRegion {
			break
		}
		b := m.buffer(n)
		fillPattern(b, m.rng.Int64())
		ws = append(ws, write{off, b})
		off += n
		if m.rng.IntN(4) == 0 {
			off += modelUnit // a gap
		}
	}
	m.rng.Shuffle(len(ws), func(a, b int) { ws[a], ws[b] = ws[b], ws[a] })
	for _, w := range ws {
		r := &Request{Op: OpWrite, Off: m.base + w.off, Buf: w.b, FUA: m.rng.IntN(8) == 0, End: m.done.end}
		if err := m.plug.Submit(m.t.Context(), r); err != nil {
			m.fail(i, "plugged write", err)
			return
		}
	}
	m.plug.Finish()
	if err := m.done.wait(m.t, len(ws)); err != nil {
		m.fail(i, "plugged write", err)
		return
	}
	for _, w := range ws {
		copy(m.model[w.off:], w.b)
	}
}

func (m *modelSubmitter) pluggedReads(i int) {
	count := 1 + m.rng.IntN(cap(m.done))
	off, _ := m.extent(1)
	type read struct {
		off int64
		b   []byte
	}
	var rs []read
	for range count {
		if off+modelUnit > modelRegion {
			break
		}
		rs = append(rs, read{off, m.buffer(modelUnit)})
		off += modelUnit
	}
	for _, r := range rs {
		if err := m.plug.Submit(m.t.Context(), &Request{Op: OpRead, Off: m.base + r.off, Buf: r.b, End: m.done.end}); err != nil {
			m.fail(i, "plugged read", err)
			return
		}
	}
	m.plug.Finish()
	if err := m.done.wait(m.t, len(rs)); err != nil {
		m.fail(i, "plugged read", err)
		return
	}
	for _, r := range rs {
		if want := m.model[r.off : r.off+modelUnit]; !bytes.Equal(r.b, want) {
			m.fail(i, fmt.Sprintf("plugged read at %d", m.base+r.off), fmt.Errorf("%s", firstDiff(r.b, want)))
		}
	}
}
