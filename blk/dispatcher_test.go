package blk

import (
	"bytes"
	"errors"
	"testing"
)

// configs are the dispatcher shapes most tests run under: the default, a
// single queue with one tag (everything serialised, maximal backpressure),
// and many small queues.
var configs = []struct {
	name string
	cfg  Config
}{
	{"default", Config{}},
	{"one tag", Config{HardwareQueues: 1, SoftwareQueues: 1, QueueDepth: 1, Workers: 1}},
	{"many small queues", Config{HardwareQueues: 4, SoftwareQueues: 16, QueueDepth: 4, Workers: 2}},
}

func TestEveryOpRoundTrips(t *testing.T) {
	for _, tc := range configs {
		for _, direct := range []bool{false, true} {
			name := tc.name + "/buffered"
			if direct {
				name = tc.name + "/O_DIRECT"
			}
			t.Run(name, func(t *testing.T) {
				testEveryOp(t, tc.cfg, FileOptions{Direct: direct})
			})
		}
	}
}

func testEveryOp(t *testing.T, cfg Config, opt FileOptions) {
	const size = 1 << 20
	d, path := newTestDispatcher(t, size, cfg, opt)
	ctx := t.Context()
	model := make([]byte, size)
	buf := func(n int, seed int64) []byte {
		b, err := AlignedBuffer(n, 4096)
		if err != nil {
			t.Fatal(err)
		}
		fillPattern(b, seed)
		return b
	}
	check := func(step string) {
		t.Helper()
		got, err := AlignedBuffer(size, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Read(ctx, got, 0); err != nil {
			t.Fatalf("%s: read back: %v", step, err)
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("%s: dispatcher read differs from model: %s", step, firstDiff(got, model))
		}
	}

	w := buf(64<<10, 1)
	if err := d.Write(ctx, w, 128<<10, false); err != nil {
		t.Fatal(err)
	}
	copy(model[128<<10:], w)
	check("write")

	w = buf(8<<10, 2)
	if err := d.Write(ctx, w, 0, true); err != nil {
		t.Fatal(err)
	}
	copy(model, w)
	check("FUA write")

	if err := d.Discard(ctx, 132<<10, 16<<10); err != nil {
		t.Fatal(err)
	}
	clear(model[132<<10 : 148<<10])
	check("discard")

	if err := d.WriteZeroes(ctx, 4<<10, 4<<10); err != nil {
		t.Fatal(err)
	}
	clear(model[4<<10 : 8<<10])
	check("write zeroes")

	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	w = buf(4<<10, 3)
	r := &Request{Op: OpWrite, Off: 512 << 10, Buf: w, End: func(_ *Request, err error) { done <- err }}
	if err := d.Submit(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	copy(model[512<<10:], w)
	check("async write")

	got := buf(4<<10, 0)
	r = &Request{Op: OpRead, Off: 512 << 10, Buf: got, End: func(_ *Request, err error) { done <- err }}
	if err := d.Submit(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, w) {
		t.Fatalf("async read: %s", firstDiff(got, w))
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if onDisk := fileBytes(t, path); !bytes.Equal(onDisk, model) {
		t.Fatalf("file after close differs from model: %s", firstDiff(onDisk, model))
	}
	st := d.Stats().Total()
	for op, want := range map[Op]uint64{OpWrite: 3, OpDiscard: 1, OpWriteZeroes: 1, OpFlush: 1} {
		if got := st.Ops[op].Requests; got != want {
			t.Errorf("stats: %d %s requests, want %d", got, op, want)
		}
	}
	if st.InFlight != 0 || st.Backlog != 0 {
		t.Errorf("stats after close: %d in flight, backlog %d", st.InFlight, st.Backlog)
	}
}

func TestBadInputIsATypedError(t *testing.T) {
	const size = 1 << 20
	d, _ := newTestDispatcher(t, size, Config{}, FileOptions{})
	dio, _ := newTestDispatcher(t, size, Config{}, FileOptions{Direct: true})
	aligned, err := AlignedBuffer(8192, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var rangeErr *RangeError
	var alignErr *AlignmentError
	var opErr *InvalidOpError
	tests := []struct {
		name string
		run  func() error
		as   any
	}{
		{"a read past the end", func() error { return d.Read(ctx, make([]byte, 4096), size-2048) }, &rangeErr},
		{"a write at a negative offset", func() error { return d.Write(ctx, make([]byte, 1), -1, false) }, &rangeErr},
		{"an empty read", func() error { return d.Read(ctx, nil, 0) }, &rangeErr},
		{"a zero-length discard", func() error { return d.Discard(ctx, 0, 0) }, &rangeErr},
		{"a negative-length write-zeroes", func() error { return d.WriteZeroes(ctx, 4096, -4096) }, &rangeErr},
		{"a discard whose end overflows", func() error { return d.Discard(ctx, 4096, 1<<63-1) }, &rangeErr},
		{"an unknown op", func() error { return d.Submit(ctx, &Request{Op: 42, Len: 1}) }, &opErr},
		{"a nil request", func() error { return d.Submit(ctx, nil) }, &ErrNilRequest},
		{"a nil plugged request", func() error { return d.NewPlug().Submit(ctx, nil) }, &ErrNilRequest},
		{"an O_DIRECT read at an odd offset", func() error { return dio.Read(ctx, aligned[:4096], 100) }, &alignErr},
		{"an O_DIRECT write of an odd length", func() error { return dio.Write(ctx, aligned[:1000], 0, false) }, &alignErr},
		{"an O_DIRECT read into a misaligned buffer", func() error { return dio.Read(ctx, aligned[1:4097], 0) }, &alignErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if sentinel, ok := tc.as.(*error); ok {
				if !errors.Is(err, *sentinel) {
					t.Fatalf("error %v is not %v", err, *sentinel)
				}
			} else if !errors.As(err, tc.as) {
				t.Fatalf("error %v (%T) is not %T", err, err, tc.as)
			}
			t.Log(err)
		})
	}
	if st := d.Stats().Total(); st.InFlight != 0 || st.Dispatched != 0 {
		t.Errorf("rejected requests reached the queue: %+v", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative hardware queues", Config{HardwareQueues: -1}},
		{"fewer software than hardware queues", Config{HardwareQueues: 4, SoftwareQueues: 2}},
		{"more than 64 software queues per hardware queue", Config{HardwareQueues: 1, SoftwareQueues: 65}},
		{"a queue depth of zero tags", Config{QueueDepth: -1}},
		{"a queue depth beyond the limit", Config{QueueDepth: maxQueueDepth + 1}},
		{"no workers", Config{Workers: -1}},
		{"a negative merge size", Config{MaxMergeBytes: -1}},
		{"more segments than IOV_MAX", Config{MaxSegments: maxIOVecs + 1}},
		{"a negative plug limit", Config{PlugLimit: -1}},
	}
	f, _ := openTestFile(t, 4096, FileOptions{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(f, tc.cfg)
			if err == nil {
				d.Close()
				t.Fatal("accepted")
			}
			if !errors.As(err, new(*ConfigError)) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			t.Log(err)
		})
	}
	if _, err := New(nil, Config{}); !errors.As(err, new(*ConfigError)) {
		t.Errorf("nil backend: %v", err)
	}
}
