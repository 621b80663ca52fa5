# shellcheck shell=bash
# selftest/dmthin.guest.sh : guest half of selftest/dmthin.sh.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
meta=$(disk meta)
data=$(disk data)
thin_sectors=$((2 * 1048576)) # 1 GiB virtual on a 512 MiB pool

pool_field() { dmsetup status pool | awk -v f="$1" '{ print $f }'; } # 4 transaction, 6 data used/total
write_files() {
	for i in 1 2 3 4; do dd if=/dev/urandom of="/mnt/f$i" bs=1M count=4 status=none; done
	(cd /mnt && sha256sum f1 f2 f3 f4) >/tmp/sums
	sync -f /mnt
}
verify() { cd /mnt && sha256sum -c --quiet "$1"; }
overwrite_f1() {
	dd if=/dev/urandom of=/mnt/f1 bs=1M count=4 conv=notrunc status=none
	(cd /mnt && sha256sum f1 f2 f3 f4) >/tmp/sums-new
	sync -f /mnt
}
drop_caches() { blockdev --flushbufs "$1" && echo 3 >/proc/sys/vm/drop_caches; }

data_sectors=$(blockdev --getsz "$data")
check_eq data-sectors 1048576 "$data_sectors"
step pool dmsetup create pool --table "0 $data_sectors thin-pool $meta $data 128 64"
used=$(pool_field 6)
check_eq pool-empty 0/8192 "$used"
step create-thin dmsetup message pool 0 "create_thin 0"
step activate-thin dmsetup create thin0 --table "0 $thin_sectors thin /dev/mapper/pool 0"
step mkfs mkfs.ext4 -q /dev/mapper/thin0
step mount mount /dev/mapper/thin0 /mnt
step write write_files
step umount umount /mnt
step drop-caches drop_caches /dev/mapper/thin0
step e2fsck e2fsck -fn /dev/mapper/thin0
step remount mount /dev/mapper/thin0 /mnt
step verify verify /tmp/sums
step umount-2 umount /mnt
used=$(pool_field 6)
check_ge pool-provisioned 256 "${used%/*}" # 16 MiB of files = 256 blocks of 64 KiB

# Snapshot (origin suspended), then change the origin: the snapshot keeps the old data.
step suspend dmsetup suspend thin0
step create-snap dmsetup message pool 0 "create_snap 1 0"
step resume dmsetup resume thin0
step activate-snap dmsetup create snap1 --table "0 $thin_sectors thin /dev/mapper/pool 1"
step mount-origin mount /dev/mapper/thin0 /mnt
step overwrite-origin overwrite_f1
step umount-origin umount /mnt
step drop-caches-2 drop_caches /dev/mapper/thin0
step mount-snap mount -o ro,noload /dev/mapper/snap1 /mnt
step snap-keeps-old-data verify /tmp/sums
step umount-snap umount /mnt
step mount-origin-2 mount /dev/mapper/thin0 /mnt
step origin-has-new-data verify /tmp/sums-new
step umount-origin-2 umount /mnt
used2=$(pool_field 6)
check_ge copy-on-write-allocated $((${used%/*} + 64)) "${used2%/*}" # 4 MiB rewritten = 64 blocks

step set-transaction dmsetup message pool 0 "set_transaction_id 0 1"
txn=$(pool_field 4)
check_eq transaction-1 1 "$txn"
step remove-snap dmsetup remove snap1
step remove-thin dmsetup remove thin0
step remove-pool dmsetup remove pool
left=$(dmsetup ls)
check_eq no-dm-devices "No devices found" "$left"
step guest-thin_check thin_check "$meta"
step guest-thin_dump sh -c "thin_dump '$meta' >/vmtest/out/guest.xml"
