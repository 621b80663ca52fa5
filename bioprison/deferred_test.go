package bioprison

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDeferredSetScripts runs transcripts against a DeferredSet[string].
// Commands:
//
//	inc io=X        an I/O starts
//	dec io=X        it completes; prints the work that may now run
//	add-work work=W prints whether W waits or runs now
//	state           the live generations, oldest first
func TestDeferredSetScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/deferred", func(t *testing.T, path string) {
		var ds DeferredSet[string]
		ios := map[string]DeferredEntry{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) (out string) {
			defer func() {
				if r := recover(); r != nil {
					out = fmt.Sprintf("panic: %v\n", r)
				}
			}()
			switch d.Cmd {
			case "inc":
				var io string
				d.ScanArgs(t, "io", &io)
				e := ds.Inc()
				ios[io] = e
				return fmt.Sprintf("%s in generation %d\n", io, e.gen)
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
				for i := 0; i < ds.n; i++ {
					g := ds.at(i)
					fmt.Fprintf(&b, "generation %d: io=%d work=%v\n", ds.first+uint64(i), g.count, g.work)
				}
				return b.String()
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
				return ""
			}
		})
	})
}

// TestDeferredSetRunsWorkExactlyWhenEarlierIODrains drives random I/O and
// work through a DeferredSet and checks it against a model that remembers,
// for each piece of work, the I/Os in flight when it was queued. Work must
// come back exactly once, never before all of those I/Os have completed
// (safety), and as soon as the last of them does (no needless delay, which
// the kernel's fixed ring can cause when it fills).
func TestDeferredSetRunsWorkExactlyWhenEarlierIODrains(t *testing.T) {
	seed, rng := seeded(t)

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
		for i := 0; i < ds.n-1; i++ {
			if len(ds.at(i).work) == 0 {
				t.Fatalf("seed %d: generation %d of %d holds no work", seed, i, ds.n)
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
	if ds.n != 1 || ds.at(0).count != 0 || len(ds.at(0).work) != 0 {
		t.Fatalf("deferred set not drained: %d generations", ds.n)
	}
}
