package blk

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Close while submitters are busy: every accepted request completes before
// Close returns, later ones fail with ErrClosed, and the workers exit
// (goleak checks that at the end of the package's tests).
func TestCloseWhileBusyCompletesWhatItAccepted(t *testing.T) {
	const submitters, bs = 16, 4096
	for _, tc := range configs {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newTestDispatcher(t, submitters*bs, tc.cfg, FileOptions{})
			// accepted and completed count asynchronous requests; a
			// synchronous one is over when its call returns. Every End
			// must run before Close returns.
			var accepted, completed, finished, late atomic.Int64
			var closeReturned atomic.Bool
			busy := make(chan struct{}) // closed once enough requests finished
			var once sync.Once
			progress := func() {
				if finished.Add(1) == 100 {
					once.Do(func() { close(busy) })
				}
			}
			end := func(*Request, error) {
				if closeReturned.Load() {
					late.Add(1)
				}
				completed.Add(1)
				progress()
			}
			var wg sync.WaitGroup
			for s := range submitters {
				wg.Go(func() {
					off := int64(s * bs)
					buf := make([]byte, bs)
					p := d.NewPlug()
					for i := 0; ; i++ {
						var err error
						// An asynchronous request gets its own buffer since
						// nobody waits for it.
						switch i % 3 {
						case 0:
							if err = d.Write(context.Background(), buf, off, false); err == nil {
								progress()
							}
						case 1:
							r := &Request{Op: OpRead, Off: off, Buf: make([]byte, bs), End: end}
							if err = d.Submit(context.Background(), r); err == nil {
								accepted.Add(1)
							}
						case 2:
							if err = p.Submit(context.Background(), &Request{Op: OpDiscard, Off: off, Len: bs, End: end}); err == nil {
								accepted.Add(1)
							}
							p.Finish()
						}
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Errorf("submitter %d: %v", s, err)
							return
						}
					}
				})
			}
			<-busy
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			closeReturned.Store(true)
			wg.Wait()
			if n := late.Load(); n != 0 {
				t.Errorf("%d requests completed after Close returned", n)
			}
			if a, c := accepted.Load(), completed.Load(); a != c {
				t.Errorf("%d requests accepted but %d completed", a, c)
			}
			if err := d.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close: %v", err)
			}
			if err := d.Read(t.Context(), make([]byte, bs), 0); !errors.Is(err, ErrClosed) {
				t.Errorf("read after Close: %v", err)
			}
			st := d.Stats().Total()
			if st.InFlight != 0 || st.Backlog != 0 {
				t.Errorf("after Close: %d in flight, backlog %d", st.InFlight, st.Backlog)
			}
		})
	}
}

// Drain honours its context while a plug that was never finished holds a
// request, and Close succeeds once the plug is finished.
func TestDrainGivesUpWhenItsContextEnds(t *testing.T) {
	d, _ := newTestDispatcher(t, 1<<20, Config{}, FileOptions{})
	done := make(completions, 1)
	p := d.NewPlug()
	if err := p.Submit(t.Context(), &Request{Op: OpWrite, Buf: make([]byte, 4096), End: done.end}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a plugged request and a cancelled context: %v", err)
	}
	if err := d.Submit(t.Context(), &Request{Op: OpFlush}); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit while draining: %v", err)
	}
	p.Finish()
	if err := done.wait(t, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
