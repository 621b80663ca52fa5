#!/bin/bash
# test/vm/run.sh [options] GUEST_SCRIPT : boot a Linux VM (qemu, TCG) that runs GUEST_SCRIPT
# with bash as root, stream its serial console to stdout and a log file, and exit 0 only if the
# guest printed its PASS marker. Never hangs: the guest has a watchdog, qemu a host timeout.
#
#   -t SECS          hard host timeout for the whole run (default 300)
#   -w SECS          guest watchdog: powers off from inside (default: -t minus 15; 0 = none)
#   -d SERIAL=IMG    attach IMG (raw) as a virtio disk; the guest finds it with: disk SERIAL
#   -f FILE[=PATH]   put FILE into the guest at PATH (default /vmtest/NAME, which is in PATH),
#                    with the shared libraries ldd names (none for a static Go binary)
#   -e KEY=VALUE     environment variable for the guest script
#   -m MODULE        load MODULE before the test (e.g. nbd, dm-thin-pool); others load on demand
#   -k ARGS          more kernel command line, e.g. module parameters: -k nbd.nbds_max=8
#   -o DIR           copy the guest's /vmtest/out (and its dmesg) into DIR after the run
#   -l LOG           console log (default $VM_LOGS/NAME.log, VM_LOGS from lib.sh)
#   -M MIB           guest memory (default 1024)
#   -c CMD           host control channel: each guest connection to 10.0.2.100:7 runs CMD on the
#                    host (via sh -c) with stdin and stdout on that connection; guest: host REQ...
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,19s/^# \{0,1\}//p' "$0" >&2; exit 2; }
timeout_s=300 watchdog='' log='' outdir='' mem=1024 kargs='' ctl=''
disks=() files=() envs=() modules=()
while getopts t:w:d:f:e:m:k:o:l:M:c:h o; do
	case $o in
	t) timeout_s=$OPTARG ;;
	w) watchdog=$OPTARG ;;
	d) disks+=("$OPTARG") ;;
	f) files+=("$OPTARG") ;;
	e) envs+=("$OPTARG") ;;
	m) modules+=("$OPTARG") ;;
	k) kargs="$kargs $OPTARG" ;;
	o) outdir=$OPTARG ;;
	l) log=$OPTARG ;;
	M) mem=$OPTARG ;;
	c) ctl=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] && [ -f "$1" ] || usage
script=$1
name=$(basename "$script" .sh)
log=${log:-$VM_LOGS/$name.log}
[ -n "$watchdog" ] || watchdog=$((timeout_s > 30 ? timeout_s - 15 : timeout_s / 2))

vm_need_harness
t_start=$(date +%s.%N)
kdir=$("$VM_DIR/kernel.sh")
base=$("$VM_DIR/initramfs.sh" "$kdir")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thind-vm-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
layer=$tmp/layer
mkdir -p "$layer/vmtest/out"
cp "$script" "$layer/vmtest/test.sh"
nonce=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'VMTEST_NONCE=%s\nVMTEST_WATCHDOG=%d\nVMTEST_MODULES="%s"\n' \
	"$nonce" "$watchdog" "${modules[*]}" >"$layer/vmtest/vm.conf"
: >"$layer/vmtest/env"
for kv in "${envs[@]}"; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || vm_die "-e $kv: not KEY=VALUE"
	printf '%s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$layer/vmtest/env"
done
for fp in "${files[@]}"; do
	src=${fp%%=*} dest=/vmtest/$(basename "${fp%%=*}")
	[[ $fp == *=* ]] && dest=${fp#*=}
	[ -f "$src" ] || vm_die "-f $src: no such file"
	case $dest in /vmtest/lib.sh | /vmtest/test.sh | /vmtest/env | /vmtest/vm.conf | /init)
		vm_die "-f $fp: $dest belongs to the harness; give another guest path (-f FILE=PATH)" ;;
	esac
	vm_copy_elf "$layer" "$src" "$dest"
done

# shellcheck disable=SC2054 # commas belong to qemu's option syntax
qemu=(qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m "$mem" -nographic -accel tcg
	-no-reboot -kernel "$kdir/vmlinuz" -initrd "$tmp/initrd"
	-append "console=ttyS0 quiet panic=1 nbd.nbds_max=4$kargs"
	-device virtio-net-pci,netdev=n0,romfile=)
netdev=user,id=n0
if [ -n "$ctl" ]; then
	# libslirp forks "sh -c CMD"-like (g_shell_parse_argv) per connection, stdin/stdout = the
	# connection; a comma would end qemu's option value unless doubled.
	netdev="$netdev,guestfwd=tcp:10.0.2.100:7-cmd:${ctl//,/,,}"
fi
qemu+=(-netdev "$netdev")
i=0
for ds in "${disks[@]}"; do
	serial=${ds%%=*} img=${ds#*=}
	[ ${#serial} -le 20 ] || vm_die "-d $ds: virtio serials are at most 20 characters"
	[ -f "$img" ] || vm_die "-d $ds: no such image"
	qemu+=(-drive "file=$img,format=raw,if=none,id=d$i,cache=unsafe"
		-device "virtio-blk-pci,drive=d$i,serial=$serial")
	i=$((i + 1))
done
if [ -n "$outdir" ]; then
	truncate -s 256M "$tmp/out.img"
	qemu+=(-drive "file=$tmp/out.img,format=raw,if=none,id=dout,cache=unsafe"
		-device "virtio-blk-pci,drive=dout,serial=vmtest-out")
fi

# The kernel unpacks concatenated cpio archives; files of the later one win.
(cd "$layer" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) >"$tmp/layer.cpio"
cat "$base" "$tmp/layer.cpio" >"$tmp/initrd"

mkdir -p "$(dirname "$log")"
vm_log "booting $name (timeout ${timeout_s}s, watchdog ${watchdog}s, log $log)"
set +e
# sed: drop CRs and the terminal escapes SeaBIOS prints.
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 |
	sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tee "$log"
rc=${PIPESTATUS[0]}
echo # the console's last line has no newline
set -e
elapsed=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

if [ -n "$outdir" ]; then
	mkdir -p "$outdir"
	tar -xf "$tmp/out.img" -C "$outdir" 2>/dev/null || vm_log "no output archive from the guest"
fi
verdict=$(grep -a "^VMTEST-RESULT $nonce " "$log" | tail -n 1 | cut -d' ' -f3- || true)
oops=$(grep -a -m 3 -E 'Kernel panic|BUG: |Oops: |general protection fault' "$log" || true)
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	vm_log "$name: FAIL: host timeout after ${timeout_s}s (log $log)"
	exit 1
fi
if [ -n "$oops" ]; then
	vm_log "$name: FAIL: the kernel reported: $oops (log $log)"
	exit 1
fi
if [ "$verdict" != PASS ]; then
	vm_log "$name: FAIL: ${verdict:-no result marker} (qemu exit $rc, log $log)"
	exit 1
fi
vm_log "$name: PASS in ${elapsed}s (log $log)"
