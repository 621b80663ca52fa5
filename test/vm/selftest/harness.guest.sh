# shellcheck shell=bash
# selftest/harness.guest.sh : guest half of selftest/harness.sh; MODE picks the behaviour.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
in_d_state() { grep -q '^State:.*D' "/proc/$1/status"; }
flag_set() { [ -e /tmp/flag ]; }
fails_midway() { echo "first command ran"; false; echo "not reached"; }
wait_gone() { while kill -0 "$1" 2>/dev/null; do sleep 0.2; done; }

case $MODE in
pass)
	check_eq env-odd-value "a b  'c' \"d\" \$e \\f *" "$ODD"
	sum=$(sha256sum /opt/blob | cut -d' ' -f1)
	check_eq injected-file "$BLOB_SUM" "$sum"
	if [ -e /vmtest/thind ]; then
		step static-go-binary /vmtest/thind --help
		step thind-says-what-it-is grep -q 'thin-provisioned volumes over NBD' "$STEP_OUT"
	fi
	dev=$(disk harness-disk)
	first=$(head -n 1 "$dev")
	check_eq disk-by-serial disk-by-serial "$first"
	# shellcheck disable=SC2016 # expanded by the inner bash
	step real-mount-first bash -c '[ "$(command -v mount)" = /usr/bin/mount ]'
	# shellcheck disable=SC2016
	step busybox-fallback bash -c '[ "$(command -v ip)" = /usr/lib/busybox/ip ]'
	(sleep 1 && touch /tmp/flag) &
	wait_for flag-appears 10 flag_set
	step out-file sh -c 'echo "written in the guest" >/vmtest/out/hello.txt'
	;;
fail) # errexit must stay on inside a step's function: "false" ends it, not the last command
	step before-failure true
	step deliberate fails_midway
	step after-failure true
	;;
stuck) # nbdkit delays every write by an hour: the write sits in D state, unkillable
	step connect nbd-client 10.0.2.2 "$NBD_PORT" /dev/nbd0 -N stalled
	dd if=/dev/zero of=/dev/nbd0 bs=4096 count=1 oflag=direct 2>/dev/null &
	pid=$!
	wait_for write-in-d-state 20 in_d_state "$pid"
	step sigkill-sent kill -9 "$pid"
	step sigkill-ignored in_d_state "$pid"
	watchdog 5
	step stuck-write wait_gone "$pid" # never returns: the watchdog must power off
	;;
sleep)
	echo "STEP sleeping (no watchdog: the host timeout must stop qemu)"
	sleep 3600
	;;
esac
