package csi

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/thind-storage/thind/kernelnbd"
)

// Attacher connects the kernel's NBD client to a volume of the node's
// daemon, on a connection that outlives the driver process (a driver
// restart must not take mounted filesystems down).
type Attacher interface {
	// Attach attaches the export name and returns its /dev/nbdN.
	Attach(ctx context.Context, name string) (dev string, err error)
	// Detach disconnects dev.
	Detach(ctx context.Context, dev string) error
	// Attached reports whether dev still has its connection.
	Attached(dev string) bool
}

// ExecAttacher attaches with `thind attach`, whose connection lives in a
// process of its own session, so that it survives the driver.
type ExecAttacher struct {
	// Binary is the thind binary.
	Binary string
	// NBDSocket is the daemon's NBD unix socket.
	NBDSocket string
}

// Attach picks a free device (the driver serialises stages) and attaches
// name to it.
func (a ExecAttacher) Attach(ctx context.Context, name string) (string, error) {
	dev, err := kernelnbd.FreeDevice()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, a.Binary, "attach", name, dev, "--socket", a.NBDSocket).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("thind attach %s %s: %v: %s", name, dev, err, strings.TrimSpace(string(out)))
	}
	return dev, nil
}

// Detach disconnects dev; its attach process then ends by itself.
func (a ExecAttacher) Detach(_ context.Context, dev string) error {
	return kernelnbd.Disconnect(dev)
}

// Attached reports whether the kernel has a connection on dev.
func (a ExecAttacher) Attached(dev string) bool { return kernelnbd.Connected(dev) }
