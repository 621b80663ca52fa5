#!/bin/bash
# test/vm/initramfs.sh KERNEL_DIR : print the path of the cached base initramfs for that kernel
# (from kernel.sh), building it first when one of its inputs changed: this script, lib.sh,
# guest/init, guest/lib.sh, the kernel, busybox or one of the host binaries copied in.
#
# Content: static busybox (applets in /usr/lib/busybox, last in PATH), the real host tools in
# TOOLS with every library ldd names, the modules in MODULES with their dependencies from
# modules.dep, /init and /vmtest/lib.sh. Per-run files are a second cpio layer (run.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TOOLS=(
	bash nbd-client
	mke2fs mkfs.ext4 e2fsck fsck.ext4 tune2fs dumpe2fs
	mkfs.xfs xfs_repair xfs_db xfs_io
	mount umount fstrim blkdiscard fsfreeze losetup blockdev blkid wipefs lsblk findmnt
	dmsetup thin_check thin_dump thin_ls thin_restore thin_repair thin_delta thin_trim
	thin_metadata_size
	dd sync sha256sum stat truncate timeout cmp
)
MODULES=(virtio_pci virtio_blk virtio_net nbd dm-thin-pool xfs loop)

kdir=${1:?usage: initramfs.sh KERNEL_DIR}
kver=$(basename "$(ls -d "$kdir"/lib/modules/*/)")
export PATH=$PATH:/usr/sbin:/sbin
vm_cache
bb=$(vm_busybox)

paths=()
for t in "${TOOLS[@]}"; do
	p=$(command -v "$t") || vm_die "host tool $t is missing (vm_need_harness installs it)"
	paths+=("$p")
done
key=$({
	cat "$0" "$VM_DIR/lib.sh" "$VM_DIR/guest/init" "$VM_DIR/guest/lib.sh"
	echo "$kver"
	stat -L -c '%n %s %Y' "$bb" "${paths[@]}"
} | sha256sum | cut -c1-16)
out=$VM_CACHE/initramfs/base-$kver-$key.cpio
if [ -e "$out" ]; then echo "$out"; exit 0; fi

vm_log "building base initramfs for $kver"
mkdir -p "$VM_CACHE/initramfs"
stage=$(mktemp -d "$VM_CACHE/.initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib/busybox,usr/lib64,etc,proc,sys,dev,run,tmp,mnt,root,vmtest}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$stage/$d"; done # merged /usr, as Debian 12

cp "$bb" "$stage/usr/bin/busybox"
for a in $("$bb" --list); do ln -s /usr/bin/busybox "$stage/usr/lib/busybox/$a"; done
ln -s busybox "$stage/usr/bin/sh"
for p in "${paths[@]}"; do vm_copy_elf "$stage" "$p"; done
[ -e /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$stage/etc/"
touch "$stage/etc/fstab"
ln -s /proc/self/mounts "$stage/etc/mtab"
echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'root:x:0:' >"$stage/etc/group"

# Modules and their dependencies (modules.dep lists them all); then a modules.dep for the subset.
mdir=lib/modules/$kver
mkdir -p "$stage/$mdir"
for m in "${MODULES[@]}"; do
	files=$(awk -v m="${m//-/_}" '{
		n = $1; sub(/:$/, "", n); sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n)
		if (n == m) { sub(/:$/, "", $1); print }
	}' "$kdir/$mdir/modules.dep")
	[ -n "$files" ] || vm_die "module $m not in $kdir/$mdir/modules.dep"
	for f in $files; do
		mkdir -p "$stage/$mdir/$(dirname "$f")"
		cp "$kdir/$mdir/$f" "$stage/$mdir/$f"
	done
done
cp "$kdir/$mdir"/modules.builtin* "$kdir/$mdir/modules.order" "$stage/$mdir/"
"$bb" depmod -b "$stage" "$kver" || vm_die "depmod of the initramfs modules failed"

install -m 755 "$VM_DIR/guest/init" "$stage/init"
install -m 644 "$VM_DIR/guest/lib.sh" "$stage/vmtest/lib.sh"

# Uncompressed: under TCG the kernel unpacks a plain cpio faster than it inflates a gzip one.
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) >"$stage.cpio" || vm_die "cpio failed"
mv "$stage.cpio" "$out"
# Keep the two newest images (another run may still be using the previous one).
find "$VM_CACHE/initramfs" -name "base-*.cpio" -printf '%T@ %p\n' | sort -rn | tail -n +3 |
	cut -d' ' -f2- | xargs -r rm -f
echo "$out"
