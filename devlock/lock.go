package devlock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrHeld is wrapped by every HeldError.
var ErrHeld = errors.New("in use")

// HeldError says that a device is owned by someone else.
type HeldError struct {
	// Path is the device asked for.
	Path string
	// Holder is who holds it, as far as /proc and /sys tell.
	Holder Holder
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is %v by %s", e.Path, ErrHeld, e.Holder)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock is a held device lock.
type Lock struct {
	path  string
	flock *os.File // carries the flock
	claim *os.File // a block device opened O_EXCL, or nil
}

// Exclusive takes the device at path for a writer: nobody else may hold
// it, shared or exclusive. It fails with a *HeldError naming the holder.
func Exclusive(path string) (*Lock, error) { return lock(path, true) }

// Shared takes the device at path for a reader: other readers may hold it
// too, a writer may not. A block device claimed by the kernel (an active
// dm-thin pool, a mount) fails as held.
func Shared(path string) (*Lock, error) { return lock(path, false) }

func lock(path string, exclusive bool) (_ *Lock, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	block := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	l := &Lock{path: path}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	// The flock goes first: a thind that holds the device is then named
	// by its pid rather than reported as an anonymous O_EXCL holder.
	if l.flock, err = os.Open(path); err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flock(l.flock, how|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, Holder: holderOf(st, block)}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if block {
		claim, err := os.OpenFile(path, os.O_RDONLY|unix.O_EXCL, 0)
		if errors.Is(err, unix.EBUSY) {
			// Drop this call's own flock first, or /proc/locks would
			// name this process as the holder.
			l.flock.Close()
			l.flock = nil
			return nil, &HeldError{Path: path, Holder: holderOf(st, true)}
		}
		if err != nil {
			return nil, fmt.Errorf("claiming %s: %w", path, err)
		}
		if exclusive {
			l.claim = claim
		} else {
			// A reader only needs to know that the kernel does not
			// hold the device; keeping the claim would shut out other
			// readers.
			claim.Close()
		}
	}
	return l, nil
}

// flock retries flock(2) on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Path is the locked device.
func (l *Lock) Path() string { return l.path }

// Close releases the lock; nil-safe and idempotent.
func (l *Lock) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	if l.claim != nil {
		errs = append(errs, l.claim.Close())
		l.claim = nil
	}
	if l.flock != nil {
		errs = append(errs, l.flock.Close())
		l.flock = nil
	}
	return errors.Join(errs...)
}
