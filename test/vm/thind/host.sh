# shellcheck shell=bash
# test/vm/thind/host.sh : host side of the thind VM suite, sourced by test/vm/thind.sh and by
# the control handler test/vm/thind/ctl.sh (which the guest reaches with "host REQUEST...").
# A server NAME is a thind daemon on a pool directory; its state lives in $VM_WORK/srv/NAME/
# (pool, port, mport = metrics port, args, pid, log), so that the handler, a process of its
# own, can stop and start the same daemon the suite started.
#
#   thind_new NAME POOLDIR [SERVE-ARGS...]  register and start a server (free ports picked now)
#   thind_start NAME / thind_stop NAME      start on the same ports / SIGTERM, bounded wait
#   thind_restart NAME                      stop + start (the guest's "host restart NAME")
#   thind_cli NAME ARGS...                  the CLI against that daemon (control socket)
#   thind_status NAME                       "KEY VALUE" lines: pool status + data file bytes
#   thind_stop_all                          stop every server (on exit)
# Needs VM_WORK and THIND (the static binary).

srv() { echo "$VM_WORK/srv/$1"; }
srv_get() { cat "$(srv "$1")/$2"; }

# alive PID : the process exists and is not a zombie.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		vm_port_open "$p" || { echo "$p"; return 0; }
	done
	return 1
}

thind_new() {
	local name=$1 pool=$2 s
	shift 2
	s=$(srv "$name")
	mkdir -p "$s" "$pool"
	echo "$pool" >"$s/pool"
	free_port >"$s/port"
	free_port >"$s/mport"
	: >"$s/args"
	[ $# -eq 0 ] || printf '%s\n' "$@" >"$s/args"
	thind_start "$name"
}

thind_start() {
	local name=$1 s pool port mport pid t0=$SECONDS args=()
	s=$(srv "$name")
	pool=$(srv_get "$name" pool) port=$(srv_get "$name" port) mport=$(srv_get "$name" mport)
	mapfile -t args <"$s/args"
	echo "=== $(date +%T) start" >>"$s/log"
	"$THIND" serve --data-dir "$pool" --listen "127.0.0.1:$port" --listen "unix:$pool/nbd.sock" \
		--metrics-addr "127.0.0.1:$mport" "${args[@]}" </dev/null >>"$s/log" 2>&1 &
	pid=$!
	echo "$pid" >"$s/pid"
	# Ready when NBD accepts and the control API answers (bounded: 60 s).
	while ((SECONDS - t0 < 60)); do
		if ! alive "$pid"; then
			echo "thind $name exited at start:" >&2
			tail -n 20 "$s/log" >&2
			return 1
		fi
		if vm_port_open "$port" && thind_cli "$name" pool status >/dev/null 2>&1; then
			echo "thind $name: pid $pid, nbd 127.0.0.1:$port, metrics :$mport, pool $pool, ready in $((SECONDS - t0))s"
			return 0
		fi
		sleep 0.1
	done
	echo "thind $name not ready after 60 s:" >&2
	tail -n 20 "$s/log" >&2
	return 1
}

# thind_stop NAME : SIGTERM, then wait up to 60 s for a graceful stop (commit); a daemon that
# has to be killed, or that logs an error while stopping, fails.
thind_stop() {
	local name=$1 s pid t0=$SECONDS lines
	s=$(srv "$name")
	pid=$(cat "$s/pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	lines=$(wc -l <"$s/log")
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		while alive "$pid"; do
			if ((SECONDS - t0 >= 60)); then
				kill -KILL "$pid" 2>/dev/null || true
				echo "thind $name did not stop within 60 s of SIGTERM (killed)" >&2
				: >"$s/pid"
				return 1
			fi
			sleep 0.1
		done
	fi
	: >"$s/pid"
	if tail -n +"$((lines + 1))" "$s/log" | grep -E 'level=(ERROR|WARN)'; then
		echo "thind $name logged errors while stopping" >&2
		return 1
	fi
	echo "thind $name stopped in $((SECONDS - t0))s"
}

thind_restart() { thind_stop "$1" && thind_start "$1"; }

thind_cli() {
	local name=$1
	shift
	THIND_DATA_DIR=$(srv_get "$name" pool) "$THIND" "$@"
}

# thind_status NAME : the pool status as "KEY VALUE" lines, plus data_file_bytes: what the data
# file occupies on the host's disk (st_blocks * 512).
thind_status() {
	local name=$1 pool
	pool=$(srv_get "$name" pool)
	thind_cli "$name" pool status --json | jq -r 'to_entries[] | select(.value | type != "object") | "\(.key) \(.value)"'
	echo "data_file_bytes $(($(stat -c %b "$pool/data") * 512))"
}

# thind_volume NAME VOL : the volume as "KEY VALUE" lines (thind volume show).
thind_volume() {
	thind_cli "$1" volume show "$2" | jq -r 'to_entries[] | select(.value | type != "object") | "\(.key) \(.value)"'
}

# thind_metric NAME METRIC : the sum of a Prometheus metric's samples whose line starts with
# METRIC (a name, optionally with the start of its labels, e.g. 'thind_volume_requests_total{op="flush",volume="x"}').
thind_metric() {
	local name=$1 m=$2 mport
	mport=$(srv_get "$name" mport)
	curl -sf --max-time 20 "http://127.0.0.1:$mport/metrics" |
		awk -v m="$m" 'index($0, m) == 1 { s += $NF } END { printf "%d\n", s }'
}

thind_stop_all() {
	local s
	for s in "$VM_WORK"/srv/*/; do
		[ -d "$s" ] || continue
		thind_stop "$(basename "$s")" >/dev/null 2>&1 || true
	done
}
