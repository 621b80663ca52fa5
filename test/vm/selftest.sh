#!/bin/bash
# test/vm/selftest.sh [NAME...] : the harness's regression tests (selftest/NAME.sh; default:
# all of harness, nbd, dmthin), one after the other. Prints a summary with the time of each;
# exits 1 if one failed. Console logs stay in $THIND_VM_LOGS (default $TMPDIR/thind-vm-logs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(harness nbd dmthin)

vm_need_harness
# Fetch and build outside the timed tests (a no-op when cached).
"$here/initramfs.sh" "$("$here/kernel.sh")" >/dev/null

summary=() failed=0
for n in "${names[@]}"; do
	[ -x "$here/selftest/$n.sh" ] || vm_die "no selftest $n"
	echo "=== selftest $n"
	t0=$SECONDS
	if "$here/selftest/$n.sh"; then r=PASS; else r=FAIL failed=1; fi
	summary+=("$(printf '%-8s %s %4ds' "$n" "$r" $((SECONDS - t0)))")
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $failed
