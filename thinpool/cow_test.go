package thinpool_test

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/internal/loopfstest"
	"github.com/thind-storage/thind/thinpool"
)

// TestBreakingSharingOnRealFileSystems writes 4 KiB into every block an
// origin shares with its snapshot, with the pool on loop-mounted XFS
// with reflink and on ext4, with 64 KiB blocks (patched in memory) and
// 2 MiB blocks (copied on the store: a clone on XFS, which takes next to
// no free space, copy_file_range on ext4). The origin reads the old data
// with the new 4 KiB, the snapshot the old data only.
func TestBreakingSharingOnRealFileSystems(t *testing.T) {
	const blocks = 16
	for _, kind := range loopfstest.Kinds {
		for _, bs := range []uint64{64 << 10, 2 << 20} {
			t.Run(fmt.Sprintf("%s/block=%dK", kind, bs>>10), func(t *testing.T) {
				mnt := loopfstest.Mount(t, kind, 1<<30)
				vol := blocks * bs
				e := newFileEnvBlocks(t, mnt, 16<<20, int64(3*vol), uint32(bs/512), thinpool.Config{})
				th := e.thin(1, vol)
				old := fill(7, int(vol))
				if err := th.WriteAt(bg, old, 0, true); err != nil {
					t.Fatal(err)
				}
				if err := e.pool.CreateSnap(bg, 2, 1); err != nil {
					t.Fatal(err)
				}
				snap := e.thin(2, vol)
				before := freeBytes(t, mnt)
				patch := bytes.Repeat([]byte{0xc3}, 4096)
				want := bytes.Clone(old)
				for b := uint64(0); b < blocks; b++ {
					if err := th.WriteAt(bg, patch, b*bs+8192, false); err != nil {
						t.Fatal(err)
					}
					copy(want[b*bs+8192:], patch)
				}
				if err := th.Flush(bg); err != nil {
					t.Fatal(err)
				}
				if st := e.pool.Stats(); st.Thins[1].SharingBroken != blocks {
					t.Fatalf("%d blocks had their sharing broken, want %d", st.Thins[1].SharingBroken, blocks)
				}
				used := before - freeBytes(t, mnt)
				copied := e.pool.Stats().Dispatcher.Total().Ops[blk.OpCopy].Requests
				switch {
				case bs <= 1<<20 && copied != 0:
					t.Fatalf("%d copies on the store for blocks patched in memory", copied)
				case bs > 1<<20 && copied != blocks:
					t.Fatalf("%d copies on the store, want %d", copied, blocks)
				case kind == "xfs-reflink" && bs > 1<<20 && used > int64(vol)/4:
					t.Fatalf("cloned %d bytes, yet %d bytes of free space went", vol, used)
				}
				got := make([]byte, vol)
				if err := th.ReadAt(bg, got, 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("the origin does not read as the old data with the new writes")
				}
				if err := snap.ReadAt(bg, got, 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, old) {
					t.Fatal("the snapshot changed when the origin was written")
				}
				e.commitAndCheck()
			})
		}
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bfree) * st.Bsize
}
