package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/nbd"
)

// Daemon is a running thind: a pool, its catalog and the servers.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	owner *owner // the pool's locks, released last
	// startFailed makes close remove the files a failed start created.
	startFailed bool
	st          *storage
	cat         *catalog.Catalog
	nbd         *nbd.Server
	reg         registry
	opMu        sync.Mutex // one volume operation at a time
	closeMu     sync.Mutex
	started     time.Time

	listeners []net.Listener
	control   *http.Server
	metrics   *http.Server
	policy    *socketPolicy
	sockFiles []string // unix sockets to remove at exit
	repl      replStats
	// recvMu runs one receive at a time: a resumed receive waits for the
	// interrupted one to record what landed.
	recvMu sync.Mutex
}

// New opens (creating on first start) the pool in cfg.DataDir, reconciles
// the catalog with the thin metadata, and prepares the servers. Run serves.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	cfg.setDefaults()
	d := &Daemon{cfg: cfg, log: cfg.Logger, started: time.Now(), reg: registry{vols: map[string]*served{}}}
	if err := d.open(ctx); err != nil {
		d.startFailed = true
		d.close()
		return nil, err
	}
	return d, nil
}

// open claims the pool, checks that the catalog and the devices belong
// together, then brings up storage, catalog and the NBD server. Nothing
// on the devices is written before both checks pass. On error the caller
// closes whatever was opened.
func (d *Daemon) open(ctx context.Context) error {
	var err error
	if err := checkTLS(&d.cfg); err != nil {
		return err
	}
	if d.policy, err = newSocketPolicy(&d.cfg); err != nil {
		return err
	}
	if d.owner, err = claimPool(&d.cfg); err != nil {
		return err
	}
	meta, err := readMetaIdentity(d.cfg.MetadataDevice)
	if err != nil {
		return err
	}
	catDir, catOpts := filepath.Join(d.cfg.DataDir, "catalog"), catalog.Options{Logger: d.cfg.Logger}
	own, err := catalog.ReadOwnership(ctx, catDir, catOpts)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	plan, err := checkIdentity(&d.cfg, meta, own)
	if err != nil {
		return err
	}
	if d.cat, err = catalog.Open(ctx, catDir, catOpts); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if d.st, err = openStorage(&d.cfg); err != nil {
		return err
	}
	if d.st.fresh {
		d.log.Info("formatted a new pool", "metadata", d.cfg.MetadataDevice, "data", d.cfg.DataDevice,
			"block_size", d.cfg.BlockSize, "data_blocks", d.st.md.DataBlocks())
	}
	if err := d.applyIdentity(ctx, plan); err != nil {
		return err
	}
	if err := d.reconcile(ctx); err != nil {
		return err
	}
	opts := nbdOptions(&d.cfg)
	opts.AcceptPeer = d.policy.acceptPeer
	if d.nbd, err = nbd.NewServer(exports{d}, opts); err != nil {
		return err
	}
	return nil
}

func nbdOptions(c *Config) nbd.Options {
	o := nbd.Options{
		Logger:          c.Logger,
		ShutdownTimeout: c.ShutdownTimeout,
		MaxConnections:  c.MaxConnections,
		MaxHandshakes:   c.MaxHandshakes,
		BufferBudget:    c.BufferBudget,
		ReplyTimeout:    c.ReplyTimeout,
	}
	if c.TLS != nil {
		o.TLSConfig = c.TLS
		o.TLSMode = nbd.TLSOptional
		if c.TLSRequired {
			o.TLSMode = nbd.TLSRequired
		}
	}
	return o
}

// reconcile brings the catalog in line with the thin metadata after a
// crash, sizes adopted devices, and makes the default volume of a new
// pool.
func (d *Daemon) reconcile(ctx context.Context) error {
	var rep catalog.Report
	err := d.withPool(ctx, func(p *catalogPool) error {
		var err error
		rep, err = d.cat.Reconcile(ctx, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("reconciling the catalog with the metadata: %w", err)
	}
	if rep.Pending != nil {
		d.log.Warn("finished an interrupted volume operation", "op", rep.Pending.Op, "volume", rep.Pending.Volume.Name, "completed", rep.Completed)
	}
	for _, v := range rep.Dropped {
		d.log.Warn("dropped a volume whose thin device is gone", "volume", v.Name, "dev", v.DevID)
	}
	for _, v := range rep.Adopted {
		// dm-thin keeps no device size: size an adopted device to cover
		// every block it maps, so its data can be served.
		high, ok, err := d.st.md.HighestMappedBlock(v.DevID)
		if err != nil {
			return err
		}
		size := uint64(0)
		if ok {
			size = (high + 1) * d.cfg.BlockSize
		}
		d.log.Warn("adopted a thin device no volume named", "volume", v.Name, "dev", v.DevID, "size", size)
		if size > 0 {
			if _, err := d.ResizeVolume(ctx, v.Name, size); err != nil {
				return fmt.Errorf("sizing adopted volume %s: %w", v.Name, err)
			}
		}
	}
	if err := d.dropLandedStaging(ctx); err != nil {
		return err
	}
	if d.st.fresh {
		vols, err := d.cat.List(ctx, catalog.Filter{})
		if err != nil {
			return err
		}
		if len(vols) == 0 {
			if _, err := d.CreateVolume(ctx, catalog.Spec{Name: d.cfg.DefaultVolume, Size: d.cfg.DefaultSize}); err != nil {
				return fmt.Errorf("creating the default volume: %w", err)
			}
			d.log.Info("created the default volume", "volume", d.cfg.DefaultVolume, "size", d.cfg.DefaultSize)
		}
	}
	return nil
}

// Run serves NBD, the control API and metrics until ctx is done, then
// stops accepting, lets requests in flight finish, commits and closes.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for _, addr := range d.cfg.Listen {
		l, err := d.listen(addr)
		if err != nil {
			return err
		}
		d.log.Info("serving NBD", "addr", l.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.nbd.Serve(ctx, l); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("nbd %s: %w", l.Addr(), err)
			}
		}()
	}
	if err := d.startControl(errc); err != nil {
		return err
	}
	if err := d.startMetrics(errc); err != nil {
		return err
	}
	d.log.Info("thind ready", "data_dir", d.cfg.DataDir, "control", d.cfg.ControlSocket, "metrics", d.cfg.MetricsAddr)
	notifyReady()
	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case runErr = <-errc:
		d.log.Error("shutting down after an error", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	if d.control != nil {
		d.control.Shutdown(sctx)
	}
	if d.metrics != nil {
		d.metrics.Shutdown(sctx)
	}
	// The NBD servers stop with ctx; if Run ends on an error, close the
	// listeners so they do.
	for _, l := range d.listeners {
		l.Close()
	}
	wg.Wait()
	if err := d.close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// listen opens "unix:PATH", "tcp:HOST:PORT" or "HOST:PORT".
func (d *Daemon) listen(addr string) (net.Listener, error) {
	network, where := "tcp", addr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, where = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp:"):
		where = strings.TrimPrefix(addr, "tcp:")
	case strings.HasPrefix(addr, "/"):
		network = "unix"
	}
	if network == "unix" {
		if err := removeStaleSocket(where); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen(network, where)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if network == "unix" {
		d.sockFiles = append(d.sockFiles, where)
		if err := d.policy.apply(where); err != nil {
			l.Close()
			return nil, err
		}
	} else if !d.cfg.TLSRequired && !Loopback(where) {
		d.log.Warn("serving NBD on a non-loopback address without --tls-required: anyone who can reach it can open every volume without an access list, in plain text",
			"addr", l.Addr().String())
	}
	d.listeners = append(d.listeners, l)
	return l, nil
}

// removeStaleSocket removes a socket file left by a daemon that is gone,
// and refuses to take over one that answers.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s: another thind is serving this pool", path)
	}
	return os.Remove(path)
}

// close releases everything; safe to call twice.
func (d *Daemon) close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	var errs []error
	d.reg.mu.Lock()
	for name, s := range d.reg.vols {
		s.th.Close()
		delete(d.reg.vols, name)
	}
	d.reg.mu.Unlock()
	if d.st != nil {
		errs = append(errs, d.st.close())
		d.st = nil
	}
	if d.cat != nil {
		errs = append(errs, d.cat.Close())
		d.cat = nil
	}
	for _, s := range d.sockFiles {
		os.Remove(s)
	}
	d.sockFiles = nil
	// The locks go last, once nothing of the pool is open.
	errs = append(errs, d.owner.release(d.startFailed))
	d.owner = nil
	return errors.Join(errs...)
}

// Loopback reports whether a TCP address (HOST:PORT) is on a loopback
// interface only; an empty host (all interfaces) is not. Listeners and
// dialers off loopback without TLS are warned about.
func Loopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
