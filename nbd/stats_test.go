package nbd

import (
	"testing"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

func TestStatsCountConnectionsRequestsBytesAndLatency(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, true)
	c.pwrite(make([]byte, 4096), 0)
	c.pwrite(make([]byte, 512), 8192)
	c.pread(0, 1000)
	c.expectErrno(wire.Request{Type: wire.CmdTrim, Length: 65536}, nil, 0)
	c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Length: 1 << 20}, nil, 0)
	c.expectErrno(wire.Request{Type: wire.CmdRead, Offset: 1 << 20, Length: 1}, nil, wire.EINVAL)
	c.expectErrno(wire.Request{Type: 77}, nil, wire.EINVAL)

	// A reply has been received, so the connection is in transmission.
	st := ts.Stats()
	if st.ConnectionsOpen != 1 || st.ConnectionsTotal != 1 {
		t.Errorf("connections open %d total %d", st.ConnectionsOpen, st.ConnectionsTotal)
	}
	ex := st.Exports["vol0"]
	if ex.Connections != 1 {
		t.Errorf("export connections %d", ex.Connections)
	}
	for op, want := range map[string]OpStats{
		"write":        {Requests: 2, Bytes: 4608},
		"read":         {Requests: 2, Errors: 1, Bytes: 1000},
		"trim":         {Requests: 1, Bytes: 65536},
		"block_status": {Requests: 1, Bytes: 1 << 20},
		"unknown":      {Requests: 1, Errors: 1},
	} {
		got := ex.Ops[op]
		if got.Requests != want.Requests || got.Errors != want.Errors || got.Bytes != want.Bytes {
			t.Errorf("%s: %d requests %d errors %d bytes, want %d/%d/%d", op,
				got.Requests, got.Errors, got.Bytes, want.Requests, want.Errors, want.Bytes)
		}
		var inBuckets uint64
		for _, n := range got.LatencyBuckets {
			inBuckets += n
		}
		if inBuckets != got.Requests || got.LatencySum <= 0 {
			t.Errorf("%s: %d requests in latency buckets of %d, latency sum %v", op, inBuckets, got.Requests, got.LatencySum)
		}
	}
	if ex.Errors["EINVAL"] != 2 || len(ex.Errors) != 1 {
		t.Errorf("errors by errno %v", ex.Errors)
	}
	c.disc()
	c.expectClosed()
	ts.stop(t)
	if st := ts.Stats(); st.ConnectionsOpen != 0 || st.Exports["vol0"].Connections != 0 {
		t.Errorf("after shutdown: open %d, export connections %d", st.ConnectionsOpen, st.Exports["vol0"].Connections)
	}
}
