package thinpool_test

import (
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinpool"
)

// TestDiscardIsAnsweredAfterItsPassdown: with no periodic commit in
// sight, a discard (and a WRITE_ZEROES that unmaps whole blocks) returns
// only once the data file has shrunk, as dm-thin completes a discard
// after its passdown. With passdown off, or when the blocks stay shared
// with a snapshot, it returns without a commit.
func TestDiscardIsAnsweredAfterItsPassdown(t *testing.T) {
	const mib = 1 << 20
	setup := func(t *testing.T, cfg thinpool.Config) (*env, *thinpool.Thin) {
		cfg.CommitInterval = time.Hour
		e := newFileEnv(t, 16<<20, 64<<20, cfg)
		th := e.thin(1, 32<<20)
		if err := th.WriteAt(bg, fill(5, 16*mib), 0, true); err != nil {
			t.Fatal(err)
		}
		return e, th
	}
	t.Run("passdown=on", func(t *testing.T) {
		e, th := setup(t, thinpool.Config{})
		before := allocatedBytes(t, e.dataPath)
		commits := e.pool.Stats().Commits
		if err := th.Discard(bg, 0, 4*mib); err != nil {
			t.Fatal(err)
		}
		mid := allocatedBytes(t, e.dataPath)
		if mid > before-4*mib {
			t.Fatalf("discard of 4 MiB answered with the data file at %d bytes, %d before", mid, before)
		}
		if err := th.WriteZeroes(bg, 4*mib, 4*mib, false, false); err != nil {
			t.Fatal(err)
		}
		if after := allocatedBytes(t, e.dataPath); after > mid-4*mib {
			t.Fatalf("unmapping WRITE_ZEROES of 4 MiB answered with the data file at %d bytes, %d before", after, mid)
		}
		if n := e.pool.Stats().Commits - commits; n != 2 {
			t.Fatalf("%d commits for two discards one after the other, want 2", n)
		}
		// Already unmapped: nothing freed, nothing to wait for.
		if err := th.Discard(bg, 0, 4*mib); err != nil {
			t.Fatal(err)
		}
		if n := e.pool.Stats().Commits - commits; n != 2 {
			t.Fatalf("a discard of unmapped blocks committed (%d commits)", n-2)
		}
		checkZeroes(t, th, 0, 8*mib)
		e.commitAndCheck()
	})
	t.Run("passdown=off", func(t *testing.T) {
		e, th := setup(t, thinpool.Config{NoDiscardPassdown: true})
		before := allocatedBytes(t, e.dataPath)
		commits := e.pool.Stats().Commits
		if err := th.Discard(bg, 0, 4*mib); err != nil {
			t.Fatal(err)
		}
		if after := allocatedBytes(t, e.dataPath); after < before {
			t.Fatalf("passdown off, but the data file shrank from %d to %d", before, after)
		}
		if n := e.pool.Stats().Commits - commits; n != 0 {
			t.Fatalf("passdown off, but the discard committed %d times", n)
		}
		checkZeroes(t, th, 0, 4*mib)
		e.commitAndCheck()
	})
	t.Run("shared", func(t *testing.T) {
		e, th := setup(t, thinpool.Config{})
		if err := e.pool.CreateSnap(bg, 2, 1); err != nil {
			t.Fatal(err)
		}
		before := allocatedBytes(t, e.dataPath)
		commits := e.pool.Stats().Commits
		if err := th.Discard(bg, 0, 4*mib); err != nil {
			t.Fatal(err)
		}
		if n := e.pool.Stats().Commits - commits; n != 0 {
			t.Fatalf("the snapshot keeps the blocks, but the discard committed %d times", n)
		}
		if after := allocatedBytes(t, e.dataPath); after != before {
			t.Fatalf("shared blocks discarded: data file went from %d to %d", before, after)
		}
		checkZeroes(t, th, 0, 4*mib)
		e.commitAndCheck()
	})
}

// TestConcurrentDiscardsShareACommit: discards waiting for their
// passdown at the same time ride on the same commit, so that fstrim,
// which sends many at once, does not pay a commit for each.
func TestConcurrentDiscardsShareACommit(t *testing.T) {
	const n, mib = 32, 1 << 20
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{CommitInterval: time.Hour})
	th := e.thin(1, n*mib)
	if err := th.WriteAt(bg, fill(6, n*mib), 0, true); err != nil {
		t.Fatal(err)
	}
	before := allocatedBytes(t, e.dataPath)
	// Commits held until every discard has unmapped its blocks, so all
	// of them wait for a commit at once.
	_, release := e.pool.HoldCommits()
	commits := e.pool.Stats().Commits
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- th.Discard(bg, uint64(i)*mib, mib)
		}()
	}
	for deadline := time.Now().Add(time.Minute); e.pool.Stats().Thins[1].BlocksUnmapped < n*16; {
		if time.Now().After(deadline) {
			t.Fatal("the discards did not unmap their blocks")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let them queue for the commit
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The committer may have taken the first request before the rest
	// were queued: two commits at most.
	if got := e.pool.Stats().Commits - commits; got > 2 {
		t.Fatalf("%d concurrent discards made %d commits", n, got)
	}
	if after := allocatedBytes(t, e.dataPath); after > before-(n-1)*mib {
		t.Fatalf("data file at %d bytes after every discard returned, %d before", after, before)
	}
	checkZeroes(t, th, 0, n*mib)
	e.commitAndCheck()
}

func checkZeroes(t *testing.T, th *thinpool.Thin, off, n uint64) {
	t.Helper()
	got := make([]byte, n)
	if err := th.ReadAt(bg, got, off); err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c != 0 {
			t.Fatalf("byte %d of a discarded range reads %#x", off+uint64(i), c)
		}
	}
}
