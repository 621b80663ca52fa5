# shellcheck shell=bash
# test/vm/thind/nbd.guest.sh : part 1 of the thind VM suite, the guest against "thind serve"
# on the host (server A at 10.0.2.2:$NBD_PORT, volume "default" of $VOL_BYTES; the host answers
# "host ..." requests, see ctl.sh). Leaves ext4 with files on "default" and on its snapshot
# "snap1" for part 2; their checksums go to /vmtest/out.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
# shellcheck source=guest-lib.sh
. /vmtest/thind-lib.sh
P=$NBD_PORT
sectors=$((VOL_BYTES / 512))
blocks_of() { echo $((($1 + 65535) / 65536)); } # bytes -> 64 KiB data blocks

# ------------------------------------------------------------------ xfs over four connections
step connect-4 nbd-client $S "$P" /dev/nbd0 -N default -b 4096 -C 4
wait_for nbd0-up 10 size_is nbd0 "$sectors"
bytes=$(blockdev --getsize64 /dev/nbd0)
check_eq nbd0-size "$VOL_BYTES" "$bytes"
wait_for four-connections 10 connections_are "$P" 4
v=$(vv A default connections)
check_eq server-counts-4-connections 4 "$v"
step mkfs-xfs mkfs.xfs -q -f /dev/nbd0
step mount-xfs mount /dev/nbd0 /mnt
step write-tree-xfs make_tree /mnt/tree
step syncfs-xfs sync -f /mnt
step sums-xfs sums /mnt /tmp/xfs.sums
tree_bytes=$(total_bytes /tmp/xfs.sums /mnt)
check_ge tree-at-least-200MiB "$(mib 200)" "$tree_bytes"
used=$(hv A data_blocks_used)
check_ge pool-holds-tree "$(blocks_of "$tree_bytes")" "$used"
step umount-xfs umount /mnt
step drop-caches-xfs drop_caches /dev/nbd0
step xfs_repair xfs_repair -n /dev/nbd0
step remount-xfs mount /dev/nbd0 /mnt
step verify-xfs verify /mnt /tmp/xfs.sums

# fstrim on xfs: delete the six 16 MiB files, trim, the host frees their blocks
used0=$(hv A data_blocks_used)
alloc0=$(hv A data_file_bytes)
step rm-xfs rm /mnt/tree/big/b1.bin /mnt/tree/big/b2.bin /mnt/tree/big/b3.bin /mnt/tree/big/b4.bin /mnt/tree/big/b5.bin /mnt/tree/big/b6.bin
step syncfs-xfs-2 sync -f /mnt
step fstrim-xfs fstrim -v /mnt
trimmed=$(trimmed_bytes)
check_ge fstrim-xfs-reports-96MiB "$(mib 96)" "$trimmed"
# 96 MiB = 1536 blocks; allow 5 % for blocks the files share with others
check_le xfs-blocks-freed-when-it-returns $((used0 - 1459)) "$(hv A data_blocks_used)"
check_le xfs-data-file-shrinks-when-it-returns $((alloc0 - $(mib 91))) "$(hv A data_file_bytes)"
used1=$(hv A data_blocks_used)
alloc1=$(hv A data_file_bytes)
measured "fstrim-xfs trimmed_bytes=$trimmed freed_blocks=$((used0 - used1)) freed_bytes=$(((used0 - used1) * 65536)) data_file_shrunk_bytes=$((alloc0 - alloc1))"
grep -v '/big/b[1-6]\.bin$' /tmp/xfs.sums >/tmp/xfs-rest.sums
step verify-xfs-rest verify /mnt /tmp/xfs-rest.sums
step umount-xfs-2 umount /mnt

# ------------------------------------------------------------------ blkdiscard of a range, then of all
# 34 MiB of a pattern at 255 MiB, then discard the 32 MiB in the middle: exactly 512 blocks go,
# the range reads as zeros, the MiB on either side is intact.
step pattern dd if=/dev/urandom of=/dev/nbd0 bs=1M seek=255 count=34 oflag=direct status=none

# Discards that do not cover whole 64 KiB blocks, in the pattern's first MiB (block k of it is
# [k*64K, (k+1)*64K)): [12K, 52K) inside block 0, and [188K, 260K) = the tail of block 2, all of
# block 3, the head of block 4. Exactly block 3 is unmapped and reads as zeros; every byte
# outside the two ranges is intact (what the partial ranges read is not promised).
pat=$(mib 255)
dd if=/dev/nbd0 of=/tmp/pat0 bs=1M skip=255 count=1 iflag=direct status=none
mapped0=$(vv A default mapped_blocks)
step discard-inside-block blkdiscard -f -o $((pat + (12 << 10))) -l $((40 << 10)) /dev/nbd0
step discard-across-blocks blkdiscard -f -o $((pat + (188 << 10))) -l $((72 << 10)) /dev/nbd0
mapped1=$(vv A default mapped_blocks)
check_eq partial-discards-unmap-one-block 1 $((mapped0 - mapped1))
step drop-caches-partial drop_caches /dev/nbd0
dd if=/dev/nbd0 of=/tmp/pat1 bs=1M skip=255 count=1 iflag=direct status=none
same() { cmp -i "$1:$1" -n "$2" /tmp/pat0 /tmp/pat1; } # same OFFSET LEN
step partial-before-intact same 0 $((12 << 10))
step partial-between-intact same $((52 << 10)) $((136 << 10))
step partial-after-intact same $((260 << 10)) $(((1024 - 260) << 10))
step partial-whole-block-zeros cmp -i $((192 << 10)):0 -n $((64 << 10)) /tmp/pat1 /dev/zero
before_sum=$(range_sum /dev/nbd0 "$(mib 255)" "$(mib 1)")
after_sum=$(range_sum /dev/nbd0 "$(mib 288)" "$(mib 1)")
mapped0=$(vv A default mapped_blocks)
used0=$(hv A data_blocks_used)
alloc0=$(hv A data_file_bytes)
step blkdiscard-range blkdiscard -f -o "$(mib 256)" -l "$(mib 32)" /dev/nbd0
mapped1=$(vv A default mapped_blocks)
check_eq range-unmapped-512-blocks 512 $((mapped0 - mapped1))
check_le range-blocks-freed-when-it-returns $((used0 - 512)) "$(hv A data_blocks_used)"
check_le range-data-file-shrinks-when-it-returns $((alloc0 - $(mib 32))) "$(hv A data_file_bytes)"
alloc1=$(hv A data_file_bytes)
measured "blkdiscard-range discarded_bytes=$(mib 32) unmapped_blocks=$((mapped0 - mapped1)) data_file_shrunk_bytes=$((alloc0 - alloc1))"
step drop-caches-range drop_caches /dev/nbd0
step range-reads-zeros is_zero /dev/nbd0 "$(mib 256)" "$(mib 32)"
got=$(range_sum /dev/nbd0 "$(mib 255)" "$(mib 1)")
check_eq mib-before-range-intact "$before_sum" "$got"
got=$(range_sum /dev/nbd0 "$(mib 288)" "$(mib 1)")
check_eq mib-after-range-intact "$after_sum" "$got"

used0=$(hv A data_blocks_used)
alloc0=$(hv A data_file_bytes)
step blkdiscard-all blkdiscard -f /dev/nbd0
mapped=$(vv A default mapped_blocks)
check_eq volume-unmapped 0 "$mapped"
check_le pool-empty-when-it-returns 0 "$(hv A data_blocks_used)"
# every block punched out (1 MiB of slack for the host file system's own allocation)
check_le data-file-empty-when-it-returns "$(mib 1)" "$(hv A data_file_bytes)"
alloc1=$(hv A data_file_bytes)
measured "blkdiscard-all freed_blocks=$used0 freed_bytes=$((used0 * 65536)) data_file_shrunk_bytes=$((alloc0 - alloc1)) data_file_left_bytes=$alloc1"
step drop-caches-all drop_caches /dev/nbd0
# Everything is unmapped (host), so everything reads as zeros; read a sample: 4 MiB at each
# 128 MiB step (reading all 2 GiB would take a minute under TCG).
zero_sample() {
	local off
	for ((off = 0; off < VOL_BYTES; off += 128 << 20)); do is_zero /dev/nbd0 "$off" "$(mib 4)"; done
}
step all-reads-zeros zero_sample
step disconnect-4 nbd-client -d /dev/nbd0
wait_for nbd0-down 10 size_is nbd0 0
wait_for no-connections 10 connections_are "$P" 0
wait_for server-counts-0-connections 10 vv_le A default connections 0

# ------------------------------------------------------------------ thind attach (go-nbd client)
step create-goattach host thind A volume create goattach --size 256M
step thind-attach thind attach goattach --addr "$S:$P"
dev=$(sed -n 's|^attached goattach to /dev/\(nbd[0-9]*\)$|\1|p' "$STEP_OUT")
[ -n "$dev" ] || fail "no device in: $(cat "$STEP_OUT")"
wait_for "$dev-up" 10 size_is "$dev" $((256 * 2048))
v=$(vv A goattach connections)
check_eq attach-server-counts-1-connection 1 "$v"
q=/sys/block/$dev/queue
v=$(cat "$q/discard_max_bytes")
check_ge attach-discard_max_bytes 1 "$v"
v=$(cat "$q/write_cache")
check_eq attach-write_cache "write back" "$v"
v=$(cat "$q/fua")
check_eq attach-fua 1 "$v"
m=thind_volume_requests_total
flush0=$(metric A "$m{op=\"flush\",volume=\"goattach\"}")
trim0=$(metric A "$m{op=\"trim\",volume=\"goattach\"}")
# O_DIRECT|O_DSYNC writes go out as FUA writes; conv=fsync ends with a cache flush.
step attach-write-fua dd if=/dev/urandom of="/dev/$dev" bs=1M count=16 oflag=direct,dsync status=none
step attach-write-fsync dd if=/dev/urandom of="/dev/$dev" bs=1M seek=16 count=16 conv=fsync status=none
flush1=$(metric A "$m{op=\"flush\",volume=\"goattach\"}")
check_ge attach-flush-reaches-server $((flush0 + 1)) "$flush1"
step attach-sum range_sum "/dev/$dev" 0 "$(mib 32)"
sum=$(cat "$STEP_OUT")
step attach-drop-caches drop_caches "/dev/$dev"
got=$(range_sum "/dev/$dev" 0 "$(mib 32)")
check_eq attach-reads-back "$sum" "$got"
mapped0=$(vv A goattach mapped_blocks)
check_eq attach-mapped-512 512 "$mapped0"
used0=$(hv A data_blocks_used)
alloc0=$(hv A data_file_bytes)
step attach-blkdiscard blkdiscard -f "/dev/$dev"
trim1=$(metric A "$m{op=\"trim\",volume=\"goattach\"}")
check_ge attach-trim-reaches-server $((trim0 + 1)) "$trim1"
mapped=$(vv A goattach mapped_blocks)
check_eq attach-unmapped 0 "$mapped"
check_le attach-blocks-freed-when-it-returns $((used0 - 512)) "$(hv A data_blocks_used)"
check_le attach-data-file-shrinks-when-it-returns $((alloc0 - $(mib 32))) "$(hv A data_file_bytes)"
alloc1=$(hv A data_file_bytes)
measured "attach-blkdiscard freed_blocks=$mapped0 data_file_shrunk_bytes=$((alloc0 - alloc1))"
step attach-drop-caches-2 drop_caches "/dev/$dev"
step attach-reads-zeros is_zero "/dev/$dev" 0 "$(mib 32)"
attach_pid=$(cat "/sys/block/$dev/pid")
check_ge attach-process-holds-device 2 "$attach_pid"
step thind-detach thind detach "/dev/$dev"
wait_for "$dev-down" 10 size_is "$dev" 0
gone() { [ ! -e "/proc/$1" ] || grep -q "^State:.*Z" "/proc/$1/status" 2>/dev/null; } # exited (or a zombie)
wait_for attach-process-exits 10 gone "$attach_pid"
wait_for attach-server-counts-0 10 vv_le A goattach connections 0 # delete refuses a connected volume
step delete-goattach host thind A volume delete goattach

# ------------------------------------------------------------------ ext4 over one connection
# -t 30: a request the kernel requeued when the connection died mid-send (the restart below)
# can otherwise stay stuck forever (Linux 6.1 without a timeout: D state, seen 1 run in 3).
step connect-1 nbd-client $S "$P" /dev/nbd0 -N default -b 4096 -t 30
wait_for nbd0-up-2 10 size_is nbd0 "$sectors"
wait_for one-connection 10 connections_are "$P" 1
v=$(vv A default connections)
check_eq server-counts-1-connection 1 "$v"
# no lazy init: a background ext4lazyinit would write while pool usage is measured
step mkfs-ext4 mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/nbd0
step mount-ext4 mount /dev/nbd0 /mnt
step fstrim-ext4-first fstrim -v /mnt # trims all free space once
step write-tree-ext4 make_tree /mnt/tree
step syncfs-ext4 sync -f /mnt
step sums-ext4 sums /mnt /tmp/ext4.sums
tree_bytes=$(total_bytes /tmp/ext4.sums /mnt)
check_ge ext4-tree-at-least-200MiB "$(mib 200)" "$tree_bytes"
step umount-ext4 umount /mnt
step drop-caches-ext4 drop_caches /dev/nbd0
step e2fsck e2fsck -fn /dev/nbd0
step remount-ext4 mount /dev/nbd0 /mnt
step verify-ext4 verify /mnt /tmp/ext4.sums

# fstrim: 64 MiB written, synced, deleted, trimmed; the host frees the blocks and punches them out
step write-trimme make_files /mnt/trimme 8 8
step syncfs-trimme sync -f /mnt
used0=$(hv A data_blocks_used)
alloc0=$(hv A data_file_bytes)
step rm-trimme rm -r /mnt/trimme
step syncfs-rm sync -f /mnt
step fstrim-ext4 fstrim -v /mnt
trimmed=$(trimmed_bytes)
check_ge fstrim-ext4-reports-64MiB "$(mib 64)" "$trimmed"
# 64 MiB = 1024 blocks; allow 5 %
check_le ext4-blocks-freed-when-it-returns $((used0 - 972)) "$(hv A data_blocks_used)"
check_le ext4-data-file-shrinks-when-it-returns $((alloc0 - $(mib 60))) "$(hv A data_file_bytes)"
used1=$(hv A data_blocks_used)
alloc1=$(hv A data_file_bytes)
measured "fstrim-ext4 trimmed_bytes=$trimmed freed_blocks=$((used0 - used1)) freed_bytes=$(((used0 - used1) * 65536)) data_file_shrunk_bytes=$((alloc0 - alloc1))"
step verify-ext4-2 verify /mnt /tmp/ext4.sums

# ------------------------------------------------------------------ snapshot of a frozen, mounted fs
step write-b make_files /mnt/b 4 4
step syncfs-b sync -f /mnt
step sums-snap sums /mnt /tmp/snap.sums
step fsfreeze fsfreeze -f /mnt
# The host takes the snapshot while the fs is frozen; the answer comes back when it is done.
step snapshot-frozen host thind A volume snapshot default snap1
step fsthaw fsfreeze -u /mnt
listed() { nbd-client -l $S "$P" 2>/dev/null | grep -q '^snap1:'; }
wait_for snap1-exported 30 listed
# The origin changes: files of the snapshot deleted, overwritten in place, new files.
change_origin() {
	rm -r /mnt/b
	local f
	for f in /mnt/tree/big/b1.bin /mnt/tree/mid/a/m3 /mnt/tree/tiny/5/t13.txt; do
		dd if=/dev/urandom of="$f" bs=4k count=64 conv=notrunc status=none
	done
	make_files /mnt/c 4 4
	sync -f /mnt
}
step change-origin change_origin
step snap-connect nbd-client $S "$P" /dev/nbd1 -N snap1 -b 4096 -R
wait_for nbd1-up 10 size_is nbd1 "$sectors"
mkdir -p /snap
step snap-mount mount -o ro /dev/nbd1 /snap
# keep changing the origin while the snapshot is read
churn() { local i; for i in $(seq 24); do file_of $((1 << 20)) "/mnt/c/churn$i"; sync -f /mnt; done; }
churn >/tmp/churn.log 2>&1 &
churn_pid=$!
step snap-has-files-as-of-snapshot verify /snap /tmp/snap.sums
wait "$churn_pid" || fail "writing to the origin failed: $(tail -n 5 /tmp/churn.log)"
step snap-umount umount /snap
step snap-disconnect nbd-client -d /dev/nbd1
wait_for nbd1-down 10 size_is nbd1 0
step sums-origin sums /mnt /tmp/origin.sums
differs=$(cmp -s /tmp/snap.sums /tmp/origin.sums && echo same || echo differs)
check_eq origin-changed differs "$differs"
step drop-caches-origin sh -c 'echo 3 >/proc/sys/vm/drop_caches'
step verify-origin verify /mnt /tmp/origin.sums

# ------------------------------------------------------------------ daemon restart under a mounted fs
# Synced data must survive SIGTERM + start, with writes in flight when the daemon stops. The
# old connection dies with the daemon, so the fs is unmounted from a dead device (errors
# expected) and mounted again over a new connection: the journal replays, all synced files
# are there, e2fsck finds nothing.
step write-d make_files /mnt/d 2 4
step syncfs-d sync -f /mnt
step sums-final sums /mnt /tmp/final.sums
inflight() {
	mkdir -p /mnt/inflight
	local i=0
	while dd if=/dev/urandom of=/mnt/inflight/f$((i % 4)) bs=1M count=4 oflag=direct status=none; do
		i=$((i + 1))
	done
}
inflight >/tmp/inflight.log 2>&1 &
inflight_pid=$!
sleep 2
step writer-running kill -0 "$inflight_pid"
step restart-daemon host restart A
cat "$STEP_OUT"
wait_for writer-sees-dead-device 90 gone "$inflight_pid" # at most the 30 s I/O timeout
step umount-dead umount /mnt
nbd-client -d /dev/nbd0 >/dev/null 2>&1 || true
wait_for nbd0-released 20 size_is nbd0 0
step reconnect nbd-client $S "$P" /dev/nbd0 -N default -b 4096
wait_for nbd0-up-3 10 size_is nbd0 "$sectors"
step drop-caches-reconnect drop_caches /dev/nbd0
step remount-after-restart mount /dev/nbd0 /mnt
step drop-inflight rm -rf /mnt/inflight # not synced: may or may not be there
step verify-after-restart verify /mnt /tmp/final.sums
step umount-final umount /mnt
step e2fsck-final e2fsck -fn /dev/nbd0
step disconnect-final nbd-client -d /dev/nbd0
wait_for nbd0-down-final 10 size_is nbd0 0
cp /tmp/final.sums /vmtest/out/origin.sums
cp /tmp/snap.sums /vmtest/out/snap.sums
