package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/nbd"
	"github.com/thind-storage/thind/thinmeta"
)

// TestPoolSnapshotBecomesSeries feeds the collector a snapshot made by
// hand, as the daemon makes one from the engine's, and reads back the
// series a dashboard keys on.
func TestPoolSnapshotBecomesSeries(t *testing.T) {
	src := Source{
		Pool: func() Pool {
			return Pool{
				Mode:     "read-only",
				Modes:    []string{"write", "read-only"},
				Metadata: thinmeta.Stats{DataBlockSize: 128, DataBlocks: 100, DataBlocksFree: 40},
				Commits:  7,
				Thins:    map[uint64]Thin{3: {MappedBlocks: 5, Provisioned: 6}},
				Dispatcher: blk.Stats{Queues: []blk.QueueStats{{Ops: func() (o [blk.NumOps]blk.OpStats) {
					o[blk.OpRead] = blk.OpStats{Requests: 9, Errors: 2}
					return o
				}()}}},
			}
		},
		Volumes: func() []Volume {
			return []Volume{{Name: "vm1", DevID: 3, Size: 1 << 30}, {Name: "closed", DevID: 4, Size: 1 << 20}}
		},
	}
	got := gather(t, src)
	for name, want := range map[string]float64{
		"thind_pool_mode{mode=read-only}":                   1,
		"thind_pool_mode{mode=write}":                       0,
		"thind_pool_data_used_bytes":                        60 * 128 * 512,
		"thind_pool_commits_total":                          7,
		"thind_volume_mapped_bytes{volume=vm1}":             5 * 128 * 512,
		"thind_volume_provisioned_blocks_total{volume=vm1}": 6,
		"thind_volume_size_bytes{volume=closed}":            1 << 20,
		"thind_dispatch_errors_total{op=read}{queue=0}":     2,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if _, ok := got["thind_volume_mapped_bytes{volume=closed}"]; ok {
		t.Error("a volume whose device is not open has mapping series")
	}
}

// TestNBDLimitHitsBecomeSeries: each limit kind the server counted is a
// series of thind_nbd_limit_hits_total, next to the buffered bytes.
func TestNBDLimitHitsBecomeSeries(t *testing.T) {
	src := Source{NBD: func() nbd.Stats {
		return nbd.Stats{
			LimitHits:     map[string]uint64{nbd.LimitHandshakes: 3, nbd.LimitReply: 1},
			BufferedBytes: 4096,
		}
	}}
	got := gather(t, src)
	for name, want := range map[string]float64{
		"thind_nbd_limit_hits_total{limit=handshakes}":    3,
		"thind_nbd_limit_hits_total{limit=reply_timeout}": 1,
		"thind_nbd_buffered_bytes":                        4096,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// gather collects src once and returns every gauge and counter by its
// name with its labels, as name{label=value}.
func gather(t *testing.T, src Source) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Gauge != nil:
				got[name] = m.GetGauge().GetValue()
			case m.Counter != nil:
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	return got
}
