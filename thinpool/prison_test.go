package thinpool_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinpool"
)

// A write whose context ends while it waits for a block's cell must leave
// the cell's queue at once: the holder (here a write queued for space on
// a full pool) keeps the cell, and no waiter is left behind for it to
// wake, however long it holds on.
func TestCancelledCellWaiterLeavesNoWaiterBehind(t *testing.T) {
	e, th, full := newFullPool(t)
	// The holder: provisioning block 64 finds the pool full and waits for
	// space in the block's cell.
	holder := make(chan error, 1)
	go func() { holder <- th.WriteAt(bg, []byte{1}, 64*65536, false) }()
	select {
	case <-full:
	case <-time.After(30 * time.Second):
		t.Fatal("the pool never went out of space")
	}
	ctx, cancel := context.WithCancel(bg)
	waiter := make(chan error, 1)
	go func() { waiter <- th.WriteAt(ctx, []byte{2}, 64*65536+1, false) }()
	waitPrison(t, e.pool, "the second write queues in the cell", func(s thinpool.Stats) bool { return s.Prison.Waiters == 1 })
	cancel()
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled write returned %v, want context.Canceled", err)
	}
	if s := e.pool.Stats(); s.Prison.Cells != 1 || s.Prison.Waiters != 0 {
		t.Fatalf("after the cancel: %d cells, %d waiters; want the holder's cell alone", s.Prison.Cells, s.Prison.Waiters)
	}
	// Space appears: the holder completes and the prison empties.
	if err := os.Truncate(e.dataPath, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Resize(bg); err != nil {
		t.Fatal(err)
	}
	if err := <-holder; err != nil {
		t.Fatalf("the queued write failed: %v", err)
	}
	if s := e.pool.Stats(); s.Prison.Cells != 0 || s.Prison.Waiters != 0 || s.PrisonWaits != 1 {
		t.Fatalf("at the end: %+v, want an empty prison after one wait", s.Prison)
	}
}

// waitPrison polls the pool's stats until cond holds; the test's deadline
// bounds it.
func waitPrison(t *testing.T, p *thinpool.Pool, what string, cond func(thinpool.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s: %+v", what, p.Stats().Prison)
		}
		time.Sleep(time.Millisecond)
	}
}
