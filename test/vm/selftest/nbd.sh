#!/bin/bash
# selftest/nbd.sh : the kernel's NBD client against nbdkit (memory plugin, 1 GiB) on the host:
# ext4 with one connection, then xfs with two (nbd-client -C 2, nbdkit advertises multi-conn).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
vm_need_harness
vm_need nbdkit:nbdkit nbdinfo:libnbd-bin
vm_workdir

nbdkit_memory() { exec nbdkit --foreground --exit-with-parent -i 127.0.0.1 -p "$1" memory 1G; }
vm_serve nbdkit nbdkit_memory
hstep nbdkit-multi-conn bash -c "nbdinfo nbd://127.0.0.1:$VM_PORT | grep -q 'can_multi_conn: true'"

# nbdinfo goes in with its libraries: the guest measures the server's allocation with it.
vm_boot -t 300 -m nbd -e "NBD_PORT=$VM_PORT" -f "$(command -v nbdinfo)" -l "$VM_LOGS/nbd.log" \
	"$here/nbd.guest.sh"
hstep nbdkit-alive kill -0 "$VM_SERVER_PID"
