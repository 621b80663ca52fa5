package daemon_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// blockModel tracks, per 64 KiB block of the volume, the pattern a power
// cut must leave (the durable one: covered by a FLUSH or a FUA write) and
// the ones it may leave (written since). Pattern 0 is zeroes.
type blockModel struct {
	durable []byte
	since   [][]byte
}

func (m *blockModel) write(b int, v byte, fua bool) {
	if fua {
		m.durable[b], m.since[b] = v, nil
		return
	}
	m.since[b] = append(m.since[b], v)
}

func (m *blockModel) flush() {
	for b, s := range m.since {
		if len(s) > 0 {
			m.durable[b], m.since[b] = s[len(s)-1], nil
		}
	}
}

// TestPowerCutsUnderAServingDaemon cuts the power under both devices of
// a daemon serving a libnbd client that writes, FUA-writes and flushes,
// at a random moment, then restarts the daemon on the same files: every
// block holds its durable pattern or one written after it, the metadata
// passes both checkers, and the pool serves on. THIND_SOAK_CUTS=N makes
// it a soak of N cuts.
func TestPowerCutsUnderAServingDaemon(t *testing.T) {
	const blocks = 48
	cuts := 20
	if v := os.Getenv("THIND_SOAK_CUTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("THIND_SOAK_CUTS=%q: want a positive count", v)
		}
		cuts = n
	}
	cfg := smallConfig(t)
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	rng := randtest.New(t)
	m := &blockModel{durable: make([]byte, blocks), since: make([][]byte, blocks)}
	next := byte(1)
	dropped := 0 // unflushed writes the cuts lost
	for cut := 0; cut <= cuts; cut++ {
		f := startFaulty(t, cfg)
		c := tooltest.DialNBD(t, f.uri())
		for b := 0; b < blocks; b++ {
			found := false
			latest := m.durable[b]
			if n := len(m.since[b]); n > 0 {
				latest = m.since[b][n-1]
			}
			for _, v := range append([]byte{m.durable[b]}, m.since[b]...) {
				if c.Do("read %d %d %d", b*blockBytes, blockBytes, v) == "ok" {
					if v != latest {
						dropped++
					}
					m.durable[b], m.since[b], found = v, nil, true
					break
				}
			}
			if !found {
				t.Fatalf("after cut %d: block %d holds none of %d (durable) and %v", cut, b, m.durable[b], m.since[b])
			}
		}
		if s := f.status(); s.Mode != "write" {
			t.Fatalf("after cut %d: mode %s", cut, s.Mode)
		}
		if cut == cuts {
			t.Logf("%d power cuts survived; they lost %d blocks' unflushed writes", cuts, dropped)
			break
		}
		ops := 20 + rng.IntN(60)
		for op := 0; op < ops; op++ {
			switch x := rng.IntN(10); {
			case x < 7:
				b, fua := rng.IntN(blocks), rng.IntN(4) == 0
				req := "write %d %d %d"
				if fua {
					req += " fua"
				}
				c.Want("ok", req, b*blockBytes, blockBytes, next)
				m.write(b, next, fua)
				next = next%250 + 1
			default:
				c.Want("ok", "flush")
				m.flush()
			}
		}
		keep := rng.Float64()
		if err := f.meta.Cut(keep); err != nil {
			t.Fatal(err)
		}
		if err := f.data.Cut(keep); err != nil {
			t.Fatal(err)
		}
		if a := c.Do("write 0 %d 1", blockBytes); a != "err EIO" {
			t.Fatalf("a write after the power cut: %q", a)
		}
		c.Close()
		// The daemon's last commit fails, as it would with the power gone.
		f.cancel()
		f.cancel = nil
		<-f.done
	}
}
