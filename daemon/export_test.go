package daemon

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/thind-storage/thind/metrics"

	"github.com/thind-storage/thind/thinpool"
)

// OpenForTest opens a volume's thin device as the NBD server would, for
// tests that read it without a network client; release closes it.
func (d *Daemon) OpenForTest(ctx context.Context, name string) (*thinpool.Thin, func(), error) {
	v, err := d.cat.Get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return d.acquire(v)
}

// MetricsForTest scrapes the daemon's metrics as /metrics serves them,
// and returns the sum of the samples of series name whose labels include
// every one of labels (`op="read"`).
func (d *Daemon) MetricsForTest(name string, labels ...string) float64 {
	rec := httptest.NewRecorder()
	metrics.Handler(d.metricsSource()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sum := 0.0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && all {
			sum += v
		}
	}
	return sum
}
