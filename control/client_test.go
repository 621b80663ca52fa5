package control_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// startDaemon runs a real daemon in-process on a new pool, checked when
// the test ends, and returns a client of its control socket.
func startDaemon(t *testing.T) *control.Client {
	t.Helper()
	dir := tooltest.ShortDir(t)
	pooltest.CheckFile(t, filepath.Join(dir, "metadata"))
	cfg := daemon.Config{
		DataDir: dir, DataSize: 1 << 30, MetadataSize: 16 << 20, DefaultSize: 256 << 20,
		Listen: []string{"unix:" + filepath.Join(dir, "nbd.sock")}, MetricsAddr: "off",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	c := control.New(filepath.Join(dir, "control.sock"))
	// Run opens the sockets; wait until the control API answers.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := c.Pool(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the daemon's control API did not come up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Run starts the control socket: wait for it to answer.
	deadline := time.Now().Add(30 * time.Second)
	for _, err := c.Pool(ctx); err != nil; _, err = c.Pool(ctx) {
		if !errors.Is(err, control.ErrUnreachable) || time.Now().After(deadline) {
			t.Fatalf("the control API did not come up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func TestClientAgainstDaemon(t *testing.T) {
	c := startDaemon(t)
	ctx := context.Background()
	st, err := c.Pool(ctx)
	if err != nil || st.Mode != "write" || st.DataBytes != 1<<30 {
		t.Fatalf("pool: %+v %v", st, err)
	}
	labels := map[string]string{"team": "a"}
	v, err := c.Create(ctx, control.VolumeRequest{Name: "v1", Size: 1 << 20, Labels: &labels})
	if err != nil || v.Name != "v1" || v.Size != 1<<20 || v.DevID == 0 {
		t.Fatalf("create: %+v %v", v, err)
	}
	ro := true
	s, err := c.Snapshot(ctx, "v1", control.VolumeRequest{Name: "s1", ReadOnly: &ro})
	if err != nil || s.Origin != "v1" || !s.ReadOnly || s.Size != 1<<20 {
		t.Fatalf("snapshot: %+v %v", s, err)
	}
	if v, err = c.Resize(ctx, "v1", 2<<20, false); err != nil || v.Size != 2<<20 {
		t.Fatalf("resize: %+v %v", v, err)
	}
	vols, err := c.Volumes(ctx, map[string]string{"team": "a"})
	if err != nil || len(vols) != 1 || vols[0].Name != "v1" {
		t.Fatalf("list by label: %+v %v", vols, err)
	}
	desc := "hello"
	if v, err = c.Update(ctx, "v1", control.VolumeRequest{Description: &desc}); err != nil || v.Description != desc {
		t.Fatalf("update: %+v %v", v, err)
	}
	if err := c.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		err  error
		want error
	}{
		{"a missing volume is ErrNotFound", func() error { _, err := c.Volume(ctx, "s1"); return err }(), control.ErrNotFound},
		{"a taken name is ErrConflict", func() error { _, err := c.Create(ctx, control.VolumeRequest{Name: "v1", Size: 1 << 20}); return err }(), control.ErrConflict},
		{"a bad name is ErrInvalid", func() error { _, err := c.Create(ctx, control.VolumeRequest{Name: "Bad", Size: 1 << 20}); return err }(), control.ErrInvalid},
		{"a shrink without allow_shrink is ErrConflict", func() error { _, err := c.Resize(ctx, "v1", 1<<20, false); return err }(), control.ErrConflict},
	} {
		var ae *control.APIError
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &ae) || ae.Message == "" {
			t.Errorf("%s: got %v", tc.what, tc.err)
		}
	}
}

func TestClientUnreachable(t *testing.T) {
	c := control.New(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	if _, err := c.Pool(context.Background()); !errors.Is(err, control.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}
