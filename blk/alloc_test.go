package blk

import (
	"testing"
)

// Steady-state submission must not allocate: the request state comes from
// the per-tag commands, the wait from their preallocated channels.
func TestSteadyStateSubmissionDoesNotAllocate(t *testing.T) {
	d, _ := newTestDispatcher(t, 1<<20, Config{}, FileOptions{})
	ctx := t.Context()
	buf := make([]byte, 4096)
	done := make(completions, 16)
	r := &Request{Op: OpWrite, Off: 8192, Buf: buf, End: done.end}
	p := d.NewPlug()
	plugged := make([]Request, 8)
	for i := range plugged {
		plugged[i] = Request{Op: OpWrite, Off: int64(i * 4096), Buf: make([]byte, 4096), End: done.end}
	}
	tests := []struct {
		name string
		run  func()
	}{
		{"a 4 KiB read", func() { d.Read(ctx, buf, 4096) }},
		{"a 4 KiB write", func() { d.Write(ctx, buf, 4096, false) }},
		{"a 4 KiB FUA write", func() { d.Write(ctx, buf, 4096, true) }},
		{"an asynchronous write", func() {
			d.Submit(ctx, r)
			<-done
		}},
		{"a plugged batch of 8 writes that merge", func() {
			for i := range plugged {
				p.Submit(ctx, &plugged[i])
			}
			p.Finish()
			done.wait(t, len(plugged))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, tc.run); n != 0 {
				t.Errorf("%.1f allocations per call", n)
			}
		})
	}
}
