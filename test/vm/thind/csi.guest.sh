# shellcheck shell=bash
# test/vm/thind/csi.guest.sh : part 5 of the thind VM suite, `thind csi` in the guest against
# "thind serve" on the host (server C: NBD at 10.0.2.2:$NBD_PORT, its control socket forwarded
# by the host's sockfwd at 10.0.2.2:$CTL_PORT). The controller and the node driver run here as
# `thind csi` processes; the node attaches with the kernel's NBD client over TCP. csi.test
# (the csi package's tests, built with go test -c) runs csi-sanity with its Node Service specs
# and the whole volume lifecycle, ext4 and xfs, against them, expanding volumes online (mount
# and block: staged, published, grown with no unstage); then kill -9 of a node driver in the
# middle of each node RPC, NodeExpandVolume included, each retried on a new process.
# shellcheck source=../guest/lib.sh
. /vmtest/lib.sh
run=/run/thind
mkdir -p "$run"
sockfwd "unix:$run/control.sock" "tcp:10.0.2.2:$CTL_PORT" >"$run/fwd.log" 2>&1 &
wait_for control-forwarded 10 test -S "$run/control.sock"

ctl_ep=unix://$run/controller.sock node_ep=unix://$run/node.sock
start_driver() { # start_driver MODE ENDPOINT LOG : `thind csi` in the background
	thind csi --mode "$1" --endpoint "$2" --node-id vm --control-socket "$run/control.sock" \
		--addr "10.0.2.2:$NBD_PORT" --state-dir "$run/csi" --log-level debug >>"$3" 2>&1 &
	echo $!
}
ctl_pid=$(start_driver controller "$ctl_ep" "$run/controller.log")
node_pid=$(start_driver node "$node_ep" "$run/node.log")
wait_for drivers-listen 30 test -S "$run/controller.sock" -a -S "$run/node.sock"

csitest() { # csitest NAME REGEXP [FLAGS] : the csi package's tests against the running drivers
	local name=$1 re=$2 rc
	shift 2
	{
		rc=0 # errexit would end the group at a failure, before the exit line
		csi.test -test.run "$re" -test.v -test.timeout 10m -csi.controller="$ctl_ep" -csi.node="$node_ep" \
			-csi.control="$run/control.sock" "$@" 2>&1 || rc=$?
		echo "csi.test exit $rc"
	} | tee "$run/$name.out"
	rc=$(sed -n 's/^csi.test exit //p' "$run/$name.out")
	if [ "$rc" != 0 ]; then
		# The step shows the last 40 lines: the failures last.
		echo "--- node driver warnings"
		grep -a 'level=WARN' "$run/node.log" | grep -a -v -E 'InvalidArgument|NotFound' | tail -n 4 | cut -c1-600
		echo "--- failures"
		grep -a -A8 -E '\[FAIL\]|--- FAIL|_test.go:[0-9]+: ' "$run/$name.out" | grep -a -v '^ *thind csi with' | head -n 26
		return 1
	fi
}
watchdog 400
step sanity-with-node-specs csitest sanity '^TestSanity$'
passed=$(sed -n 's/.*csi-sanity: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' "$run/sanity.out")
echo "MEASURED csi-sanity in the guest (kernel NBD client): $passed (passed failed)"
grep -a -o -E 'csi-sanity: .*|[0-9]+ (passed|skipped): .*' "$run/sanity.out"
node_specs=$(grep -a -c 'passed: .*Node Service' "$run/sanity.out" || true)
check_ge node-service-spec-groups-passed 1 "$node_specs"
step lifecycle csitest lifecycle '^(TestNodeLifecycle|TestNodeBlockVolumeGrowsOnline)$'
grep -a -E -- '--- (PASS|FAIL|SKIP)|not checked|grown online' "$run/lifecycle.out"
# Online expansion: both filesystems grew while staged and published.
online=$(grep -a -c 'grown online, staged and published' "$run/lifecycle.out" || true)
check_eq filesystems-grown-online 2 "$online"
# kill -9 of a node driver in the middle of each node RPC; the retry on a new one converges.
step kill-mid-rpc csitest kill '^TestNodeKilledMidRPCConverges$' -csi.thind="$(command -v thind)" -csi.nbd-addr="10.0.2.2:$NBD_PORT"
grep -a 'killed after' "$run/kill.out" || true
expand_killed=$(grep -a -c 'expand: killed after .* the retry succeeded' "$run/kill.out" || true)
check_eq expand-killed-and-retried 1 "$expand_killed"
echo "MEASURED NodeExpandVolume killed with its resize2fs running: $(grep -a -c 'resize2fs running: true' "$run/kill.out" || true) of 1"
step no-resize-left bash -c '! grep -qsx -e resize2fs -e xfs_growfs /proc/[0-9]*/comm'


# Nothing left behind: no NBD connection, no mount of an NBD device, no state.
no_nbd() { ! ls /sys/block/nbd*/pid >/dev/null 2>&1; }
step no-nbd-connected no_nbd
step no-nbd-mounts bash -c '! grep -q "^/dev/nbd" /proc/mounts'
v=$(find "$run/csi" -type f 2>/dev/null | wc -l)
check_eq no-staging-records 0 "$v"
kill "$ctl_pid" "$node_pid"
