package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/metrics"
)

func (d *Daemon) startMetrics(errc chan<- error) error {
	if d.cfg.MetricsAddr == "off" {
		return nil
	}
	l, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(d.metricsSource()))
	d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.metrics.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics: %w", err)
		}
	}()
	return nil
}

func (d *Daemon) metricsSource() metrics.Source {
	return metrics.Source{
		Pool: d.st.engine.Stats,
		NBD:  d.nbd.Stats,
		Volumes: func() []metrics.Volume {
			vols, err := d.cat.List(context.Background(), catalog.Filter{})
			if err != nil {
				return nil
			}
			out := make([]metrics.Volume, 0, len(vols))
			for _, v := range vols {
				out = append(out, metrics.Volume{Name: v.Name, DevID: v.DevID, Size: v.Size})
			}
			return out
		},
	}
}
