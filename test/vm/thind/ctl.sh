#!/bin/bash
# test/vm/thind/ctl.sh : the control handler of the thind VM suite (run.sh -c). qemu runs it
# once per guest connection to 10.0.2.100:7; it answers one "host REQUEST..." of the guest:
#
#   status NAME             pool status of server NAME as "KEY VALUE" lines + data_file_bytes
#   volume NAME VOL         one volume as "KEY VALUE" lines
#   thind NAME ARGS...      the thind CLI against server NAME (volume snapshot/create/delete ...)
#   restart NAME            SIGTERM the daemon, wait for it, start it again on the same ports
#   metric NAME PREFIX      sum of the Prometheus samples whose line starts with PREFIX
#
# The environment (VM_WORK, THIND, VM_CTL_LOG) comes from test/vm/thind.sh through qemu.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
# shellcheck source=host.sh
. "$here/host.sh"

dispatch() {
	local req=${1:-}
	shift || true
	case $req in
	status) thind_status "$@" ;;
	volume) thind_volume "$@" ;;
	thind) thind_cli "$@" ;;
	restart) thind_restart "$@" ;;
	metric) thind_metric "$@" ;;
	*) echo "unknown request: $req $*"; return 2 ;;
	esac
}
vm_ctl_handle dispatch
