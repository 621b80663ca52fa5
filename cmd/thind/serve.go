package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/nbd"
)

func newServeCommand() *cobra.Command {
	var cfg daemon.Config
	var dataSize, metaSize, blockSize, defaultSize, cacheSize uint64
	dataSizeF, metaSizeF, blockSizeF := &sizeFlag{v: &dataSize}, &sizeFlag{v: &metaSize}, &sizeFlag{v: &blockSize}
	defaultSizeF, cacheF := &sizeFlag{v: &defaultSize}, &sizeFlag{v: &cacheSize}
	bufferBudget := uint64(nbd.DefaultBufferBudget)
	bufferBudgetF := &sizeFlag{v: &bufferBudget}
	var tlsCert, tlsKey, tlsCA, logLevel, logFormat, socketMode string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: serve the pool's volumes over NBD",
		Long: `Run thind on the pool in --data-dir (default ./thind-data). On first start it
creates the pool: DIR/metadata and DIR/data (sparse files), DIR/catalog/ and a
volume named "default". Volumes are served over NBD on DIR/nbd.sock, metrics on
http://127.0.0.1:9810/metrics, and the control API on DIR/control.sock.
SIGTERM or SIGINT: stop accepting, finish the requests in flight, commit, exit 0.

Access: the unix sockets get --socket-mode (0660) and --socket-group (the
daemon's group), and each unix client's credentials are checked against them
too; through the control socket, everyone let in may read, and only root, the
daemon's user and --control-group may change volumes. TCP is served only with
--listen HOST:PORT (a warning is logged for an address other than loopback
without --tls-required). --tls-client-ca needs --tls-required, and thind
refuses to start without it: a client that skipped TLS would show no
certificate. A volume's access list (thind volume create/update --allow)
limits who may open it; without one, whoever reaches a listener may.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.DataDir = dataDir(cmd)
			cfg.DataSize, cfg.DataSizeSet = dataSize, dataSizeF.set
			cfg.MetadataSize, cfg.MetadataSizeSet = metaSize, metaSizeF.set
			cfg.BlockSize, cfg.BlockSizeSet = blockSize, blockSizeF.set
			cfg.DefaultSize = defaultSize
			cfg.MetadataCacheBytes = int64(cacheSize)
			if cfg.Engine.CommitInterval <= 0 {
				return fmt.Errorf("--commit-interval %v: want a positive duration", cfg.Engine.CommitInterval)
			}
			if cfg.Engine.NoSpaceTimeout <= 0 {
				return fmt.Errorf("--no-space-timeout %v: want a positive duration", cfg.Engine.NoSpaceTimeout)
			}
			if err := limitFlags(&cfg, bufferBudget); err != nil {
				return err
			}
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			mode, err := strconv.ParseUint(socketMode, 8, 32)
			if err != nil || mode&^0o777 != 0 {
				return fmt.Errorf("--socket-mode %q: want octal permission bits, such as 0660", socketMode)
			}
			cfg.SocketMode = os.FileMode(mode)
			if mode == 0 {
				return errors.New("--socket-mode 0 would let nobody but root in")
			}
			if tlsCert != "" || tlsKey != "" {
				if cfg.TLS, err = loadTLS(tlsCert, tlsKey, tlsCA); err != nil {
					return err
				}
			} else if cfg.TLSRequired {
				return errors.New("--tls-required needs --tls-cert and --tls-key")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := daemon.New(ctx, cfg)
			if err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	addDataDirFlag(cmd)
	f.Var(dataSizeF, "data-size", "size of the pool's data (a new sparse data file, or growing one); default 64G")
	f.Var(metaSizeF, "metadata-size", "size of a new metadata file; default 1G (sparse)")
	f.Var(blockSizeF, "block-size", "data block size, a multiple of 64K up to 1G; default 64K")
	f.BoolVar(&cfg.Adopt, "adopt", false, "use devices whose pool identity is not this catalog's (restored or repaired metadata, a moved pool): both get a new identity")
	f.Var(defaultSizeF, "default-size", "size of the volume \"default\" made on first start; default 16G")
	f.StringArrayVar(&cfg.Listen, "listen", nil, "NBD listen address, repeatable: unix:PATH or HOST:PORT (default: DIR/nbd.sock only; TCP only when given)")
	f.StringVar(&socketMode, "socket-mode", "0660", "permissions of the unix sockets (NBD and control), octal; unix clients are checked against them")
	f.StringVar(&cfg.SocketGroup, "socket-group", "", "group (name or id) of the unix sockets (default: the daemon's group)")
	f.StringVar(&cfg.ControlGroup, "control-group", "", "group (name or id) that may change volumes through the control API, besides root and the daemon's user")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (default 127.0.0.1:9810; \"off\" disables)")
	f.StringVar(&cfg.ControlSocket, "control-socket", "", "control API unix socket (default DIR/control.sock)")
	f.StringVar(&cfg.DataDevice, "data-device", "", "data file or block device (default DIR/data)")
	f.StringVar(&cfg.MetadataDevice, "metadata-device", "", "metadata file or block device (default DIR/metadata)")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate for NBD STARTTLS")
	f.StringVar(&tlsKey, "tls-key", "", "PEM key for --tls-cert")
	f.StringVar(&tlsCA, "tls-client-ca", "", "PEM CA bundle: require client certificates signed by it (needs --tls-required)")
	f.BoolVar(&cfg.TLSRequired, "tls-required", false, "refuse NBD clients that do not start TLS")
	f.BoolVar(&cfg.Engine.SkipBlockZeroing, "skip-block-zeroing", false, "do not zero the rest of a newly provisioned block (faster; old data may show if passdown is off)")
	f.BoolVar(&cfg.Engine.NoDiscardPassdown, "no-discard-passdown", false, "keep freed blocks allocated in the data file instead of punching holes")
	f.BoolVar(&cfg.Engine.ErrorIfNoSpace, "error-if-no-space", false, "fail writes at once when the pool is full instead of queueing them")
	f.DurationVar(&cfg.Engine.NoSpaceTimeout, "no-space-timeout", 60*time.Second, "how long writes queue while the pool is full before they fail")
	f.DurationVar(&cfg.Engine.CommitInterval, "commit-interval", time.Second, "period of background metadata commits (each flushes the data file first if new blocks need it)")
	f.Var(cacheF, "metadata-cache", "metadata block cache size; default 64M")
	f.IntVar(&cfg.MaxConnections, "max-connections", nbd.DefaultMaxConnections, "NBD connections served at once; beyond it a new one is closed at once")
	f.IntVar(&cfg.MaxHandshakes, "max-handshakes", nbd.DefaultMaxHandshakes, "NBD handshakes in progress at once; beyond it the oldest of the busiest client is closed")
	f.Var(bufferBudgetF, "buffer-budget", fmt.Sprintf("request and reply payload bytes all NBD connections may hold together; at least %dM", 2*nbd.MaxPayload>>20))
	f.IntVar(&cfg.MaxConnectionsPerVolume, "max-connections-per-volume", daemon.DefaultMaxConnectionsPerVolume, "NBD connections to one volume; 0: no limit")
	f.DurationVar(&cfg.ReplyTimeout, "reply-timeout", nbd.DefaultReplyTimeout, "drop an NBD client that takes no reply bytes for this long")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", daemon.DefaultShutdownTimeout, "on SIGTERM, how long requests in flight may take before connections are closed")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// limitFlags checks the resource limit flags and puts them in cfg.
func limitFlags(cfg *daemon.Config, bufferBudget uint64) error {
	switch {
	case cfg.MaxConnections <= 0:
		return fmt.Errorf("--max-connections %d: want a positive number", cfg.MaxConnections)
	case cfg.MaxHandshakes <= 0:
		return fmt.Errorf("--max-handshakes %d: want a positive number", cfg.MaxHandshakes)
	case cfg.MaxConnectionsPerVolume < 0:
		return fmt.Errorf("--max-connections-per-volume %d: want 0 (no limit) or more", cfg.MaxConnectionsPerVolume)
	case bufferBudget < 2*nbd.MaxPayload || bufferBudget > 1<<40:
		return fmt.Errorf("--buffer-budget %d: want %dM to 1T", bufferBudget, 2*nbd.MaxPayload>>20)
	case cfg.ReplyTimeout <= 0:
		return fmt.Errorf("--reply-timeout %v: want a positive duration", cfg.ReplyTimeout)
	case cfg.ShutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout %v: want a positive duration", cfg.ShutdownTimeout)
	}
	if cfg.MaxConnectionsPerVolume == 0 {
		cfg.MaxConnectionsPerVolume = -1 // the daemon's "no cap"
	}
	cfg.BufferBudget = int64(bufferBudget)
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
