# shellcheck shell=bash
# test/vm/thind/reread.guest.sh : part 3 of the thind VM suite. thind serves again the pool the
# kernel changed (server A at $A_PORT: default, snap1) and the pool the kernel made (server B at
# $B_PORT: its thin devices 1 and 2, a snapshot of 1, adopted as orphan-1 and orphan-2); everything the kernel wrote reads back
# through NBD (checksums from part 2 in /vmtest/*.sums), and thind writes to the kernel's pool.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
# shellcheck source=guest-lib.sh
. /vmtest/thind-lib.sh
vol_sectors=$((VOL_BYTES / 512))
mkdir -p /snap /b

# ------------------------------------------------------------------ pool A after the kernel's writes
step connect-default nbd-client $S "$A_PORT" /dev/nbd0 -N default -b 4096
wait_for nbd0-up 10 size_is nbd0 "$vol_sectors"
step e2fsck-default e2fsck -fn /dev/nbd0
step mount-default mount /dev/nbd0 /mnt
step default-has-kernel-writes verify /mnt /vmtest/origin2.sums
step connect-snap1 nbd-client $S "$A_PORT" /dev/nbd1 -N snap1 -b 4096 -R
wait_for nbd1-up 10 size_is nbd1 "$vol_sectors"
step mount-snap1 mount -o ro /dev/nbd1 /snap
step snap1-as-of-snapshot verify /snap /vmtest/snap.sums
step umount-snap1 umount /snap
step disconnect-snap1 nbd-client -d /dev/nbd1
step umount-default umount /mnt
step disconnect-default nbd-client -d /dev/nbd0
step connect-orphan-9 nbd-client $S "$A_PORT" /dev/nbd0 -N orphan-9 -b 4096 -R
wait_for nbd0-up-orphan-9 10 size_is nbd0 256
got=$(dd if=/dev/nbd0 bs=64k count=2 iflag=direct status=none | sha256sum | cut -d' ' -f1)
want=$(cat /vmtest/a9.sum)
check_eq orphan-9-has-kernel-data "$want" "$got"
step disconnect-orphan-9 nbd-client -d /dev/nbd0
wait_for nbd0-down 10 size_is nbd0 0

# ------------------------------------------------------------------ pool B, made by the kernel
step connect-orphan nbd-client $S "$B_PORT" /dev/nbd2 -N orphan-1 -b 4096
wait_for nbd2-up 10 size_is nbd2 $((B_THIN_BYTES / 512))
bytes=$(blockdev --getsize64 /dev/nbd2)
check_eq orphan-size "$B_THIN_BYTES" "$bytes"
step e2fsck-orphan e2fsck -fn /dev/nbd2
step mount-orphan mount /dev/nbd2 /b
step orphan-has-kernel-files verify /b /vmtest/b.sums
marker=$(dd if=/dev/nbd2 bs=64k skip=$((B_THIN_BYTES / 65536 - 1)) count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)
want=$(cat /vmtest/b-marker.sum)
check_eq orphan-last-block-marker "$want" "$marker"
step connect-orphan-2 nbd-client $S "$B_PORT" /dev/nbd3 -N orphan-2 -b 4096 -R
wait_for nbd3-up 10 size_is nbd3 $((B_THIN_BYTES / 512))
step mount-orphan-2 mount -o ro /dev/nbd3 /snap
step orphan-2-is-kernel-snapshot verify /snap /vmtest/b-snap.sums
# thind writes into the kernel's pool too: new files, and over a file thin 2 shares with
# thin 1 (thind must copy, not overwrite); the host runs thin_check afterwards.
thind_writes() {
	make_files /b/thind 2 4
	dd if=/dev/urandom of=/b/b/f2 bs=1M count=2 conv=notrunc status=none
}
step write-orphan thind_writes
step syncfs-orphan sync -f /b
step sums-orphan sums /b /tmp/b2.sums
step umount-orphan umount /b
step drop-caches-orphan drop_caches /dev/nbd2
step remount-orphan mount /dev/nbd2 /b
step verify-orphan verify /b /tmp/b2.sums
step umount-orphan-2 umount /b
step e2fsck-orphan-after e2fsck -fn /dev/nbd2
step disconnect-orphan nbd-client -d /dev/nbd2
step umount-orphan-2 umount /snap
step drop-caches-orphan-2 drop_caches /dev/nbd3
step remount-orphan-2 mount -o ro /dev/nbd3 /snap
step orphan-2-unchanged-by-thind verify /snap /vmtest/b-snap.sums
step umount-orphan-2-again umount /snap
step disconnect-orphan-2 nbd-client -d /dev/nbd3
