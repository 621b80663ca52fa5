package bioprison

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
)

// occupancy records which blocks are held, to catch two holders of
// overlapping keys. Indexed by space, device and block.
type occupancy [3][2][3 * MaxRange]atomic.Int32

func (o *occupancy) enter(t testing.TB, k Key) {
	for b := k.Begin; b < k.End; b++ {
		if !o[k.Space][k.Dev][b].CompareAndSwap(0, 1) {
			t.Errorf("block %d of %v already held by another holder", b, k)
		}
	}
}

func (o *occupancy) leave(k Key) {
	for b := k.Begin; b < k.End; b++ {
		o[k.Space][k.Dev][b].Store(0)
	}
}

// randomKey draws keys that contend: mostly single blocks near the start of
// a few windows, some ranges up to a whole window.
func randomKey(rng *rand.Rand) Key {
	k := Key{Space: Space(1 + rng.IntN(2)), Dev: uint64(rng.IntN(2))}
	base := uint64(rng.IntN(3)) * MaxRange
	switch rng.IntN(10) {
	case 0:
		k.Begin, k.End = base, base+MaxRange
	case 1, 2:
		k.Begin = base + uint64(rng.IntN(MaxRange))
		k.End = min(k.Begin+1+uint64(rng.IntN(64)), base+MaxRange)
	default:
		k.Begin = base + uint64(rng.IntN(16))
		k.End = k.Begin + 1
	}
	return k
}

type raceRequest struct {
	id      int
	key     Key
	waiting atomic.Int32 // 1 from just before a detain until a release hands it back
	done    atomic.Int32 // completions; must end at exactly 1
}

// TestPrisonConcurrentQueueDriven runs requests through a prison the way the
// engine will: a fixed set of workers take requests from a queue; a holder
// does its work and releases the cell with one of the release calls, and
// the waiters handed back go to the back of the queue. No goroutine waits
// per request. Checked: at most one holder per block at any time, every
// waiter handed back exactly once, every request completed exactly once,
// and an empty prison at the end.
func TestPrisonConcurrentQueueDriven(t *testing.T) {
	const requests, workers = 4000, 8
	seed := randtest.Seed(t)
	rng := randtest.FromSeed(seed)
	p := New[*raceRequest](Options{Regions: 4}) // few regions: more sharing
	var occ occupancy

	reqs := make([]*raceRequest, requests)
	queue := make(chan *raceRequest, requests) // never fills: each request is queued at most once at a time
	for i := range reqs {
		reqs[i] = &raceRequest{id: i, key: randomKey(rng)}
		queue <- reqs[i]
	}
	var completed, waits atomic.Int32
	allDone := make(chan struct{})
	complete := func(r *raceRequest) {
		if r.done.Add(1) != 1 {
			t.Errorf("request %d completed twice", r.id)
		}
		if completed.Add(1) == requests {
			close(allDone)
		}
	}
	handBack := func(r *raceRequest) {
		if !r.waiting.CompareAndSwap(1, 0) {
			t.Errorf("request %d handed back while not waiting", r.id)
		}
	}
	requeue := func(rs []*raceRequest) {
		for _, r := range rs {
			handBack(r)
			queue <- r
		}
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrng := randtest.Stream(seed, uint64(w))
			var buf []*raceRequest
			for {
				var r *raceRequest
				select {
				case r = <-queue:
				case <-allDone:
					return
				}
				r.waiting.Store(1)
				c, isHolder, err := p.Detain(r.key, r)
				if err != nil {
					t.Errorf("detain %v: %v", r.key, err)
					return
				}
				if !isHolder {
					waits.Add(1)
					continue // the holder's release will hand r back
				}
				r.waiting.Store(0)
				hold(t, &occ, r.key)
				switch wrng.IntN(5) {
				case 0:
					buf = p.Release(c, buf[:0])
					if buf[0] != r {
						t.Errorf("release returned %d as holder, want %d", buf[0].id, r.id)
					}
					complete(r)
					requeue(buf[1:])
				case 1:
					complete(r)
					requeue(p.ReleaseNoHolder(c, buf[:0]))
				case 2:
					complete(r)
					p.VisitRelease(c, func(x *raceRequest) {
						handBack(x)
						queue <- x // cannot block: see the queue's capacity
					})
				case 3:
					complete(r)
					p.Error(c, errors.New("EIO"), func(x *raceRequest, _ error) {
						if x != r {
							handBack(x)
							complete(x)
						}
					})
				case 4:
					complete(r)
					promoteAll(t, p, c, &occ, handBack, complete, requeue, &buf)
				}
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st != (Stats{}) {
		t.Fatalf("seed %d: prison not empty at the end: %+v", seed, st)
	}
	if waits.Load() == 0 {
		t.Fatalf("seed %d: no request ever waited, so nothing was exercised", seed)
	}
	t.Logf("%d detains waited behind a holder", waits.Load())
}

// hold plays a holder's work on k, sleeping so that others try to detain
// overlapping keys meanwhile. A sleep, not a yield: Gosched returns at
// once when no other goroutine is runnable on this P, and on a loaded
// machine a whole run could then pass without one request waiting.
func hold(t testing.TB, occ *occupancy, k Key) {
	occ.enter(t, k)
	time.Sleep(time.Microsecond)
	occ.leave(k)
}

// promoteAll passes the cell down its queue while the promoted waiter's key
// is within the cell's, and releases it to the queue otherwise, as
// PromoteOrRelease's doc asks.
func promoteAll(t testing.TB, p *Prison[*raceRequest], c Cell[*raceRequest], occ *occupancy,
	handBack, complete func(*raceRequest), requeue func([]*raceRequest), buf *[]*raceRequest) {
	cellKey := p.Key(c)
	for {
		next, ok := p.PromoteOrRelease(c)
		if !ok {
			return
		}
		if !cellKey.Contains(next.key) {
			*buf = p.Release(c, (*buf)[:0])
			requeue(*buf)
			return
		}
		handBack(next)
		hold(t, occ, next.key)
		complete(next)
	}
}
