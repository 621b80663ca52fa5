# shellcheck shell=bash
# selftest/nbd.guest.sh : guest half of selftest/nbd.sh (NBD_PORT from the host).
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
server=10.0.2.2
uri=nbd://$server:$NBD_PORT

alloc() { # bytes the server has allocated (nbdinfo map entries that are not holes)
	nbdinfo --map --totals "$uri" | awk '$3 % 2 == 0 { s += $1 } END { print s + 0 }'
}
nbd_size() { cat "/sys/block/$1/size"; }
size_is() { [ "$(nbd_size "$1")" = "$2" ]; }
connections() { # ESTABLISHED TCP connections to the server port (/proc/net/tcp is hex)
	awk -v r="$(printf '0202000A:%04X' "$NBD_PORT")" '$3 == r && $4 == "01"' /proc/net/tcp | wc -l
}
write_files() { # 4 files of 8 MiB random data and their checksums
	for i in 1 2 3 4; do dd if=/dev/urandom of="/mnt/f$i" bs=1M count=8 status=none; done
	(cd /mnt && sha256sum f1 f2 f3 f4) >/tmp/sums
	sync -f /mnt
}
verify_files() { cd /mnt && sha256sum -c --quiet /tmp/sums; }
drop_caches() { blockdev --flushbufs "$1" && echo 3 >/proc/sys/vm/drop_caches; }

# --- one connection, ext4
step connect nbd-client "$server" "$NBD_PORT" /dev/nbd0 -N thind-selftest -b 4096
wait_for nbd0-up 10 size_is nbd0 2097152
bytes=$(blockdev --getsize64 /dev/nbd0)
check_eq nbd0-bytes 1073741824 "$bytes"
n=$(connections)
check_eq one-connection 1 "$n"
step mkfs-ext4 mkfs.ext4 -q -F /dev/nbd0
step mount mount /dev/nbd0 /mnt
step write write_files
step umount umount /mnt
step drop-caches drop_caches /dev/nbd0
step e2fsck e2fsck -fn /dev/nbd0
step remount mount /dev/nbd0 /mnt
step verify verify_files
a_full=$(alloc)
check_ge server-holds-data "$(mib 32)" "$a_full"
step rm rm /mnt/f1 /mnt/f2 /mnt/f3 /mnt/f4
step syncfs sync -f /mnt
step fstrim fstrim -v /mnt
step fstrim-reports-bytes grep -q 'trimmed' "$STEP_OUT"
a_trim=$(alloc)
check_ge fstrim-freed-server "$(mib 30)" $((a_full - a_trim))
step umount-2 umount /mnt
step blkdiscard blkdiscard -f /dev/nbd0
a_discard=$(alloc)
check_eq blkdiscard-freed-server 0 "$a_discard"
step disconnect nbd-client -d /dev/nbd0
wait_for nbd0-down 10 size_is nbd0 0

# --- two connections (the kernel refuses -C 2 unless the server advertises multi-conn), xfs
step connect-2 nbd-client "$server" "$NBD_PORT" /dev/nbd1 -N thind-selftest -b 4096 -C 2
wait_for nbd1-up 10 size_is nbd1 2097152
n=$(connections)
check_eq two-connections 2 "$n"
step mkfs-xfs mkfs.xfs -q -f /dev/nbd1
step mount-xfs mount /dev/nbd1 /mnt # loads xfs.ko through /proc/sys/kernel/modprobe
step write-xfs write_files
step umount-xfs umount /mnt
step drop-caches-xfs drop_caches /dev/nbd1
step xfs_repair xfs_repair -n /dev/nbd1
step remount-xfs mount /dev/nbd1 /mnt
step verify-xfs verify_files
step umount-xfs-2 umount /mnt
step disconnect-2 nbd-client -d /dev/nbd1
wait_for nbd1-down 10 size_is nbd1 0
n=$(connections)
check_eq no-connections 0 "$n"
