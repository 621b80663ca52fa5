package csi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// settleTimeout bounds the wait for an attached device to show a size.
const settleTimeout = 10 * time.Second

// attachSettled attaches the volume and returns its device once the
// kernel shows the device with a size. A connection that drops right
// after the attach (the device back at size 0) would otherwise read as a
// blank device to blkid and reach mkfs, which fails on it ("device size
// reported to be zero"): such a device is attached again, once.
func (d *Driver) attachSettled(ctx context.Context, id string) (string, error) {
	for try := 0; ; try++ {
		dev, err := d.attach(ctx, id)
		if err != nil {
			return "", err
		}
		err = d.settle(ctx, dev)
		if err == nil {
			return dev, nil
		}
		if try > 0 || d.cfg.Attacher.Attached(dev) {
			return "", status.Errorf(codes.Unavailable, "attach %s: %v", id, err)
		}
		d.log.Warn("the NBD connection dropped right after the attach; attaching again", "volume", id, "device", dev, "err", err)
	}
}

// settle waits until dev shows a size, or its connection is gone.
func (d *Driver) settle(ctx context.Context, dev string) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for {
		size, err := d.cfg.Attacher.Size(dev)
		switch {
		case err == nil && size > 0:
			return nil
		case !d.cfg.Attacher.Attached(dev):
			return fmt.Errorf("%s lost its connection right after the attach", dev)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is connected but shows no size (%v): %w", dev, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
