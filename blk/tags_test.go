package blk

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTagShiftSpreadsSmallDepths(t *testing.T) {
	tests := []struct {
		depth     uint32
		wantShift uint32
		wantWords int
	}{
		{1, 6, 1},
		{3, 6, 1},
		{4, 0, 4},
		{16, 2, 4},
		{64, 4, 4},
		{128, 5, 4},
		{256, 6, 4},
		{1000, 6, 16},
	}
	for _, tc := range tests {
		ts := newTagSet(int(tc.depth))
		if ts.shift != tc.wantShift || len(ts.words) != tc.wantWords {
			t.Errorf("depth %d: shift %d over %d words, want shift %d over %d words",
				tc.depth, ts.shift, len(ts.words), tc.wantShift, tc.wantWords)
		}
		if ts.inUse() != 0 {
			t.Errorf("depth %d: new set has %d tags in use", tc.depth, ts.inUse())
		}
	}
}

func TestEveryTagIsHandedOutOnceUntilPut(t *testing.T) {
	for _, depth := range []int{1, 3, 4, 17, 64, 100, 1000} {
		ts := newTagSet(depth)
		var hint atomic.Uint32
		hint.Store(uint32(depth / 2))
		seen := make([]bool, depth)
		for range depth {
			tag, ok := ts.tryGet(&hint)
			if !ok {
				t.Fatalf("depth %d: ran out after %d tags", depth, ts.inUse())
			}
			if tag >= uint32(depth) || seen[tag] {
				t.Fatalf("depth %d: tag %d out of range or handed out twice", depth, tag)
			}
			seen[tag] = true
		}
		if tag, ok := ts.tryGet(&hint); ok {
			t.Fatalf("depth %d: got tag %d from a full set", depth, tag)
		}
		if ts.inUse() != depth {
			t.Fatalf("depth %d: %d in use", depth, ts.inUse())
		}
		ts.put(uint32(depth - 1))
		if tag, ok := ts.tryGet(&hint); !ok || tag != uint32(depth-1) {
			t.Fatalf("depth %d: after put got %d, %v; want the freed tag", depth, tag, ok)
		}
	}
}

func TestConcurrentTagUsersNeverShareATag(t *testing.T) {
	const depth, users, rounds = 8, 32, 2000
	ts := newTagSet(depth)
	owner := make([]atomic.Int32, depth)
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			var hint atomic.Uint32
			for range rounds {
				tag, err := ts.get(context.Background(), &hint)
				if err != nil {
					t.Error(err)
					return
				}
				if !owner[tag].CompareAndSwap(0, int32(u+1)) {
					t.Errorf("tag %d given to user %d while user %d holds it", tag, u, owner[tag].Load()-1)
				}
				runtime.Gosched() // hold the tag across a reschedule so that others must sleep
				owner[tag].Store(0)
				ts.put(tag)
			}
		})
	}
	wg.Wait()
	if ts.inUse() != 0 || ts.nwait.Load() != 0 {
		t.Fatalf("after all users left: %d tags in use, %d waiters", ts.inUse(), ts.nwait.Load())
	}
	if ts.sleeps.Load() == 0 {
		t.Errorf("no user ever slept for a tag; the test did not exercise waiting")
	}
	t.Logf("%d sleeps for %d gets", ts.sleeps.Load(), users*rounds)
}

func TestTagWaitEndsWithPutOrContext(t *testing.T) {
	ts := newTagSet(1)
	var hint atomic.Uint32
	held, _ := ts.tryGet(&hint)

	sleeping := make(chan struct{}, 2)
	ts.waitHook = func() { sleeping <- struct{}{} }

	// A waiter whose context is cancelled gives up with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ts.get(ctx, &hint)
		errc <- err
	}()
	<-sleeping
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait returned %v", err)
	}
	if ts.nwait.Load() != 0 {
		t.Fatalf("cancelled waiter still counted: %d", ts.nwait.Load())
	}

	// A waiter is woken by put and gets the tag.
	tagc := make(chan uint32, 1)
	go func() {
		tag, err := ts.get(context.Background(), &hint)
		if err != nil {
			t.Error(err)
		}
		tagc <- tag
	}()
	<-sleeping
	ts.put(held)
	if tag := <-tagc; tag != held {
		t.Fatalf("woken waiter got tag %d, want %d", tag, held)
	}
}

// A waiter that is woken and gives up at the same time (its context
// ended) must pass the wake-up on, or the next waiter sleeps forever next
// to a free tag.
func TestWaiterThatGivesUpPassesItsWakeUpOn(t *testing.T) {
	ts := newTagSet(1)
	var hint atomic.Uint32
	held, _ := ts.tryGet(&hint)

	// The first waiter is driven by hand, so the race is not left to the
	// scheduler: it is queued, then woken by put, then leaves as a
	// cancelled waiter would.
	first := ts.enqueue(nil)

	sleeping := make(chan struct{}, 1)
	ts.waitHook = func() { sleeping <- struct{}{} }
	second := make(chan error, 1)
	go func() {
		tag, err := ts.get(context.Background(), &hint)
		if err == nil {
			ts.put(tag)
		}
		second <- err
	}()
	<-sleeping

	ts.put(held) // wakes first, the head of the list
	if first.queued {
		t.Fatal("put did not wake the longest waiter")
	}
	ts.leave(first)
	if n := ts.nwait.Load(); n != 0 {
		t.Fatalf("the wake-up was lost: %d waiter(s) still asleep next to a free tag", n)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	ts.recycle(first)
}
