package bioprison

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/scripttest"
)

// TestDeferredSetScripts runs transcripts against a DeferredSet[string].
// Commands:
//
//	inc io=X        an I/O starts
//	dec io=X        it completes; prints the work that may now run
//	add-work work=W prints whether W waits or runs now
//	state           the live generations, oldest first
func TestDeferredSetScripts(t *testing.T) {
	scripttest.Walk(t, "testdata/deferred", func(t *testing.T) scripttest.Handler {
		var ds DeferredSet[string]
		ios := map[string]DeferredEntry{}
		return func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "inc":
				var io string
				d.ScanArgs(t, "io", &io)
				e := ds.Inc()
				ios[io] = e
				return fmt.Sprintf("%s in generation %d\n", io, e.g.id)
			case "dec":
				var io string
				d.ScanArgs(t, "io", &io)
				run := ds.Dec(ios[io], nil)
				if len(run) == 0 {
					return "nothing to run\n"
				}
				return fmt.Sprintf("run %v\n", run)
			case "add-work":
				var w string
				d.ScanArgs(t, "work", &w)
				if ds.AddWork(w) {
					return w + " waits\n"
				}
				return w + " runs now\n"
			case "state":
				var b strings.Builder
				for _, g := range ds.gens {
					fmt.Fprintf(&b, "generation %d: io=%d work=%v\n", g.id, g.count.Load(), g.work)
				}
				return b.String()
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
				return ""
			}
		}
	})
}

// TestDeferredSetRunsWorkExactlyWhenEarlierIODrains drives random I/O and
// work through a DeferredSet and checks it against a model that remembers,
// for each piece of work, the I/Os in flight when it was queued. Work must
// come back exactly once, never before all of those I/Os have completed
// (safety), and as soon as the last of them does (no needless delay, which
// the kernel's fixed ring can cause when it fills).
func TestDeferredSetRunsWorkExactlyWhenEarlierIODrains(t *testing.T) {
	seed := randtest.Seed(t)
	rng := randtest.FromSeed(seed)

	var ds DeferredSet[int]
	type io struct {
		id    int
		entry DeferredEntry
	}
	var inflight []io                  // I/Os started and not completed
	waitsFor := map[int]map[int]bool{} // work id -> I/O ids it waits for
	ran := map[int]bool{}
	nextIO, nextWork := 0, 0

	check := func(done []int) {
		t.Helper()
		for _, w := range done {
			if ran[w] {
				t.Fatalf("seed %d: work %d ran twice", seed, w)
			}
			if len(waitsFor[w]) != 0 {
				t.Fatalf("seed %d: work %d ran with I/Os %v still in flight", seed, w, waitsFor[w])
			}
			ran[w] = true
			delete(waitsFor, w)
		}
		for w, ios := range waitsFor {
			if len(ios) == 0 {
				t.Fatalf("seed %d: work %d still waits with no earlier I/O in flight", seed, w)
			}
		}
	}

	for step := 0; step < 5000; step++ {
		switch op := rng.IntN(10); {
		case op < 4 && len(inflight) < 64:
			inflight = append(inflight, io{nextIO, ds.Inc()})
			nextIO++
		case op < 7 && len(inflight) > 0:
			i := rng.IntN(len(inflight))
			done := inflight[i]
			inflight = append(inflight[:i], inflight[i+1:]...)
			for _, ios := range waitsFor {
				delete(ios, done.id)
			}
			check(ds.Dec(done.entry, nil))
		default:
			w := nextWork
			nextWork++
			ios := map[int]bool{}
			for _, x := range inflight {
				ios[x.id] = true
			}
			waitsFor[w] = ios
			if !ds.AddWork(w) {
				check([]int{w})
			}
		}
		// Generations cost memory only alongside the work they hold: every
		// one but the newest holds some.
		for i, g := range ds.gens[:len(ds.gens)-1] {
			if len(g.work) == 0 {
				t.Fatalf("seed %d: generation %d of %d holds no work", seed, i, len(ds.gens))
			}
		}
	}
	for len(inflight) > 0 {
		done := inflight[0]
		inflight = inflight[1:]
		for _, ios := range waitsFor {
			delete(ios, done.id)
		}
		check(ds.Dec(done.entry, nil))
	}
	if len(ran) != nextWork {
		t.Fatalf("seed %d: %d of %d pieces of work ran", seed, len(ran), nextWork)
	}
}

// TestDeferredSetConcurrentUse runs I/O and work from many goroutines under
// the race detector: every piece of work must come back exactly once, from
// AddWork's false or from some Dec.
func TestDeferredSetConcurrentUse(t *testing.T) {
	const goroutines, perG = 8, 500
	var ds DeferredSet[int]
	runs := make([]atomic.Int32, goroutines*perG)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var done []int
			for i := range perG {
				w := g*perG + i
				e := ds.Inc()
				if i%2 == 0 && !ds.AddWork(w) {
					t.Errorf("work %d ran at once with this goroutine's I/O in flight", w)
				}
				runtime.Gosched() // let other I/O start while this one is in flight
				done = ds.Dec(e, done)
				if i%2 == 1 && !ds.AddWork(w) {
					done = append(done, w) // nothing in flight anywhere
				}
			}
			for _, w := range done {
				runs[w].Add(1)
			}
		}()
	}
	wg.Wait()
	for w := range runs {
		if n := runs[w].Load(); n != 1 {
			t.Fatalf("work %d ran %d times", w, n)
		}
	}
	if len(ds.gens) != 1 || ds.gens[0].count.Load() != 0 || len(ds.gens[0].work) != 0 {
		t.Fatalf("deferred set not drained: %d generations", len(ds.gens))
	}
}

// TestDeferredSetWorkWaitsForEarlierIO checks the set's promise under
// contention on the lock-free path: work comes back only after every I/O
// whose Inc returned before the AddWork has been Dec'd. Each goroutine
// publishes the I/O it has in flight; AddWork records those it sees, and
// whoever gets the work back checks that all of them had ended.
func TestDeferredSetWorkWaitsForEarlierIO(t *testing.T) {
	const goroutines, perG = 8, 3000
	var (
		ds      DeferredSet[int]
		ended   = make([]atomic.Bool, goroutines*perG) // by I/O id
		current = make([]atomic.Int64, goroutines)     // I/O id+1 in flight, or 0
		earlier = make([][]int, goroutines*perG)       // by work id: I/Os before it
		ran     = make([]atomic.Int32, goroutines*perG)
		wg      sync.WaitGroup
	)
	check := func(works []int) {
		for _, w := range works {
			ran[w].Add(1)
			for _, io := range earlier[w] {
				if !ended[io].Load() {
					t.Errorf("work %d came back while I/O %d, started before it, was in flight", w, io)
				}
			}
		}
	}
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var back []int
			for i := range perG {
				id := g*perG + i
				e := ds.Inc()
				current[g].Store(int64(id) + 1)
				if rng.IntN(3) == 0 {
					w := id
					for o := range current {
						if v := current[o].Load(); v > 0 {
							earlier[w] = append(earlier[w], int(v-1))
						}
					}
					if !ds.AddWork(w) {
						t.Errorf("work %d ran at once with this goroutine's I/O in flight", w)
					}
				}
				if rng.IntN(2) == 0 {
					runtime.Gosched()
				}
				current[g].Store(0)
				ended[id].Store(true)
				back = ds.Dec(e, back[:0])
				check(back)
			}
		}()
	}
	wg.Wait()
	for w := range ran {
		if n := ran[w].Load(); n > 1 || (n == 0 && earlier[w] != nil) {
			t.Fatalf("work %d came back %d times", w, n)
		}
	}
	if len(ds.gens) != 1 {
		t.Fatalf("deferred set not drained: %d generations", len(ds.gens))
	}
}

// The lock-free protocol's windows, each driven through a test hook.

// TestDeferredSetIODrainsWhileAddWorkSeals: the newest generation's I/O
// ends between AddWork seeing it and sealing it, so its Dec does not
// retire it: AddWork must, and the work runs at once.
func TestDeferredSetIODrainsWhileAddWorkSeals(t *testing.T) {
	var ds DeferredSet[string]
	e := ds.Inc()
	var back []string
	setHook(&testHookAddWorkSealing, func() { back = ds.Dec(e, back) })
	defer setHook(&testHookAddWorkSealing, nil)
	if ds.AddWork("w") {
		t.Fatal("AddWork queued work behind I/O that ended before the seal: it would never run")
	}
	if len(back) != 0 {
		t.Fatalf("the Dec before the seal handed back %v", back)
	}
	if len(ds.gens) != 1 {
		t.Fatalf("%d generations left", len(ds.gens))
	}

	// With an older generation still busy, the drained one waits for it
	// and comes back with it.
	setHook(&testHookAddWorkSealing, nil)
	e0 := ds.Inc()
	if !ds.AddWork("w0") {
		t.Fatal("AddWork ran work with I/O in flight")
	}
	e1 := ds.Inc()
	setHook(&testHookAddWorkSealing, func() { back = ds.Dec(e1, back) })
	if !ds.AddWork("w1") {
		t.Fatal("AddWork ran work before older I/O ended")
	}
	setHook(&testHookAddWorkSealing, nil)
	if got := ds.Dec(e0, nil); fmt.Sprint(got) != "[w0 w1]" || len(back) != 0 {
		t.Fatalf("the last older I/O's Dec handed back %v (and the early Dec %v), want [w0 w1]", got, back)
	}
}

// TestDeferredSetIncLandsOnARetiredGeneration: between Inc reading the
// newest generation and counting on it, the generation is sealed, drains
// and retires. The I/O must count in the new newest generation, or work
// queued later would not wait for it.
func TestDeferredSetIncLandsOnARetiredGeneration(t *testing.T) {
	var ds DeferredSet[string]
	e0 := ds.Inc()
	var back []string
	setHook(&testHookIncLoaded, func() {
		setHook(&testHookIncLoaded, nil)
		if !ds.AddWork("w") {
			t.Error("AddWork ran work with I/O in flight")
		}
		back = ds.Dec(e0, back)
	})
	e := ds.Inc()
	if fmt.Sprint(back) != "[w]" {
		t.Fatalf("the Dec that drained the sealed generation handed back %v, want [w]", back)
	}
	if e.g.id != 2 {
		t.Fatalf("the I/O counted in generation %d, want the new newest, 2", e.g.id)
	}
	if !ds.AddWork("w2") {
		t.Fatal("work added while the I/O is in flight ran at once")
	}
	if got := ds.Dec(e, nil); fmt.Sprint(got) != "[w2]" {
		t.Fatalf("the I/O's Dec handed back %v, want [w2]", got)
	}
}

// TestDeferredSetIncLandsOnASealedGeneration: the generation is sealed
// but still busy when the count lands, so the I/O stays in it and the
// work queued there waits for it as well.
func TestDeferredSetIncLandsOnASealedGeneration(t *testing.T) {
	var ds DeferredSet[string]
	e0 := ds.Inc()
	setHook(&testHookIncLoaded, func() {
		setHook(&testHookIncLoaded, nil)
		if !ds.AddWork("w") {
			t.Error("AddWork ran work with I/O in flight")
		}
	})
	e := ds.Inc()
	if e.g.id != 1 {
		t.Fatalf("the I/O counted in generation %d, want the sealed one, 1", e.g.id)
	}
	if got := ds.Dec(e0, nil); len(got) != 0 {
		t.Fatalf("work %v came back while an I/O counted with it was in flight", got)
	}
	if got := ds.Dec(e, nil); fmt.Sprint(got) != "[w]" {
		t.Fatalf("the last Dec handed back %v, want [w]", got)
	}
}

// setHook installs fn as the hook h, or clears it for nil.
func setHook(h *atomic.Pointer[func()], fn func()) {
	if fn == nil {
		h.Store(nil)
		return
	}
	h.Store(&fn)
}
