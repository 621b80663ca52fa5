package nbd

import (
	"testing"
	"time"
)

// TestBudgetReservationsSurviveAFullSharedPool: with the shared bytes
// taken by stalled connections, every other connection still gets its
// reservation, a request beyond it waits, and a release wakes it.
func TestBudgetReservationsSurviveAFullSharedPool(t *testing.T) {
	g, err := newMemBudget(Options{BufferBudget: 64 << 20, ConnBufferBudget: 32 << 20, MaxConnections: 8})
	if err != nil {
		t.Fatal(err)
	}
	if g.reserve != 1<<20 || g.sharedLimit != 56<<20 {
		t.Fatalf("reserve %d, shared %d; want 1 MiB each for 8 connections and 56 MiB shared", g.reserve, g.sharedLimit)
	}
	var hits int
	g.full = func() { hits++ }
	never := make(chan struct{})
	a, b := g.conn(), g.conn()
	// a takes its cap (32 MiB, 31 of them shared), b the rest of the
	// shared bytes.
	for range 2 {
		if !a.acquire(16<<20, never, never) {
			t.Fatal("a's first 32 MiB")
		}
	}
	if !b.acquire(26<<20, never, never) || g.sharedUsed != g.sharedLimit {
		t.Fatalf("b's 26 MiB: shared %d of %d", g.sharedUsed, g.sharedLimit)
	}
	c := g.conn()
	for range 4 {
		if !c.acquire(256<<10, never, never) {
			t.Fatal("c's reservation")
		}
	}
	if g.used != 32<<20+26<<20+1<<20 {
		t.Fatalf("used %d", g.used)
	}
	// Beyond its reservation c waits, counted once, until a releases.
	got := make(chan bool)
	go func() { got <- c.acquire(4<<20, never, never) }()
	select {
	case <-got:
		t.Fatal("c got shared bytes that are not there")
	case <-time.After(50 * time.Millisecond):
	}
	a.release(16 << 20)
	if !<-got {
		t.Fatal("c's wait was not ended by a's release")
	}
	if hits != 1 {
		t.Fatalf("%d buffer limit hits, want 1", hits)
	}
	// An abandoned wait returns false and takes nothing.
	abort := make(chan struct{})
	close(abort)
	if b.acquire(32<<20, abort, never) {
		t.Fatal("b got past its cap")
	}
	for _, x := range []struct {
		b *connBudget
		n int64
	}{{a, 16 << 20}, {b, 26 << 20}, {c, 1<<20 + 4<<20}} {
		x.b.release(x.n)
	}
	if g.used != 0 || g.sharedUsed != 0 {
		t.Fatalf("after every release: used %d, shared %d", g.used, g.sharedUsed)
	}
}

// TestBudgetLetsAnOversizedRequestThroughAlone: a request larger than the
// per-connection cap goes through when the connection holds nothing.
func TestBudgetLetsAnOversizedRequestThroughAlone(t *testing.T) {
	g, err := newMemBudget(Options{BufferBudget: 64 << 20, ConnBufferBudget: 4 << 20, MaxConnections: 8})
	if err != nil {
		t.Fatal(err)
	}
	never := make(chan struct{})
	a := g.conn()
	if !a.acquire(MaxPayload, never, never) {
		t.Fatal("a 32 MiB request on an idle connection with a 4 MiB cap")
	}
	abort := make(chan struct{})
	close(abort)
	if a.acquire(4096, abort, never) {
		t.Fatal("a second request beyond the cap")
	}
	a.release(MaxPayload)
}
