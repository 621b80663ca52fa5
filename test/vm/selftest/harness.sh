#!/bin/bash
# selftest/harness.sh : the runner's own contract. One boot that passes (environment, injected
# files incl. a static Go binary, a disk by serial, wait_for, files back through -o), and three
# that must fail in a bounded time, each for the right reason: a failing step (named in the
# log), I/O stuck in D state on a stalled NBD server (the guest watchdog powers off), and a
# guest without watchdog (the host timeout stops qemu).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
vm_need_harness
vm_need nbdkit:nbdkit
vm_workdir
w=$VM_WORK
guest=$here/harness.guest.sh

# expect_fail NAME MAX_SECS REGEX RUN-ARGS... : the run must fail within MAX_SECS, and its
# output (console and runner messages) must match REGEX (grep -E).
expect_fail() {
	local name=$1 max=$2 re=$3 t0 rc took out=$w/$1.out
	shift 3
	echo "--- $name: this run must FAIL"
	t0=$SECONDS
	set +e
	vm_boot -l "$VM_LOGS/harness-$name.log" "$@" "$guest" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	took=$((SECONDS - t0))
	hstep "$name-fails" [ "$rc" -ne 0 ]
	hstep "$name-within-${max}s" [ "$took" -le "$max" ]
	hstep "$name-reason" grep -a -q -E "$re" "$out"
	hstep "$name-no-pass" bash -c "! grep -a -q 'VMTEST-RESULT [0-9a-f]* PASS' '$out'"
}

# --- a passing run
odd="a b  'c' \"d\" \$e \\f *"
head -c 1048576 /dev/urandom >"$w/blob"
sum=$(sha256sum "$w/blob" | cut -d' ' -f1)
printf 'disk-by-serial\n' >"$w/disk.img"
truncate -s 1M "$w/disk.img"
injected=(-f "$w/blob=/opt/blob")
if PATH=$PATH:/usr/local/go/bin command -v go >/dev/null; then
	hstep go-build-static bash -c "cd '$here/../../..' && CGO_ENABLED=0 PATH=\$PATH:/usr/local/go/bin go build -o '$w/thind' ./cmd/thind"
	hstep thind-is-static bash -c "! ldd '$w/thind' >/dev/null 2>&1"
	injected+=(-f "$w/thind")
else
	echo "STEP host-go-build-static SKIP: no go toolchain (the guest will not run thind)"
fi
vm_boot -t 120 -e MODE=pass -e "ODD=$odd" -e "BLOB_SUM=$sum" "${injected[@]}" \
	-d harness-disk="$w/disk.img" -o "$w/out" -l "$VM_LOGS/harness-pass.log" "$guest"
hstep out-file grep -q '^written in the guest$' "$w/out/hello.txt"
hstep out-dmesg grep -q 'Linux version' "$w/out/dmesg.txt"
hstep boot-line grep -a -q '^STEP boot ok' "$VM_LOGS/harness-pass.log"

# --- runs that must fail
expect_fail failing-step 120 '^STEP deliberate FAIL exit 1' -t 120 -e MODE=fail
log=$VM_LOGS/harness-failing-step.log
hstep failing-step-output grep -a -q '^  | first command ran' "$log"
hstep failing-step-line grep -a -q '^  |   at line [0-9]*: false (exit 1)' "$log"
hstep failing-step-errexit bash -c "! grep -a -q 'not reached' '$log'"
hstep failing-step-stops bash -c "! grep -a -q '^STEP after-failure' '$log'"

stalled() { exec nbdkit --foreground --exit-with-parent -i 127.0.0.1 -p "$1" --filter=delay memory 64M delay-write=3600; }
vm_serve stalled-nbdkit stalled
expect_fail watchdog 120 'VMTEST watchdog: 5s since re-armed, step: stuck-write' \
	-t 120 -m nbd -e MODE=stuck -e "NBD_PORT=$VM_PORT"
hstep stuck-in-d-state grep -a -q '^STEP sigkill-ignored ok' "$VM_LOGS/harness-watchdog.log"
vm_stop "$VM_SERVER_PID"

expect_fail host-timeout 40 'FAIL: host timeout after 20s' -t 20 -w 0 -e MODE=sleep
