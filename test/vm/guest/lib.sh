# shellcheck shell=bash
# /vmtest/lib.sh : guest-side helpers for test scripts (run by /init with bash). Start a guest
# script with ". /vmtest/lib.sh". It loads /vmtest/env (the runner's -e KEY=VAL), and turns on
# errexit: a command that fails outside a step ends the test with its line number.
#
#   step NAME CMD...          run CMD (in a subshell; shell functions work); print
#                             "STEP NAME ok 1.2s", or "STEP NAME FAIL ..." + its output, and end
#                             the test. Its output is kept in $STEP_OUT for later commands
#                             (and steps): fstrim -v ... then grep trimmed "$STEP_OUT".
#                             Conditions are steps too: step big-enough [ "$n" -gt 5 ]
#   check_eq NAME WANT GOT    "STEP NAME ok" if equal, else FAIL with both values
#   check_ge NAME MIN GOT     "STEP NAME ok" if the integer GOT >= MIN, else FAIL with both
#   wait_for NAME SECS CMD... poll CMD every 0.1 s until it succeeds, FAIL after SECS
#   disk SERIAL               print /dev/vdX of the virtio disk with that serial (waits 10 s)
#   watchdog SECS             re-arm the guest watchdog: power off SECS from now (for a phase
#                             that may hang; the boot-time one counts from boot)
#   fail MSG                  print "STEP <current step> FAIL MSG", kernel log tail, end test
#   mib N                     N MiB in bytes
#   host REQUEST...           ask the host (run.sh -c HANDLER): sends the words as one line to
#                             10.0.2.100:7, prints the handler's output, returns its exit status;
#                             gives up after HOST_TIMEOUT s (default 120) without an answer
# Capture values before checking them (v=$(cmd); check_eq x 1 "$v"): errexit sees a failing
# $(cmd) in an assignment, not in an argument list.
# Real util-linux/coreutils tools come first in PATH; busybox applets are the fallback
# (/usr/lib/busybox). Files put in /vmtest/out reach the host when run.sh has -o DIR.

set -Eeuo pipefail
shopt -s inherit_errexit
set -a
# shellcheck disable=SC1091
. /vmtest/env
set +a
STEP_OUT=/tmp/vmtest-step.out
VMTEST_PID=$$
VMTEST_T0=$(cut -d' ' -f1 /proc/uptime) # kernel lines before this are boot noise
: >"$STEP_OUT"

_now() { local up _; read -r up _ </proc/uptime; echo "$up"; }
_since() { awk -v a="$1" -v b="$(_now)" 'BEGIN { printf "%.1fs", b - a }'; }
_current() { echo "$1" >/run/vmtest.step; }

_on_err() { # ERR trap: a command outside a step failed
	local rc=$1 line=$2 cmd=$3
	if [ "$BASHPID" != "$VMTEST_PID" ]; then # inside a step's subshell: say where, leave
		echo "  at line $line: $cmd (exit $rc)" >&2
		exit "$rc"
	fi
	fail "line $line: $cmd (exit $rc)"
}
trap '_on_err $? $LINENO "$BASH_COMMAND"' ERR

_kernel_log() { # kernel messages since the test started (last 20)
	echo "  kernel log since the test started (last 20 lines):"
	dmesg | awk -v t0="$VMTEST_T0" '{ t = $0; sub(/^\[ */, "", t); if (t + 0 >= t0) print }' |
		tail -n 20 | sed 's/^/  | /'
}

fail() {
	trap - ERR
	echo "STEP $(cat /run/vmtest.step) FAIL $*"
	_kernel_log
	exit 1
}

step() {
	local name=$1 t0 rc=0
	shift
	_current "$name"
	t0=$(_now)
	# In the background so that errexit stays on inside (it is off in a "||" context).
	("$@") >"$STEP_OUT.new" 2>&1 </dev/null &
	wait $! || rc=$?
	mv "$STEP_OUT.new" "$STEP_OUT" # the next step may read the previous one's output
	if [ $rc -eq 0 ]; then
		echo "STEP $name ok $(_since "$t0")"
		return 0
	fi
	trap - ERR
	echo "STEP $name FAIL exit $rc after $(_since "$t0"): $*"
	tail -n 40 "$STEP_OUT" | sed 's/^/  | /'
	_kernel_log
	exit 1
}

check_eq() {
	_current "$1"
	[ "$2" = "$3" ] || fail "want <$2> got <$3>"
	echo "STEP $1 ok ($3)"
}

check_ge() {
	_current "$1"
	[ "$3" -ge "$2" ] 2>/dev/null || fail "want >= $2 got <$3>"
	echo "STEP $1 ok ($3 >= $2)"
}

check_le() {
	_current "$1"
	[ "$3" -le "$2" ] 2>/dev/null || fail "want <= $2 got <$3>"
	echo "STEP $1 ok ($3 <= $2)"
}

wait_for() {
	local name=$1 secs=$2 t0
	shift 2
	_current "$name"
	t0=$(_now)
	until "$@" >"$STEP_OUT" 2>&1; do
		if awk -v a="$t0" -v b="$(_now)" -v s="$secs" 'BEGIN { exit !(b - a > s) }'; then
			fail "timed out after ${secs}s waiting for: $* ($(tail -n 1 "$STEP_OUT"))"
		fi
		sleep 0.1
	done
	echo "STEP $name ok $(_since "$t0")"
}

disk() {
	local serial=$1 b
	for _ in $(seq 100); do
		for b in /sys/block/vd*; do
			[ "$(cat "$b/serial" 2>/dev/null)" = "$serial" ] && { echo "/dev/${b##*/}"; return 0; }
		done
		sleep 0.1
	done
	echo "STEP disk-$serial FAIL no virtio disk with serial $serial after 10 s" >&2
	return 1
}

watchdog() {
	local secs=$1 old
	old=$(cat /run/vmtest.watchdog 2>/dev/null || true)
	[ -z "$old" ] || kill "$old" 2>/dev/null || true
	(
		sleep "$secs"
		echo "VMTEST watchdog: ${secs}s since re-armed, step: $(cat /run/vmtest.step)"
		echo "VMTEST-RESULT $(cat /run/vmtest.nonce) FAIL watchdog"
		echo o >/proc/sysrq-trigger
	) >/dev/console 2>&1 </dev/null &
	echo $! >/run/vmtest.watchdog
}

mib() { echo $(($1 * 1048576)); }

host() {
	local fd line rc=''
	exec {fd}<>/dev/tcp/10.0.2.100/7 || { echo "host: no control channel (run.sh -c)" >&2; return 97; }
	printf '%s\n' "$*" >&"$fd"
	while IFS= read -r -t "${HOST_TIMEOUT:-120}" line <&"$fd"; do
		if [[ $line =~ ^VMHOST-RC\ ([0-9]+)$ ]]; then
			rc=${BASH_REMATCH[1]}
			break
		fi
		printf '%s\n' "$line"
	done
	exec {fd}>&-
	[ -n "$rc" ] || { echo "host: no answer within ${HOST_TIMEOUT:-120}s to: $*" >&2; return 98; }
	return "$rc"
}
