# shellcheck shell=bash
# test/vm/thind/kernel.guest.sh : part 2 of the thind VM suite, the kernel's dm-thin on thind's
# pool files (virtio disks ameta, adata; thind stopped) and on a pool of its own made from
# scratch (bmeta all zeros, bdata). The host passes what thind reported before it stopped
# (A_* variables) and the checksums part 1 left (/vmtest/origin.sums, /vmtest/snap.sums).
# Out: origin2.sums (default after the kernel's writes), b.sums (thin 1), b-snap.sums (thin 2,
# its snapshot), b-marker.sum, kernel.txt.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
# shellcheck source=guest-lib.sh
. /vmtest/thind-lib.sh
ameta=$(disk ameta)
adata=$(disk adata)
bmeta=$(disk bmeta)
bdata=$(disk bdata)
vol_sectors=$((VOL_BYTES / 512))
# dmsetup status of a pool: 4 transaction id, 5 metadata used/total, 6 data used/total,
# 8 rw|ro|out_of_data_space, 11 needs_check|-; of a thin device: 4 mapped sectors, 5 highest
field() { dmsetup status "$1" | awk -v f="$2" '{ print $f }'; }
mkdir -p /snap

# ------------------------------------------------------------------ thind's pool, the kernel's dm-thin
a_sectors=$(blockdev --getsz "$adata")
check_eq adata-size $((A_DATA_BLOCKS * A_BLOCK_SECTORS)) "$a_sectors"
step poolA-create dmsetup create poolA --table "0 $a_sectors thin-pool $ameta $adata $A_BLOCK_SECTORS 16"
v=$(field poolA 8)
check_eq poolA-rw rw "$v"
v=$(field poolA 11)
check_eq poolA-no-needs_check - "$v"
v=$(field poolA 4)
check_eq poolA-transaction-as-thind "$A_TXID" "$v"
v=$(field poolA 6)
check_eq poolA-data-used-as-thind "$A_DATA_USED/$A_DATA_BLOCKS" "$v"
v=$(field poolA 5)
check_eq poolA-metadata-used-as-thind "$A_META_USED/$A_META_BLOCKS" "$v"
step thin-default dmsetup create thA --table "0 $vol_sectors thin /dev/mapper/poolA $A_DEFAULT_ID"
step thin-snap1 dmsetup create snA --table "0 $vol_sectors thin /dev/mapper/poolA $A_SNAP_ID"
v=$(field thA 4)
check_eq default-mapped-as-thind $((A_DEFAULT_MAPPED * A_BLOCK_SECTORS)) "$v"
v=$(field snA 4)
check_eq snap1-mapped-as-thind $((A_SNAP_MAPPED * A_BLOCK_SECTORS)) "$v"
step e2fsck-default e2fsck -fn /dev/mapper/thA
step e2fsck-snap1 e2fsck -fn /dev/mapper/snA
step mount-default mount /dev/mapper/thA /mnt
step default-files-from-nbd verify /mnt /vmtest/origin.sums
step mount-snap1 mount -o ro /dev/mapper/snA /snap
step snap1-files-from-nbd verify /snap /vmtest/snap.sums
step umount-snap1 umount /snap

# The kernel writes: new files, and 8 MiB over a file the snapshot shares (copy on write).
kernel_writes() {
	make_files /mnt/kernel 4 4
	local i
	mkdir -p /mnt/kernel/small
	for i in $(seq 40); do file_of $((i * 1013)) "/mnt/kernel/small/k$i"; done
	dd if=/dev/urandom of=/mnt/tree/big/huge.bin bs=1M count=8 seek=8 conv=notrunc status=none
	sync -f /mnt
}
used0=$(field poolA 6)
step kernel-writes kernel_writes
step sums-default sums /mnt /vmtest/out/origin2.sums
step umount-default umount /mnt
used1=$(field poolA 6)
# 16 MiB of new files + 8 MiB copied = 384 blocks at least
check_ge kernel-provisioned $((${used0%/*} + 384)) "${used1%/*}"
step drop-caches-kernel sh -c 'echo 3 >/proc/sys/vm/drop_caches'
step mount-snap1-again mount -o ro /dev/mapper/snA /snap
step snap1-unchanged-by-kernel verify /snap /vmtest/snap.sums
step umount-snap1-again umount /snap
step e2fsck-default-after e2fsck -fn /dev/mapper/thA
# A device of the kernel's own in thind's pool (id 9, 128 KiB written): thind adopts it next to
# its named volumes as orphan-9, sized to its 2 mapped blocks.
step create-thin-9 dmsetup message poolA 0 "create_thin 9"
step thin-9 dmsetup create th9 --table "0 131072 thin /dev/mapper/poolA 9"
step write-thin-9 dd if=/dev/urandom of=/dev/mapper/th9 bs=64k count=2 oflag=direct status=none
dd if=/dev/mapper/th9 bs=64k count=2 iflag=direct status=none | sha256sum | cut -d' ' -f1 >/vmtest/out/a9.sum
step remove-thin-9 dmsetup remove th9
v=$(field thA 4)
echo "default_mapped_sectors $v" >>/vmtest/out/kernel.txt
v=$(field snA 4)
echo "snap1_mapped_sectors $v" >>/vmtest/out/kernel.txt
step remove-snap1 dmsetup remove snA
step remove-default dmsetup remove thA
v=$(field poolA 6)
echo "poolA_data $v" >>/vmtest/out/kernel.txt
step remove-poolA dmsetup remove poolA
step guest-thin_check-A thin_check "$ameta"

# ------------------------------------------------------------------ a pool the kernel makes from scratch
step bmeta-is-zeros cmp -n 1048576 "$bmeta" /dev/zero
b_sectors=$(blockdev --getsz "$bdata")
step poolB-create dmsetup create poolB --table "0 $b_sectors thin-pool $bmeta $bdata 128 16"
v=$(field poolB 6)
check_eq poolB-empty "0/$((b_sectors / 128))" "$v"
step create-thin-1 dmsetup message poolB 0 "create_thin 1"
b_thin_sectors=$((B_THIN_BYTES / 512))
step thin-1 dmsetup create thB --table "0 $b_thin_sectors thin /dev/mapper/poolB 1"
# 4 KiB blocks (nbd-client -b 4096 in part 3; mke2fs picks 1 KiB below 512 MiB). The fs
# leaves the device's last 32 MiB alone; a marker goes into its last 64 KiB, so the
# highest mapped block (what thind sizes an adopted device by) is the device's last.
step mkfs-b mkfs.ext4 -q -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/thB $(((B_THIN_BYTES >> 20) - 32))M
step mount-b mount /dev/mapper/thB /mnt
b_files() {
	make_files /mnt/b 6 4
	mkdir -p /mnt/b/small
	local i
	for i in $(seq 50); do file_of $((i * 131)) "/mnt/b/small/s$i"; done
	sync -f /mnt
}
step write-b b_files
step sums-b sums /mnt /vmtest/out/b.sums
step umount-b umount /mnt
step e2fsck-b e2fsck -fn /dev/mapper/thB
step marker dd if=/dev/urandom of=/tmp/marker bs=64k count=1 status=none
step write-marker dd if=/tmp/marker of=/dev/mapper/thB bs=64k seek=$((B_THIN_BYTES / 65536 - 1)) oflag=direct status=none
sha256sum </tmp/marker | cut -d' ' -f1 >/vmtest/out/b-marker.sum
v=$(field thB 5)
check_eq thin-1-highest-mapped-is-last $((b_thin_sectors - 1)) "$v"

# The kernel snapshots thin 1 as thin 2 (origin suspended), then changes thin 1: thind adopts
# both and must keep the sharing the kernel set up (part 3 writes to thin 1 through thind).
step suspend-thin-1 dmsetup suspend thB
step create-snap-2 dmsetup message poolB 0 "create_snap 2 1"
step resume-thin-1 dmsetup resume thB
cp /vmtest/out/b.sums /vmtest/out/b-snap.sums
b_change() {
	dd if=/dev/urandom of=/mnt/b/f1 bs=1M count=2 conv=notrunc status=none
	rm /mnt/b/small/s1 /mnt/b/small/s2 /mnt/b/small/s3
	make_files /mnt/b2 2 4
	sync -f /mnt
}
step mount-b-again mount /dev/mapper/thB /mnt
step change-b b_change
step sums-b-after-snap sums /mnt /vmtest/out/b.sums
step umount-b-again umount /mnt
step snap-2 dmsetup create snB --table "0 $b_thin_sectors thin /dev/mapper/poolB 2"
step mount-snap-2 mount -o ro /dev/mapper/snB /snap
step snap-2-as-of-snapshot verify /snap /vmtest/out/b-snap.sums
step umount-snap-2 umount /snap
step remove-snap-2 dmsetup remove snB
step remove-thin-1 dmsetup remove thB
step remove-poolB dmsetup remove poolB
left=$(dmsetup ls)
check_eq no-dm-devices "No devices found" "$left"
step guest-thin_check-B thin_check "$bmeta"
