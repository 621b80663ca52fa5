# shellcheck shell=bash
# test/vm/thind/powercut.guest.sh : one boot of part 4 of the thind VM suite, the power cuts.
# thind runs here, in the guest, on virtio disks: metadata and data as raw block devices, its
# data directory (catalog, sockets) on an ext4 disk. cutwriter (test/vm/thind/cutwriter)
# first checks that every write the earlier boots made durable is still there (/vmtest/floors,
# computed by the host from their consoles), then, with MODE=cut, writes until the host kills
# qemu; with MODE=final, thind is stopped cleanly and the test passes.
# Environment: MODE (cut|final), EPOCH, SEED.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
meta=$(disk meta)
data=$(disk data)
mkdir -p /state
step mount-state mount -t ext4 "$(disk state)" /state
thind serve --data-dir /state/pool --metadata-device "$meta" --data-device "$data" \
	--listen unix:/run/nbd.sock --metrics-addr off --default-size 128M \
	>/run/thind.log 2>&1 &
thind_pid=$!
thind_up() { [ -S /run/nbd.sock ] || { kill -0 "$thind_pid" 2>/dev/null || { cat /run/thind.log; exit 1; }; false; }; }
wait_for thind-up 60 thind_up
step verify-durable-writes cutwriter -socket /run/nbd.sock verify /vmtest/floors
grep '^CW VERIFY' "$STEP_OUT"
if [ "$MODE" = cut ]; then
	watchdog 200
	cutwriter -socket /run/nbd.sock write "$EPOCH" "$SEED" || { tail -n 20 /run/thind.log; fail "cutwriter stopped"; }
	fail "cutwriter returned before the cut"
fi
kill -TERM "$thind_pid"
rc=0
wait "$thind_pid" || rc=$?
check_eq thind-stopped-cleanly 0 "$rc"
step umount-state umount /state
