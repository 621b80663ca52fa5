package thinpool_test

import (
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/metatools"
)

// checkDurable checks what a power cut would leave of a memory metadata
// device.
func checkDurable(t testing.TB, dev *bm.MemDevice) *metatools.Report {
	t.Helper()
	return pooltest.CheckDeviceNow(t, dev.CrashClone(0, nil), dev.Size())
}

// commitAndCheck commits and checks the metadata file of an idle pool.
func (e *env) commitAndCheck() *metatools.Report {
	e.t.Helper()
	if err := e.pool.Commit(bg); err != nil {
		e.t.Fatal(err)
	}
	return pooltest.CheckNow(e.t, e.metaPath)
}
