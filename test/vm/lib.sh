# shellcheck shell=bash
# test/vm/lib.sh: host-side library of the kernel VM test harness. Source it from bash.
#
# Host tests (see README.md) use:
#   vm_need CMD:PKG...       install the Debian packages of missing commands (apt-get)
#   vm_workdir               a temp dir removed on exit ($VM_WORK), servers stopped on exit
#   vm_serve NAME FN [ARGS]  start FN PORT ARGS... in the background on a free 127.0.0.1 port,
#                            wait until it listens; sets VM_PORT (guest reaches it at 10.0.2.2)
#   vm_boot RUN-ARGS...      boot a guest (test/vm/run.sh); returns 0 only on the PASS marker
#   hstep NAME CMD...        a checked host-side step, printed like the guest's "STEP" lines
#   vm_ctl_handle FN         body of a control handler (run.sh -c): one request line from the
#                            guest's "host" function -> FN WORDS..., output + "VMHOST-RC rc" back
# The harness itself uses vm_cache, vm_busybox and vm_copy_elf.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_CACHE=${THIND_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/thind-vm}
# shellcheck disable=SC2034 # used by run.sh and the tests
VM_LOGS=${THIND_VM_LOGS:-${TMPDIR:-/tmp}/thind-vm-logs} # console logs, kept after the run
VM_PIDS=()

vm_die() { echo "thind-vm: $*" >&2; exit 1; }
vm_log() { echo "thind-vm: $*" >&2; }

# vm_need CMD:PKG... : for every CMD not found, install PKG (as root, on Debian).
vm_need() {
	local want=() spec
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${spec%%:*}" ] ||
			want+=("${spec#*:}")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || vm_die "missing packages ${want[*]} (run as root, or install them)"
	vm_log "installing ${want[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${want[@]}" >&2 || vm_die "apt-get install ${want[*]} failed"
}

# vm_need_harness : the host tools the runner and the initramfs builder need.
vm_need_harness() {
	vm_need qemu-system-x86_64:qemu-system-x86 cpio:cpio flock:util-linux \
		timeout:coreutils dpkg-deb:dpkg apt-get:apt bash:bash tar:tar \
		nbd-client:nbd-client mkfs.ext4:e2fsprogs mkfs.xfs:xfsprogs xfs_io:xfsprogs \
		dmsetup:dmsetup thin_check:thin-provisioning-tools fstrim:util-linux
	export PATH=$PATH:/usr/sbin:/sbin
}

# vm_cache : create the cache dir and take its lock (held until the shell exits), so that
# concurrent runs do not download or build the same thing twice.
vm_cache() {
	mkdir -p "$VM_CACHE" || vm_die "cannot create cache $VM_CACHE"
	exec {VM_LOCK_FD}>"$VM_CACHE/lock"
	flock -w 600 "$VM_LOCK_FD" || vm_die "cache $VM_CACHE stayed locked for 600 s"
}

# vm_apt_download PKG DIR : apt-get download PKG into DIR (apt-get update once if unknown).
vm_apt_download() {
	local pkg=$1 dir=$2
	if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		[ "$(id -u)" = 0 ] || vm_die "apt does not know $pkg (run apt-get update as root)"
		apt-get update -qq >&2 || vm_die "apt-get update failed"
	fi
	# apt-get warns that it downloads "unsandboxed" as root when _apt cannot write DIR: harmless.
	(cd "$dir" && apt-get download -qq "$pkg" 2>&1 | grep -v 'unsandboxed' >&2 || true)
	ls "$dir/${pkg}_"*.deb >/dev/null 2>&1 || vm_die "apt-get download $pkg failed"
}

# vm_busybox : path of a static busybox (Debian's busybox-static, unpacked into the cache,
# never installed: it conflicts with the busybox package that initramfs-tools uses).
vm_busybox() {
	local d=$VM_CACHE/busybox
	if [ ! -x "$d/bin/busybox" ]; then
		local t
		t=$(mktemp -d "$VM_CACHE/.busybox.XXXXXX")
		vm_apt_download busybox-static "$t"
		dpkg-deb -x "$t"/busybox-static_*.deb "$t/x" || vm_die "dpkg-deb -x busybox-static failed"
		mkdir -p "$d/bin" && cp "$t/x/bin/busybox" "$d/bin/busybox" && rm -rf "$t" ||
			vm_die "cannot install busybox into $d"
	fi
	echo "$d/bin/busybox"
}

# vm_copy_path ROOT PATH : copy PATH (following symlinks) to ROOT/PATH, keeping a symlink
# PATH -> target when PATH is a link, so that ld.so and argv[0] see the host's names.
vm_copy_path() {
	local root=$1 p=$2 r
	r=$(readlink -f "$p") || vm_die "cannot resolve $p"
	# Canonical directory (/lib is usr/lib on Debian 12): a real "lib" directory in a later
	# cpio layer would replace the base's lib -> usr/lib link and hide /lib/modules.
	p=$(readlink -f "$(dirname "$p")")/$(basename "$p")
	[ -e "$root$r" ] || { mkdir -p "$root$(dirname "$r")" && cp -p "$r" "$root$r"; } ||
		vm_die "cannot copy $r"
	if [ "$p" != "$r" ] && [ ! -e "$root$p" ] && [ ! -L "$root$p" ]; then
		mkdir -p "$root$(dirname "$p")" && ln -s "$r" "$root$p" || vm_die "cannot link $p"
	fi
}

# vm_copy_elf ROOT FILE [DEST] : copy FILE to ROOT/DEST (default: its own path) and, if it is a
# dynamically linked ELF file, every shared library ldd names (a static Go binary has none).
vm_copy_elf() {
	local root=$1 f=$2 dest=${3:-} lib
	if [ -n "$dest" ]; then
		mkdir -p "$root$(dirname "$dest")" && cp -pL "$f" "$root$dest" || vm_die "cannot copy $f"
	else
		vm_copy_path "$root" "$f"
	fi
	[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
	ldd "$f" >/dev/null 2>&1 || return 0 # "not a dynamic executable"
	while read -r lib; do
		vm_copy_path "$root" "$lib"
	done < <(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# vm_workdir : VM_WORK, a temp dir removed on exit, with background servers stopped first.
vm_workdir() {
	VM_WORK=$(mktemp -d "${TMPDIR:-/tmp}/thind-vm.XXXXXX") || vm_die "mktemp failed"
	trap vm_cleanup EXIT
	trap 'exit 130' INT TERM
}

vm_cleanup() {
	local rc=$? pid
	for pid in "${VM_PIDS[@]}"; do vm_stop "$pid"; done
	[ -n "${VM_WORK:-}" ] && rm -rf "$VM_WORK"
	return $rc
}

# vm_port_open PORT : true if something accepts TCP connections on 127.0.0.1:PORT.
vm_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# vm_serve NAME FN [ARGS...] : run "FN PORT ARGS..." in the background (FN should exec the
# server, listening on 127.0.0.1:PORT), log to $VM_WORK/NAME.log, wait up to 20 s for it to
# listen, retry on another port if it died (port taken). Sets VM_PORT and VM_SERVER_PID.
vm_serve() {
	local name=$1 fn=$2 try port
	shift 2
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		vm_port_open "$port" && continue
		"$fn" "$port" "$@" >"$VM_WORK/$name.log" 2>&1 &
		VM_SERVER_PID=$!
		VM_PIDS+=("$VM_SERVER_PID")
		# shellcheck disable=SC2034 # VM_PORT is for the caller
		for _ in $(seq 200); do
			kill -0 "$VM_SERVER_PID" 2>/dev/null || break
			if vm_port_open "$port"; then
				VM_PORT=$port
				vm_log "$name listens on 127.0.0.1:$port"
				return 0
			fi
			sleep 0.1
		done
		kill "$VM_SERVER_PID" 2>/dev/null
		vm_log "$name did not listen on port $port (try $try): $(tail -3 "$VM_WORK/$name.log")"
	done
	vm_die "$name: could not start a server"
}

# vm_stop PID : stop one server started by vm_serve (bounded wait, then SIGKILL).
vm_stop() {
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	return 0
}

# vm_boot RUN-ARGS... : boot a guest with test/vm/run.sh (see its usage).
vm_boot() { "$VM_DIR/run.sh" "$@"; }

# hstep NAME CMD... : run a host-side check; print "STEP NAME ok" or "STEP NAME FAIL" + output
# and exit 1 on failure.
hstep() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if [ $rc -eq 0 ]; then echo "STEP host-$name ok"; return 0; fi
	echo "STEP host-$name FAIL rc=$rc: $*"
	printf '%s\n' "$out" | tail -n 30 | sed 's/^/  | /'
	exit 1
}

# vm_ctl_handle FN : serve one request of the guest's "host REQUEST..." (the handler of run.sh
# -c runs once per connection, stdin and stdout on it): read one line, run FN with its words
# (split on blanks, no quoting), send FN's output (stdout and stderr) and "VMHOST-RC <status>".
# Each request and its answer are appended to $VM_CTL_LOG when that is set.
vm_ctl_handle() {
	local fn=$1 line rc=0 out words=()
	IFS= read -r line || return 0
	read -r -a words <<<"$line"
	out=$("$fn" "${words[@]}" 2>&1 </dev/null) || rc=$?
	[ -z "$out" ] || printf '%s\n' "$out"
	echo "VMHOST-RC $rc"
	if [ -n "${VM_CTL_LOG:-}" ]; then
		{ echo "$(date +%T.%N | cut -c1-12) [$rc] $line"; [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'; } >>"$VM_CTL_LOG"
	fi
}
