package bioprison

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
)

// waitUntil yields until cond holds. It waits on the condition itself, not
// on a guess of how long that takes; the test's own deadline bounds it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if dl, ok := t.Deadline(); ok && time.Until(dl) < time.Second {
			t.Fatalf("gave up waiting until %s", what)
		}
		runtime.Gosched()
	}
}

type lockResult struct {
	h   Held
	err error
}

// lockAsync starts Lock in a goroutine and returns where its result lands.
func lockAsync(ctx context.Context, l *Locker, k Key) <-chan lockResult {
	ch := make(chan lockResult, 1)
	go func() {
		h, err := l.Lock(ctx, k)
		ch <- lockResult{h, err}
	}()
	return ch
}

func TestLockWaitsForTheHolder(t *testing.T) {
	l := NewLocker(Options{})
	k := BlockKey(Virtual, 1, 9)
	h, err := l.Lock(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	res := lockAsync(context.Background(), l, k)
	waitUntil(t, "the second Lock waits", func() bool { return l.p.Stats().Waiters == 1 })
	select {
	case r := <-res:
		t.Fatalf("second Lock returned (%v) while the key was held", r.err)
	default:
	}
	l.Unlock(h)
	r := <-res
	if r.err != nil {
		t.Fatalf("second Lock after unlock: %v", r.err)
	}
	if st := l.p.Stats(); st != (Stats{Cells: 1}) {
		t.Fatalf("after hand-off: %+v, want one cell and no waiters", st)
	}
	l.Unlock(r.h)
	if st := l.p.Stats(); st != (Stats{}) {
		t.Fatalf("after the last unlock: %+v, want an empty prison", st)
	}
}

func TestLockHonoursContext(t *testing.T) {
	k := Key{Data, 0, 0, 16}
	t.Run("a cancelled wait returns the context's error and leaves nothing behind", func(t *testing.T) {
		l := NewLocker(Options{})
		h, err := l.Lock(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := lockAsync(ctx, l, BlockKey(Data, 0, 3))
		waitUntil(t, "the second Lock waits", func() bool { return l.p.Stats().Waiters == 1 })
		cancel()
		if r := <-res; !errors.Is(r.err, context.Canceled) || r.h != (Held{}) {
			t.Fatalf("cancelled Lock = (%v, %v), want (nil, context.Canceled)", r.h != (Held{}), r.err)
		}
		if st := l.p.Stats(); st != (Stats{Cells: 1}) {
			t.Fatalf("after the cancel: %+v, want only the holder's cell", st)
		}
		l.Unlock(h)
		if st := l.p.Stats(); st != (Stats{}) {
			t.Fatalf("after unlock: %+v, want an empty prison", st)
		}
	})
	t.Run("a deadline that passes while waiting is reported", func(t *testing.T) {
		l := NewLocker(Options{})
		h, err := l.Lock(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock(h)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if _, err := l.Lock(ctx, k); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock past its deadline = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("an ended context is refused even for a free key", func(t *testing.T) {
		l := NewLocker(Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := l.Lock(ctx, k); !errors.Is(err, context.Canceled) {
			t.Fatalf("Lock with a cancelled context = %v, want context.Canceled", err)
		}
		if st := l.p.Stats(); st != (Stats{}) {
			t.Fatalf("%+v, want an empty prison", st)
		}
	})
	t.Run("an invalid key is refused", func(t *testing.T) {
		l := NewLocker(Options{})
		if _, err := l.Lock(context.Background(), Key{Data, 0, 1000, 1100}); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Lock of a key crossing a window = %v, want ErrInvalidKey", err)
		}
	})
}

// TestLockCancelRacingHandOff cancels waiters at the moment the holder
// unlocks, many times over: whichever wins, the waiter either holds the key
// (and unlocks it) or holds nothing, and no cell or waiter is left behind.
func TestLockCancelRacingHandOff(t *testing.T) {
	l := NewLocker(Options{})
	k := BlockKey(Virtual, 7, 7)
	var granted, cancelled int
	for range 300 {
		h, err := l.Lock(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := lockAsync(ctx, l, k)
		waitUntil(t, "the waiter queues", func() bool { return l.p.Stats().Waiters == 1 })
		go l.Unlock(h)
		cancel()
		r := <-res
		switch {
		case r.err == nil:
			granted++
			l.Unlock(r.h)
		case errors.Is(r.err, context.Canceled):
			cancelled++
		default:
			t.Fatalf("Lock = %v", r.err)
		}
		waitUntil(t, "the prison empties", func() bool { return l.p.Stats() == Stats{} })
	}
	t.Logf("granted %d, cancelled %d", granted, cancelled)
}

func TestUnlockTwicePanics(t *testing.T) {
	l := NewLocker(Options{})
	k := BlockKey(Virtual, 1, 1)
	h, err := l.Lock(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(h)
	// The next Lock probably reuses the same waiter from the pool; the
	// stale unlock must still panic and must not release the new holder.
	again, err := l.Lock(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(again)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("second unlock did not panic")
			}
		}()
		l.Unlock(h)
	}()
	if st := l.p.Stats(); st != (Stats{Cells: 1}) {
		t.Fatalf("after the stale unlock: %+v, want the new holder's cell", st)
	}
}

// TestHandOffSkipsWaitersTheCellDoesNotCover checks the hand-off rule on a
// range cell: the first waiter whose key is inside the cell takes it over;
// waiters queued before it with wider keys are told to queue again.
func TestHandOffSkipsWaitersTheCellDoesNotCover(t *testing.T) {
	l := NewLocker(Options{})
	holder := &lockWaiter{key: Key{Data, 0, 0, 8}, ch: make(chan int, 1)}
	c, isHolder, err := l.p.Detain(holder.key, holder)
	if err != nil || !isHolder {
		t.Fatalf("detain holder: %v %v", isHolder, err)
	}
	wide := &lockWaiter{key: Key{Data, 0, 6, 10}, ch: make(chan int, 1)}
	inside := &lockWaiter{key: BlockKey(Data, 0, 2), ch: make(chan int, 1)}
	later := &lockWaiter{key: BlockKey(Data, 0, 3), ch: make(chan int, 1)}
	for _, w := range []*lockWaiter{wide, inside, later} {
		if _, isHolder, err := l.p.Detain(w.key, w); err != nil || isHolder {
			t.Fatalf("detain %v: %v %v", w.key, isHolder, err)
		}
	}
	l.handOff(c)
	if s := <-wide.ch; s != retry || wide.state != retry {
		t.Fatalf("wide waiter got %d, want retry", s)
	}
	if s := <-inside.ch; s != granted || l.p.Holder(c) != inside {
		t.Fatalf("inside waiter got %d, want granted and the cell", s)
	}
	if len(later.ch) != 0 || later.state != waiting {
		t.Fatal("the waiter after the new holder was woken")
	}
	l.handOff(c)
	if s := <-later.ch; s != granted {
		t.Fatalf("last waiter got %d, want granted", s)
	}
	l.handOff(c)
	if st := l.p.Stats(); st != (Stats{}) {
		t.Fatalf("%+v, want an empty prison", st)
	}
}

// TestLockConcurrent has goroutines lock random overlapping keys, some with
// contexts that end while they wait. At no time may two of them hold a
// block, every Lock must either hold or fail with its context's error, and
// the prison must end empty.
func TestLockConcurrent(t *testing.T) {
	const goroutines, perG = 8, 300
	seed := randtest.Seed(t)
	l := NewLocker(Options{Regions: 2})
	var occ occupancy
	var held, gaveUp atomic.Int32
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := randtest.Stream(seed, uint64(g))
			for range perG {
				k := randomKey(rng)
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rng.IntN(4) == 0 {
					// Ends while waiting, or before: both must be clean.
					ctx, cancel = context.WithCancel(ctx)
					go cancel()
				}
				h, err := l.Lock(ctx, k)
				switch {
				case err == nil:
					held.Add(1)
					hold(t, &occ, k)
					l.Unlock(h)
				case errors.Is(err, context.Canceled):
					gaveUp.Add(1)
				default:
					t.Errorf("Lock(%v) = %v", k, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if st := l.p.Stats(); st != (Stats{}) {
		t.Fatalf("seed %d: prison not empty at the end: %+v", seed, st)
	}
	if held.Load()+gaveUp.Load() != goroutines*perG {
		t.Fatalf("seed %d: %d held + %d gave up != %d", seed, held.Load(), gaveUp.Load(), goroutines*perG)
	}
	t.Logf("held %d, gave up %d", held.Load(), gaveUp.Load())
}

// TestAbandonAfterTheDecision covers a context ending just after the holder
// decided a waiter's fate, which TestLockCancelRacingHandOff hits only by
// chance: a waiter that was granted the cell must pass it on, one told to
// retry has nothing to undo, and both must drain their signal before reuse.
func TestAbandonAfterTheDecision(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   Key
		state int
	}{
		{"a waiter granted the cell hands it on", BlockKey(Data, 0, 2), granted},
		{"a waiter told to retry just leaves", Key{Data, 0, 6, 10}, retry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLocker(Options{})
			holder := &lockWaiter{key: Key{Data, 0, 0, 8}, ch: make(chan int, 1)}
			c, _, _ := l.p.Detain(holder.key, holder)
			w := &lockWaiter{key: tc.key, ch: make(chan int, 1)}
			wc, isHolder, err := l.p.Detain(w.key, w)
			if err != nil || isHolder {
				t.Fatalf("detain waiter: %v %v", isHolder, err)
			}
			l.handOff(c)
			if w.state != tc.state {
				t.Fatalf("waiter state %d, want %d", w.state, tc.state)
			}
			l.abandon(w, wc)
			if len(w.ch) != 0 {
				t.Fatal("abandon left a signal in the waiter's channel")
			}
			if st := l.p.Stats(); st != (Stats{}) {
				t.Fatalf("%+v, want an empty prison", st)
			}
		})
	}
}
