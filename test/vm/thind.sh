#!/bin/bash
# test/vm/thind.sh : thind's end-to-end suite against a real Linux kernel (qemu TCG, see
# README.md). Exit 0 and "thind-vm-suite: PASS" only if every step passed.
#
#   1. nbd     the kernel's NBD client (nbd-client, 1 and 4 connections; thind attach) against
#              "thind serve" on the host: xfs, ext4, fstrim, blkdiscard, a snapshot of a frozen
#              fs, a daemon restart under a mounted fs                        (VM boot 1)
#   2. kernel  thind stopped, thin_check; the kernel's dm-thin activates thind's pool and
#              writes to it; the kernel makes a pool from scratch; thin_check   (VM boot 2)
#   3. reread  thind serves both pools: the kernel's writes, the snapshot and the kernel's
#              own pool (adopted as orphan-1) read back through NBD            (VM boot 3)
#
# Logs: consoles in $THIND_VM_LOGS (default $TMPDIR/thind-vm-logs)/thind-*.log, the daemons'
# logs and the host requests are printed when a part fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=thind/host.sh
. "$here/thind/host.sh"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

vm_need_harness
vm_need jq:jq curl:curl
vm_workdir
w=$VM_WORK
export VM_WORK THIND=$w/thind VM_CTL_LOG=$w/ctl.log
: >"$VM_CTL_LOG"
t_suite=$SECONDS
times=() measured=()

on_exit() {
	local rc=$?
	thind_stop_all
	if [ "$rc" != 0 ]; then
		echo "=== host requests of the guest (last 40 lines)"
		tail -n 40 "$VM_CTL_LOG" 2>/dev/null || true
		for s in "$w"/srv/*/; do
			[ -f "$s/log" ] || continue
			echo "=== thind $(basename "$s") log (last 30 lines)"
			tail -n 30 "$s/log"
		done
	fi
	summary "$rc"
	(exit "$rc")
	vm_cleanup
}
trap on_exit EXIT

summary() {
	echo "=== thind VM suite summary"
	printf '%s\n' "${times[@]}"
	printf '%s\n' "${measured[@]}"
	echo "total $((SECONDS - t_suite))s"
	if [ "$1" = 0 ]; then echo "thind-vm-suite: PASS"; else echo "thind-vm-suite: FAIL"; fi
}

# part NAME CMD... : run one part, time it; collect the guests' MEASURED lines from its logs.
part() {
	local name=$1 t0=$SECONDS
	shift
	echo "=== part $name"
	"$@"
	times+=("$(printf 'part %-8s %4ds' "$name" $((SECONDS - t0)))")
}
collect() { # collect LOG : MEASURED lines of a console log
	local l
	while IFS= read -r l; do measured+=("${l#MEASURED }"); done < <(grep -a '^MEASURED ' "$1" || true)
}
boot_time() { # boot_time LOG : the guest's "STEP boot ok N.NNs since kernel start"
	sed -n 's/^STEP boot ok \([0-9.]*\)s since kernel start.*/\1/p' "$1" | head -n 1
}

# ---------------------------------------------------------------------------- build
t0=$SECONDS
hstep go-build bash -c "cd '$root' && CGO_ENABLED=0 go build -o '$THIND' ./cmd/thind"
hstep thind-is-static bash -c "! ldd '$THIND' >/dev/null 2>&1"
kdir=$("$here/kernel.sh")
"$here/initramfs.sh" "$kdir" >/dev/null
times+=("$(printf 'build: go build + kernel + initramfs %4ds' $((SECONDS - t0)))")

vol_bytes=$((2 << 30))
ctl=$here/thind/ctl.sh
glib=$here/thind/guest-lib.sh=/vmtest/thind-lib.sh

# ---------------------------------------------------------------------------- 1. nbd
part1() {
	thind_new A "$w/a" --data-size 8G --default-size 2G
	local log=$VM_LOGS/thind-nbd.log
	vm_boot -t 900 -m nbd -c "$ctl" -e "NBD_PORT=$(srv_get A port)" -e "VOL_BYTES=$vol_bytes" \
		-f "$THIND" -f "$glib" -o "$w/out1" -l "$log" "$here/thind/nbd.guest.sh"
	collect "$log"
	times+=("boot (kernel start -> test script) $(boot_time "$log")s")
	hstep out1 test -s "$w/out1/origin.sums" -a -s "$w/out1/snap.sums"
	hstep thind-A-alive bash -c "kill -0 \$(cat '$w/srv/A/pid')"
}
part nbd part1
