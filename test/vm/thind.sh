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
#   4. powercut thind inside the guest on virtio disks, a writer with FUA and FLUSH; the host
#              kills qemu at a random moment, THIND_POWER_CUTS times (20); every boot first
#              checks that all durable writes of the earlier ones survived; thin_check and
#              thind meta check after every cut                    (VM boots 4 .. 4+cuts)
#   5. csi     `thind csi` (controller and node) in the guest against thind on the host, the
#              kernel's NBD client: csi-sanity with the Node Service specs, a volume lifecycle
#              (ext4, xfs); nothing left attached, mounted or created        (VM boot 5+)
#
# Logs, kept after the run in $THIND_VM_LOGS (default $TMPDIR/thind-vm-logs): the consoles
# thind-{nbd,kernel,reread}.log, the daemons' thind-server-{A,B}.log, the guest's requests to
# the host thind-ctl.log. Their ends are printed when a part fails.
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
	local rc=$? s
	thind_stop_all
	# keep the daemons' logs and the host requests next to the console logs
	mkdir -p "$VM_LOGS"
	cp "$VM_CTL_LOG" "$VM_LOGS/thind-ctl.log" 2>/dev/null || true
	for s in "$w"/srv/*/; do
		[ -f "$s/log" ] && cp "$s/log" "$VM_LOGS/thind-server-$(basename "$s").log"
	done
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
# THIND_VM_PARTS="powercut" runs only the parts named (parts 2 and 3 need part 1 before them).
part() {
	local name=$1 t0=$SECONDS
	shift
	if [[ -n ${THIND_VM_PARTS:-} && " $THIND_VM_PARTS " != *" $name "* ]]; then
		echo "=== part $name: not in THIND_VM_PARTS, skipped"
		times+=("$(printf 'part %-8s skipped (THIND_VM_PARTS)' "$name")")
		return
	fi
	echo "=== part $name"
	"$@"
	times+=("$(printf 'part %-8s %4ds' "$name" $((SECONDS - t0)))")
}
collect() { # collect LOG : the boot time and the MEASURED lines of a console log
	local l b
	b=$(sed -n 's/^STEP boot ok \([0-9.]*\)s since kernel start.*/\1/p' "$1" | head -n 1)
	times+=("  boot $(basename "$1" .log): kernel start -> test script ${b}s")
	while IFS= read -r l; do measured+=("${l#MEASURED }"); done < <(grep -a '^MEASURED ' "$1" || true)
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
	hstep out1 test -s "$w/out1/origin.sums" -a -s "$w/out1/snap.sums"
	hstep thind-A-alive bash -c "kill -0 \$(cat '$w/srv/A/pid')"
}
part nbd part1

# ---------------------------------------------------------------------------- 2. kernel
b_thin_bytes=$((512 << 20))
part2() {
	local vols pool log=$VM_LOGS/thind-kernel.log
	vols=$(thind_cli A volume list --json)
	pool=$(thind_cli A pool status --json)
	vol() { jq -r --arg n "$1" ".[] | select(.name == \$n) | .$2" <<<"$vols"; }
	pst() { jq -r ".$1" <<<"$pool"; }
	# What thind reports is what the kernel must find (ids, usage, transaction id).
	A_DEFAULT_ID=$(vol default dev_id) A_SNAP_ID=$(vol snap1 dev_id)
	hstep stop-A thind_stop A
	hstep thin_check-A thin_check "$w/a/metadata"
	hstep thind-meta-check-A "$THIND" meta check "$w/a/metadata"
	mkdir -p "$w/b"
	truncate -s 64M "$w/b/metadata" # all zeros: the kernel formats it
	truncate -s 1G "$w/b/data"
	vm_boot -t 600 -m dm-thin-pool -d ameta="$w/a/metadata" -d adata="$w/a/data" \
		-d bmeta="$w/b/metadata" -d bdata="$w/b/data" \
		-e "VOL_BYTES=$vol_bytes" -e "B_THIN_BYTES=$b_thin_bytes" \
		-e "A_DEFAULT_ID=$A_DEFAULT_ID" -e "A_SNAP_ID=$A_SNAP_ID" \
		-e "A_DEFAULT_MAPPED=$(vol default mapped_blocks)" -e "A_SNAP_MAPPED=$(vol snap1 mapped_blocks)" \
		-e "A_BLOCK_SECTORS=$(($(pst block_size) / 512))" -e "A_TXID=$(pst transaction_id)" \
		-e "A_DATA_BLOCKS=$(pst data_blocks)" -e "A_DATA_USED=$(pst data_blocks_used)" \
		-e "A_META_BLOCKS=$(pst metadata_blocks)" -e "A_META_USED=$(pst metadata_blocks_used)" \
		-f "$glib" -f "$w/out1/origin.sums=/vmtest/origin.sums" -f "$w/out1/snap.sums=/vmtest/snap.sums" \
		-o "$w/out2" -l "$log" "$here/thind/kernel.guest.sh"
	collect "$log"
	hstep thin_check-A-after-kernel thin_check "$w/a/metadata"
	hstep thind-meta-check-A-after-kernel "$THIND" meta check "$w/a/metadata"
	hstep thin_check-B thin_check "$w/b/metadata"
	hstep thind-meta-check-B "$THIND" meta check "$w/b/metadata"
	# dm-thin keeps no device size: thind sizes an adopted device by its highest mapped block.
	local high
	high=$(thin_dump "$w/b/metadata" | awk '
		/<device / { dev = $0; sub(/.*dev_id="/, "", dev); sub(/".*/, "", dev) }
		dev == 1 && /origin_block="/ { b = $0; sub(/.*origin_block="/, "", b); sub(/".*/, "", b); if (b + 0 > m) m = b + 0 }
		dev == 1 && /origin_begin="/ { b = $0; sub(/.*origin_begin="/, "", b); sub(/".*/, "", b)
			l = $0; sub(/.*length="/, "", l); sub(/".*/, "", l); if (b + l - 1 > m) m = b + l - 1 }
		END { print m + 0 }')
	hstep B-highest-mapped-block-is-last [ $(((high + 1) * 65536)) = "$b_thin_bytes" ]
}
part kernel part2

# ---------------------------------------------------------------------------- 3. reread
part3() {
	local log=$VM_LOGS/thind-reread.log vols k
	k=$w/out2/kernel.txt
	hstep start-A thind_start A
	vols=$(thind_cli A volume list --json)
	hstep A-volumes-kept-kernel-device-adopted [ "$(jq -r '[.[] | "\(.name):\(.dev_id)"] | sort | join(",")' <<<"$vols")" = "default:$A_DEFAULT_ID,orphan-9:9,snap1:$A_SNAP_ID" ]
	hstep A-orphan-9-sized-to-2-blocks [ "$(jq -r '.[] | select(.name == "orphan-9") | .size' <<<"$vols")" = 131072 ]
	hstep A-default-mapped-as-kernel [ "$(jq -r '.[] | select(.name == "default") | .mapped_blocks * 128' <<<"$vols")" = "$(awk '$1 == "default_mapped_sectors" { print $2 }' "$k")" ]
	hstep A-snap1-mapped-as-kernel [ "$(jq -r '.[] | select(.name == "snap1") | .mapped_blocks * 128' <<<"$vols")" = "$(awk '$1 == "snap1_mapped_sectors" { print $2 }' "$k")" ]
	hstep A-data-used-as-kernel [ "$(thind_cli A pool status --json | jq -r '"\(.data_blocks_used)/\(.data_blocks)"')" = "$(awk '$1 == "poolA_data" { print $2 }' "$k")" ]
	hstep start-B thind_new B "$w/b"
	vols=$(thind_cli B volume list --json)
	hstep B-adopted-orphans [ "$(jq -r '[.[] | "\(.name) \(.dev_id) \(.size)"] | sort | join(",")' <<<"$vols")" = "orphan-1 1 $b_thin_bytes,orphan-2 2 $b_thin_bytes" ]
	thind_cli B volume list
	vm_boot -t 600 -m nbd -e "A_PORT=$(srv_get A port)" -e "B_PORT=$(srv_get B port)" \
		-e "VOL_BYTES=$vol_bytes" -e "B_THIN_BYTES=$b_thin_bytes" -f "$glib" \
		-f "$w/out2/origin2.sums=/vmtest/origin2.sums" -f "$w/out1/snap.sums=/vmtest/snap.sums" \
		-f "$w/out2/b.sums=/vmtest/b.sums" -f "$w/out2/b-snap.sums=/vmtest/b-snap.sums" \
		-f "$w/out2/b-marker.sum=/vmtest/b-marker.sum" -f "$w/out2/a9.sum=/vmtest/a9.sum" \
		-l "$log" "$here/thind/reread.guest.sh"
	collect "$log"
	hstep stop-A-final thind_stop A
	hstep stop-B-final thind_stop B
	hstep thin_check-A-final thin_check "$w/a/metadata"
	hstep thin_check-B-final thin_check "$w/b/metadata"
	hstep thind-meta-check-A-final "$THIND" meta check "$w/a/metadata"
	hstep thind-meta-check-B-final "$THIND" meta check "$w/b/metadata"
	hstep no-errors-in-thind-logs bash -c "! grep -h 'level=ERROR' '$w'/srv/*/log"
}
part reread part3

# ---------------------------------------------------------------------------- 4. powercut
part4() {
	local d=$w/cut cuts=${THIND_POWER_CUTS:-20} i log qpid runpid ms survived=0
	mkdir -p "$d"
	truncate -s 64M "$d/meta"
	truncate -s 1G "$d/data"
	truncate -s 64M "$d/state"
	hstep mkfs-state mkfs.ext4 -q -F "$d/state"
	hstep build-cutwriter bash -c "cd '$root' && CGO_ENABLED=0 go build -o '$d/cutwriter' ./test/vm/thind/cutwriter"
	: >"$d/floors"
	local disks=(-d meta="$d/meta" -d data="$d/data" -d state="$d/state" -f "$THIND" -f "$d/cutwriter")
	for i in $(seq 1 "$cuts"); do
		log=$VM_LOGS/thind-cut-$i.log
		rm -f "$log" # an older run's console would pass the wait below at once
		"$here/run.sh" -t 300 "${disks[@]}" -f "$d/floors=/vmtest/floors" -e MODE=cut -e "EPOCH=$i" \
			-e "SEED=$RANDOM" -l "$log" "$here/thind/powercut.guest.sh" >"$d/run-$i.out" 2>&1 &
		runpid=$!
		# The writer is running once its first line is out; then the cut comes at a random
		# moment in the next 0.2 to 3 s.
		hstep "cut-$i-writer-started" bash -c "for _ in \$(seq 2400); do grep -qa '^CW START' '$log' 2>/dev/null && exit 0; kill -0 $runpid 2>/dev/null || break; sleep 0.1; done; tail -n 40 '$log'; exit 1"
		ms=$((200 + RANDOM % 2800))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		qpid=$(pgrep -f "^qemu-system-x86_64 .*file=$d/meta," || true)
		hstep "cut-$i-kill-qemu" kill -9 "$qpid"
		wait "$runpid" || true
		if [ "$i" -gt 1 ]; then
			hstep "cut-$i-earlier-durable-writes-read-back" grep -qa '^CW VERIFY .* bad 0$' "$log"
		fi
		awk -v epoch="$i" -f "$here/thind/floors.awk" "$d/floors" "$log" >"$d/floors.new"
		mv "$d/floors.new" "$d/floors"
		hstep "cut-$i-thin_check" thin_check "$d/meta"
		hstep "cut-$i-thind-meta-check" "$THIND" meta check "$d/meta"
		survived=$((survived + 1))
		measured+=("power cut $i after ${ms} ms of writing: $(grep -ca '^CW [WU] ' "$log") writes answered, $(wc -l <"$d/floors") slots with a durable write so far")
	done
	log=$VM_LOGS/thind-cut-final.log
	vm_boot -t 300 "${disks[@]}" -f "$d/floors=/vmtest/floors" -e MODE=final -e EPOCH=0 -e SEED=0 \
		-l "$log" "$here/thind/powercut.guest.sh"
	hstep cut-final-durable-writes-read-back grep -qa '^CW VERIFY .* bad 0$' "$log"
	hstep cut-final-thin_check thin_check "$d/meta"
	hstep cut-final-thind-meta-check "$THIND" meta check "$d/meta"
	measured+=("power cuts survived: $survived of $cuts, $(wc -l <"$d/floors") slots checked against their last durable write")
}
part powercut part4

# ---------------------------------------------------------------------------- 5. csi
part5() {
	local d=$w/csi log=$VM_LOGS/thind-csi.log vols
	mkdir -p "$d"
	hstep build-csi-test bash -c "cd '$root' && CGO_ENABLED=0 go test -c -o '$d/csi.test' ./csi"
	hstep build-sockfwd bash -c "cd '$root' && CGO_ENABLED=0 go build -o '$d/sockfwd' ./test/vm/thind/sockfwd"
	thind_new C "$w/c" --data-size 8G --default-size 64M
	fwd() { exec "$d/sockfwd" "tcp:127.0.0.1:$1" "unix:$w/c/control.sock"; }
	vm_serve sockfwd fwd
	vm_boot -t 600 -m nbd -e "NBD_PORT=$(srv_get C port)" -e "CTL_PORT=$VM_PORT" \
		-f "$THIND" -f "$d/csi.test" -f "$d/sockfwd" -f "$(command -v resize2fs)" -f "$(command -v xfs_growfs)" \
		-l "$log" "$here/thind/csi.guest.sh"
	collect "$log"
	vm_stop "$VM_SERVER_PID"
	vols=$(thind_cli C volume list --json)
	hstep C-only-default-left [ "$(jq -r '[.[] | .name] | join(",")' <<<"$vols")" = default ]
	hstep stop-C thind_stop C
	hstep thin_check-C thin_check "$w/c/metadata"
	hstep thind-meta-check-C "$THIND" meta check "$w/c/metadata"
}
part csi part5
