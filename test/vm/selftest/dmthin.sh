#!/bin/bash
# selftest/dmthin.sh : the kernel's dm-thin on host files. The host writes fresh metadata with
# thin_restore; the guest builds a pool on it (virtio disks meta and data), a thin volume with
# ext4 and a snapshot, checks them and removes everything; the host then checks the metadata
# with thin_check and thin_dump (and compares with the guest's thin_dump).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
vm_need_harness
vm_workdir
w=$VM_WORK

# 512 MiB of 64 KiB blocks (128 sectors): nr_data_blocks must match the data device.
truncate -s 16M "$w/meta"
truncate -s 512M "$w/data"
cat >"$w/fresh.xml" <<'XML'
<superblock uuid="" time="0" transaction="0" flags="0" version="2" data_block_size="128" nr_data_blocks="8192">
</superblock>
XML
hstep thin_restore thin_restore -q -i "$w/fresh.xml" -o "$w/meta"
hstep thin_check-fresh thin_check "$w/meta"

vm_boot -t 300 -m dm-thin-pool -d meta="$w/meta" -d data="$w/data" -o "$w/out" \
	-l "$VM_LOGS/dmthin.log" "$here/dmthin.guest.sh"

hstep thin_check thin_check "$w/meta"
hstep thin_dump bash -c "thin_dump '$w/meta' >'$w/host.xml'"
hstep dump-equals-guest-dump cmp "$w/host.xml" "$w/out/guest.xml"
hstep dump-transaction-1 grep -q '^<superblock .* transaction="1" .*data_block_size="128" nr_data_blocks="8192"' "$w/host.xml"
hstep dump-has-thin-0 grep -q '<device dev_id="0" mapped_blocks="[1-9]' "$w/host.xml"
hstep dump-has-snapshot-1 grep -q '<device dev_id="1" mapped_blocks="[1-9]' "$w/host.xml"
hstep data-written bash -c "[ \$(stat -c %b '$w/data') -gt 0 ]"
