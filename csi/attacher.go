package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/thind-storage/thind/kernelnbd"
)

// Attacher connects the kernel's NBD client to a volume of the node's
// daemon, on a connection that outlives the driver process (a driver
// restart must not take mounted filesystems down).
//
// The driver picks the device first and records it before attaching, so
// that a stage killed between the two is retried onto the same device
// rather than leaking one: FreeDevice must skip the devices the driver
// has recorded (taken) even while they are not attached yet.
type Attacher interface {
	// FreeDevice returns a device with no connection that taken does
	// not hold.
	FreeDevice(taken func(dev string) bool) (string, error)
	// Attach attaches the export name to dev.
	Attach(ctx context.Context, name, dev string) error
	// Detach disconnects dev.
	Detach(ctx context.Context, dev string) error
	// Attached reports whether dev has a connection.
	Attached(dev string) bool
	// Size is dev's size in bytes as the kernel shows it (0 for a
	// device with no connection).
	Size(dev string) (uint64, error)
	// Grow makes the attached dev size bytes long without detaching it,
	// once the volume has grown (online expansion); an attacher that
	// cannot returns ErrCannotGrow.
	Grow(ctx context.Context, dev string, size uint64) error
}

// ErrCannotGrow is an attacher's answer when its devices keep the size
// they were attached with.
var ErrCannotGrow = errors.New("the attached device cannot grow; unstage and stage the volume again")

// ExecAttacher attaches with `thind attach`, whose connection lives in a
// process of its own session, so that it survives the driver.
type ExecAttacher struct {
	// Binary is the thind binary.
	Binary string
	// NBDSocket is the daemon's NBD unix socket.
	NBDSocket string
	// NBDAddr, if set, is the daemon's NBD TCP address (HOST:PORT),
	// used instead of NBDSocket: a node whose daemon is reached over
	// the network.
	NBDAddr string
}

// FreeDevice returns the first unconnected /dev/nbdN not taken.
func (a ExecAttacher) FreeDevice(taken func(string) bool) (string, error) {
	return kernelnbd.FreeDevice(taken)
}

// Attach runs `thind attach NAME DEV`, which returns once the device is up.
func (a ExecAttacher) Attach(ctx context.Context, name, dev string) error {
	where := []string{"--socket", a.NBDSocket}
	if a.NBDAddr != "" {
		where = []string{"--addr", a.NBDAddr}
	}
	// The attach process that stays behind inherits stderr: were it a
	// pipe, CombinedOutput would wait on it for as long as the device is
	// attached (and a closed one would kill that process with SIGPIPE at
	// its first message), so the output goes to a file.
	f, err := os.CreateTemp("", "thind-attach-*.log")
	if err != nil {
		return fmt.Errorf("thind attach %s %s: %w", name, dev, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, a.Binary, append([]string{"attach", name, dev}, where...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(f.Name())
		return fmt.Errorf("thind attach %s %s: %v: %s", name, dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Detach disconnects dev and returns once its attach process has let go
// of it (at most a minute), so that a stage right after cannot pick the
// device while that process still tears its configuration down.
func (a ExecAttacher) Detach(ctx context.Context, dev string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return kernelnbd.DisconnectAndWait(ctx, dev)
}

// Attached reports whether the kernel has a connection on dev.
func (a ExecAttacher) Attached(dev string) bool { return kernelnbd.Connected(dev) }

// Size is the kernel's size of dev.
func (a ExecAttacher) Size(dev string) (uint64, error) { return kernelnbd.Size(dev) }

// Grow sets the kernel's size of dev (NBD_SET_SIZE): thind's NBD server
// serves a volume's new size on the connection it already has.
func (a ExecAttacher) Grow(_ context.Context, dev string, size uint64) error {
	return kernelnbd.SetSize(dev, size)
}
