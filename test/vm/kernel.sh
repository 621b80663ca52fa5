#!/bin/bash
# test/vm/kernel.sh : print the cached directory of a Debian kernel for the test VM, fetching it
# first if needed: DIR/vmlinuz and DIR/lib/modules/KVER/ (with a generated modules.dep).
#
# The kernel is the newest linux-image-6.1.0-N-cloud-amd64 that apt knows (it has nbd.ko,
# dm-thin-pool.ko, xfs.ko and the virtio drivers; ext4 is built in). THIND_VM_KERNEL=KVER
# (e.g. 6.1.0-56-cloud-amd64) pins one. apt is asked at most once a day (asking costs over a
# second per boot); the answer is kept in CACHE/kernel/selected. Offline, the newest cached
# kernel is used.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

newest_kver() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null |
		awk '{ sub(/^linux-image-/, "", $1); print $1 }' | sort -V | tail -n 1
}

vm_cache
sel=$VM_CACHE/kernel/selected
kver=${THIND_VM_KERNEL:-}
if [ -z "$kver" ] && [ -n "$(find "$sel" -mmin -1440 2>/dev/null)" ]; then
	kver=$(cat "$sel")
	[ -e "$VM_CACHE/kernel/$kver/.complete" ] || kver=
fi
asked=
[ -n "$kver" ] || { kver=$(newest_kver); asked=1; }
if [ -z "$kver" ] && [ "$(id -u)" = 0 ]; then
	apt-get update -qq >&2 || true
	kver=$(newest_kver)
fi
if [ -z "$kver" ]; then # offline: newest cached kernel
	kver=$(find "$VM_CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete 2>/dev/null |
		awk -F/ '{ print $(NF-1) }' | sort -V | tail -n 1)
	[ -n "$kver" ] || vm_die "apt knows no linux-image-6.1.0-*-cloud-amd64 and none is cached"
fi
dir=$VM_CACHE/kernel/$kver
if [ ! -e "$dir/.complete" ]; then
	vm_log "fetching linux-image-$kver"
	bb=$(vm_busybox)
	tmp=$(mktemp -d "$VM_CACHE/.kernel.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	vm_apt_download "linux-image-$kver" "$tmp"
	dpkg-deb -x "$tmp/linux-image-${kver}"_*.deb "$tmp/x" || vm_die "dpkg-deb -x failed"
	# Debian's postinst runs depmod; the package itself ships no modules.dep.
	"$bb" depmod -b "$tmp/x" "$kver" || vm_die "depmod failed"
	mkdir -p "$tmp/k/lib"
	mv "$tmp/x/boot/vmlinuz-$kver" "$tmp/k/vmlinuz"
	mv "$tmp/x/boot/config-$kver" "$tmp/k/config"
	mv "$tmp/x/lib/modules" "$tmp/k/lib/modules"
	touch "$tmp/k/.complete"
	rm -rf "$dir" && mkdir -p "$(dirname "$dir")" && mv "$tmp/k" "$dir"
fi
[ -z "$asked" ] || echo "$kver" >"$sel"
echo "$dir"
