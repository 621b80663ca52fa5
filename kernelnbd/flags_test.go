package kernelnbd_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/kernelnbd"
)

// Transmission flags, from the NBD protocol spec (doc/proto.md).
const (
	flagHasFlags  = 1 << 0
	flagReadOnly  = 1 << 1
	flagSendFlush = 1 << 2
	flagSendFUA   = 1 << 3
	flagSendTrim  = 1 << 5
)

// TestExportFlagsFromThind asks a real daemon for its exports' flags:
// what the kernel must be told so that FLUSH, FUA and TRIM reach thind.
func TestExportFlagsFromThind(t *testing.T) {
	dir := tooltest.ShortDir(t)
	pooltest.CheckFile(t, filepath.Join(dir, "metadata"))
	sock := filepath.Join(dir, "nbd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, daemon.Config{
		DataDir: dir, DataSize: 1 << 30, MetadataSize: 16 << 20, DefaultSize: 64 << 20,
		Listen: []string{"unix:" + sock}, MetricsAddr: "off", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NBD socket never came up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	flags, err := kernelnbd.ExportFlags("unix", sock, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		bit  uint16
	}{
		{"HAS_FLAGS", flagHasFlags},
		{"SEND_FLUSH", flagSendFlush},
		{"SEND_FUA", flagSendFUA},
		{"SEND_TRIM", flagSendTrim},
	} {
		if flags&f.bit == 0 {
			t.Errorf("export flags %#x lack %s", flags, f.name)
		}
	}
	if flags&flagReadOnly != 0 {
		t.Errorf("export flags %#x: read-only", flags)
	}
	if _, err := kernelnbd.ExportFlags("unix", sock, "nope"); err == nil {
		t.Error("flags of a missing export: no error")
	}
}
