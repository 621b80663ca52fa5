package blk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// completions collects End calls of asynchronous requests.
type completions chan error

func (c completions) end(_ *Request, err error) { c <- err }

// wait returns the first error among n completions.
func (c completions) wait(t testing.TB, n int) error {
	t.Helper()
	var first error
	for range n {
		if err := <-c; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func TestPlugMergesContiguousRequestsIntoOneCall(t *testing.T) {
	const n, bs = 64, 4096
	cfg := Config{HardwareQueues: 1, QueueDepth: n, PlugLimit: 2 * n}
	d, path := newTestDispatcher(t, 1<<20, cfg, FileOptions{})
	ctx := t.Context()
	done := make(completions, n)

	// Writes submitted in a shuffled order still merge into one pwritev.
	data := pattern(n*bs, 5)
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Op: OpWrite, Off: int64(i * bs), Buf: data[i*bs : (i+1)*bs], End: done.end}
	}
	rand.Shuffle(n, func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	p := d.NewPlug()
	for i := range reqs {
		if err := p.Submit(ctx, &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != n {
		t.Fatalf("plug holds %d requests, want %d", p.Len(), n)
	}
	p.Finish()
	if err := done.wait(t, n); err != nil {
		t.Fatal(err)
	}
	st := d.Stats().Total()
	if st.Dispatched != 1 || st.Merges != n-1 || st.Ops[OpWrite].Requests != n || st.Ops[OpWrite].Bytes != n*bs {
		t.Fatalf("after %d plugged writes: %d backend calls, %d merges, %d requests, %d bytes; want 1, %d, %d, %d",
			n, st.Dispatched, st.Merges, st.Ops[OpWrite].Requests, st.Ops[OpWrite].Bytes, n-1, n, n*bs)
	}
	if got := fileBytes(t, path)[:n*bs]; !bytes.Equal(got, data) {
		t.Fatalf("merged write: %s", firstDiff(got, data))
	}

	// Reads into separate buffers merge into one preadv and each buffer
	// gets its own bytes.
	bufs := make([][]byte, n)
	for i := range reqs {
		bufs[i] = make([]byte, bs)
		reqs[i] = Request{Op: OpRead, Off: int64(i * bs), Buf: bufs[i], End: done.end}
	}
	for i := range reqs {
		if err := p.Submit(ctx, &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.Finish()
	if err := done.wait(t, n); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(bufs, nil); !bytes.Equal(got, data) {
		t.Fatalf("merged read: %s", firstDiff(got, data))
	}
	if st := d.Stats().Total(); st.Dispatched != 2 || st.Merges != 2*(n-1) {
		t.Fatalf("after plugged reads: %d backend calls, %d merges; want 2, %d", st.Dispatched, st.Merges, 2*(n-1))
	}
}

// A plug holds tags. If it could hold more requests than the queue has
// tags, its submitter would wait for a tag only its own plug can free;
// the plug must be sent on before the submitter sleeps.
func TestPlugLargerThanTheTagSetDoesNotDeadlock(t *testing.T) {
	const n, bs = 200, 4096
	cfg := Config{HardwareQueues: 1, QueueDepth: 4, PlugLimit: 32, Workers: 1}
	d, path := newTestDispatcher(t, n*bs, cfg, FileOptions{})
	done := make(completions, n)
	data := pattern(n*bs, 8)
	reqs := make([]Request, n)
	p := d.NewPlug()
	for i := range reqs {
		reqs[i] = Request{Op: OpWrite, Off: int64(i * bs), Buf: data[i*bs : (i+1)*bs], End: done.end}
		if err := p.Submit(t.Context(), &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.Finish()
	if err := done.wait(t, n); err != nil {
		t.Fatal(err)
	}
	// The plug can never hold more than the four tags, so it must have
	// been sent on at four requests, long before its limit of 32.
	st := d.Stats().Total()
	if st.Dispatched < n/4 {
		t.Errorf("%d backend calls for %d requests: the plug held more requests than there are tags", st.Dispatched, n)
	}
	if st.Merges == 0 {
		t.Error("no merges although every batch was contiguous")
	}
	t.Logf("%d tag sleeps, %d backend calls for %d requests", st.TagSleeps, st.Dispatched, n)
	if got := fileBytes(t, path); !bytes.Equal(got, data) {
		t.Fatalf("%s", firstDiff(got, data))
	}
}

func TestFlushInAPlugSendsThePlugFirst(t *testing.T) {
	d, _ := newTestDispatcher(t, 1<<20, Config{}, FileOptions{})
	done := make(completions, 3)
	p := d.NewPlug()
	w1 := Request{Op: OpWrite, Off: 0, Buf: pattern(4096, 1), End: done.end}
	w2 := Request{Op: OpWrite, Off: 4096, Buf: pattern(4096, 2), End: done.end}
	fl := Request{Op: OpFlush, End: done.end}
	for _, r := range []*Request{&w1, &w2, &fl} {
		if err := p.Submit(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != 0 {
		t.Fatalf("the flush left %d requests in the plug", p.Len())
	}
	if err := done.wait(t, 3); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats().Total(); st.Ops[OpFlush].Requests != 1 || st.Merges != 1 {
		t.Fatalf("flush requests %d, merges %d; want 1 and 1", st.Ops[OpFlush].Requests, st.Merges)
	}
}

// A backend error reaches every request of a merged call, each naming its
// own range and the real cause.
func TestBackendErrorReachesEveryMergedRequest(t *testing.T) {
	const n, bs = 8, 4096
	d, _ := newTestDispatcher(t, 1<<20, Config{HardwareQueues: 1}, FileOptions{ReadOnly: true})
	errs := make(chan error, n)
	reqs := make([]Request, n)
	offs := make(map[int64]bool)
	p := d.NewPlug()
	for i := range reqs {
		reqs[i] = Request{Op: OpWrite, Off: int64(i * bs), Buf: make([]byte, bs), End: func(r *Request, err error) {
			var ioErr *IOError
			if errors.As(err, &ioErr) && ioErr.Off != r.Off {
				err = errors.New("error names the wrong request")
			}
			errs <- err
		}}
		offs[reqs[i].Off] = true
		if err := p.Submit(t.Context(), &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.Finish()
	for range n {
		err := <-errs
		var ioErr *IOError
		if !errors.As(err, &ioErr) || !errors.Is(err, unix.EBADF) || ioErr.Merged != n || ioErr.Op != OpWrite {
			t.Fatalf("completion error %v; want an *IOError for a merged write wrapping EBADF", err)
		}
	}
	// The synchronous path returns the same kind of error.
	err := d.Write(t.Context(), make([]byte, bs), 0, false)
	if !errors.Is(err, unix.EBADF) || !errors.As(err, new(*IOError)) {
		t.Fatalf("synchronous write to a read-only file: %v", err)
	}
	if st := d.Stats().Total(); st.Ops[OpWrite].Errors != n+1 {
		t.Fatalf("stats count %d write errors, want %d", st.Ops[OpWrite].Errors, n+1)
	}
}
