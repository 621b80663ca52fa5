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
	"github.com/thind-storage/thind/thinpool"
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
		Pool: func() metrics.Pool { return poolMetrics(d.st.engine.Stats()) },
		NBD:  d.nbd.Stats,
		Repl: d.repl.snapshot,
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

// poolMetrics copies the engine's snapshot into the collector's, so that
// metrics needs no import of the engine.
func poolMetrics(st thinpool.Stats) metrics.Pool {
	p := metrics.Pool{
		Mode:           st.Mode.String(),
		Metadata:       st.Metadata,
		Dispatcher:     st.Dispatcher,
		Commits:        st.Commits,
		CommitSeconds:  st.CommitSeconds,
		CommitErrors:   st.CommitErrors,
		MetadataErrors: st.MetadataErrors,
		PrisonWaits:    st.PrisonWaits,
		PrisonCells:    st.Prison.Cells,
		NoSpaceWaits:   st.NoSpaceWaits,
		NoSpaceErrors:  st.NoSpaceErrors,
		Thins:          make(map[uint64]metrics.Thin, len(st.Thins)),
	}
	for _, m := range thinpool.Modes() {
		p.Modes = append(p.Modes, m.String())
	}
	for id, t := range st.Thins {
		p.Thins[id] = metrics.Thin{
			MappedBlocks:   t.MappedBlocks,
			Provisioned:    t.Provisioned,
			SharingBroken:  t.SharingBroken,
			BlocksUnmapped: t.BlocksUnmapped,
			PassdownBytes:  t.PassdownBytes,
			ReadRetries:    t.ReadRetries,
		}
	}
	return p
}
