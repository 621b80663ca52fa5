package blk

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

// Many submitters on a queue with two tags: every one of them must get
// through, mixing direct, queued and asynchronous requests, and no more
// requests than tags may ever be in flight.
func TestTagExhaustionAppliesBackpressureWithoutDeadlock(t *testing.T) {
	const submitters, rounds, bs, depth = 32, 40, 4096, 2
	cfg := Config{HardwareQueues: 1, SoftwareQueues: 4, QueueDepth: depth, Workers: 1}
	d, _ := newTestDispatcher(t, submitters*bs, cfg, FileOptions{})
	tags := d.hw[0].tags
	ctx := t.Context()

	// Start with every tag held by a plug, so that the submitters pile up
	// asleep before the first one gets through.
	held := d.NewPlug()
	heldDone := make(completions, depth)
	for i := range depth {
		if err := held.Submit(ctx, &Request{Op: OpRead, Off: int64(i * bs), Buf: make([]byte, bs), End: heldDone.end}); err != nil {
			t.Fatal(err)
		}
	}
	sleeping := make(chan struct{})
	var once sync.Once
	tags.waitHook = func() { once.Do(func() { close(sleeping) }) }

	var wg sync.WaitGroup
	for s := range submitters {
		wg.Go(func() {
			off := int64(s * bs)
			buf, got := pattern(bs, int64(s)), make([]byte, bs)
			done := make(completions, 1)
			r := Request{Op: OpWrite, Off: off, Buf: buf, End: func(r *Request, err error) {
				if n := tags.inUse(); n > depth {
					err = errors.New("more requests in flight than tags")
				}
				done.end(r, err)
			}}
			for i := range rounds {
				var err error
				switch i % 3 {
				case 0:
					err = d.Write(ctx, buf, off, false)
				case 1:
					if err = d.Submit(ctx, &r); err == nil {
						err = <-done
					}
				case 2:
					if err = d.Read(ctx, got, off); err == nil && !bytes.Equal(got, buf) {
						err = errors.New("read back other bytes")
					}
				}
				if err != nil {
					t.Errorf("submitter %d round %d: %v", s, i, err)
					return
				}
			}
		})
	}
	<-sleeping
	held.Finish()
	if err := heldDone.wait(t, depth); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	st := d.Stats().Total()
	if st.InFlight != 0 || st.Backlog != 0 {
		t.Errorf("after all submitters returned: %d in flight, backlog %d", st.InFlight, st.Backlog)
	}
	t.Logf("%d requests, %d tag sleeps, %d direct, %d queued", submitters*rounds, st.TagSleeps, st.Direct, st.Queued)
}

// A submitter sleeping for a tag gives up when its context ends, without
// taking a tag, and the queue keeps working.
func TestContextCancellationWhileWaitingForATag(t *testing.T) {
	const depth, bs = 4, 4096
	cfg := Config{HardwareQueues: 1, QueueDepth: depth, PlugLimit: 2 * depth}
	submitters := []struct {
		name   string
		submit func(d *Dispatcher, ctx context.Context) error
	}{
		{"synchronous read", func(d *Dispatcher, ctx context.Context) error {
			return d.Read(ctx, make([]byte, bs), 0)
		}},
		{"asynchronous submit", func(d *Dispatcher, ctx context.Context) error {
			return d.Submit(ctx, &Request{Op: OpWrite, Buf: make([]byte, bs), End: func(*Request, error) {
				panic("End called for a request that was refused")
			}})
		}},
		{"plugged submit", func(d *Dispatcher, ctx context.Context) error {
			return d.NewPlug().Submit(ctx, &Request{Op: OpDiscard, Len: bs})
		}},
	}
	for _, tc := range submitters {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newTestDispatcher(t, 1<<20, cfg, FileOptions{})
			// A plug that is not finished holds every tag.
			done := make(completions, depth)
			held := d.NewPlug()
			reqs := make([]Request, depth)
			for i := range reqs {
				reqs[i] = Request{Op: OpWrite, Off: int64(i * bs), Buf: make([]byte, bs), End: done.end}
				if err := held.Submit(t.Context(), &reqs[i]); err != nil {
					t.Fatal(err)
				}
			}
			sleeping := make(chan struct{}, 1)
			d.hw[0].tags.waitHook = func() { sleeping <- struct{}{} }

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- tc.submit(d, ctx) }()
			<-sleeping
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled submitter returned %v", err)
			}
			if st := d.Stats().Total(); st.InFlight != depth || st.Ops[OpRead].Requests+st.Ops[OpWrite].Requests != 0 {
				t.Fatalf("after cancellation: %d in flight, want the plug's %d; nothing completed", st.InFlight, depth)
			}
			held.Finish()
			if err := done.wait(t, depth); err != nil {
				t.Fatal(err)
			}
			d.hw[0].tags.waitHook = nil
			if err := d.Read(t.Context(), make([]byte, bs), 0); err != nil {
				t.Fatalf("queue unusable after a cancelled wait: %v", err)
			}
		})
	}
}
