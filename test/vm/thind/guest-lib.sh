# shellcheck shell=bash
# test/vm/thind/guest-lib.sh : guest helpers of the thind VM suite (injected as
# /vmtest/thind-lib.sh; source it after /vmtest/lib.sh).

# shellcheck disable=SC2034 # used by the guest scripts
S=10.0.2.2 # the host, where thind listens

# hv NAME KEY / vv NAME VOL KEY : one value of the host's pool status / of a volume.
hv() { host status "$1" | awk -v k="$2" '$1 == k { print $2; f = 1 } END { exit !f }'; }
vv() { host volume "$1" "$2" | awk -v k="$3" '$1 == k { print $2; f = 1 } END { exit !f }'; }
metric() { host metric "$@"; }

# measured KEY=VALUE... : a line the host collects into the suite's summary.
measured() { echo "MEASURED $*"; }

nbd_size() { cat "/sys/block/$1/size"; }
size_is() { [ "$(nbd_size "$1")" = "$2" ]; }
# connections PORT : ESTABLISHED TCP connections to 10.0.2.2:PORT (/proc/net/tcp is hex)
connections() {
	awk -v r="$(printf '0202000A:%04X' "$1")" '$3 == r && $4 == "01"' /proc/net/tcp | wc -l
}
connections_are() { [ "$(connections "$1")" = "$2" ]; }
drop_caches() { blockdev --flushbufs "$1" && echo 3 >/proc/sys/vm/drop_caches; }

# file_of SIZE PATH : SIZE bytes of random data.
file_of() { head -c "$1" /dev/urandom >"$2"; }

# make_tree DIR : 207 MiB in 418 files of mixed sizes in nested directories:
# 1 x 48 MiB, 6 x 16 MiB, 16 x 2 MiB, 48 x 512 KiB, 100 x 64 KiB (+ 1 byte), 240 small files
# of odd sizes, 7 empty ones.
make_tree() {
	local d=$1 i
	mkdir -p "$d"/{big,mid/a,mid/b,small/x/y/z,tiny/{0,1,2,3,4,5,6,7},empty}
	file_of $((48 << 20)) "$d/big/huge.bin"
	for i in $(seq 6); do file_of $((16 << 20)) "$d/big/b$i.bin"; done
	for i in $(seq 16); do file_of $((2 << 20)) "$d/mid/a/m$i"; done
	for i in $(seq 48); do file_of $((512 << 10)) "$d/mid/b/k$i"; done
	for i in $(seq 100); do file_of $(((64 << 10) + (i % 2))) "$d/small/x/y/z/s$i"; done
	for i in $(seq 240); do file_of $((i * 97 + 1)) "$d/tiny/$((i % 8))/t$i.txt"; done
	for i in $(seq 7); do : >"$d/empty/e$i"; done
}

# make_files DIR N MIB : N files of MIB MiB.
make_files() {
	local d=$1 n=$2 m=$3 i
	mkdir -p "$d"
	for i in $(seq "$n"); do file_of $((m << 20)) "$d/f$i"; done
}

# sums ROOT OUT : checksums of every regular file under ROOT (paths relative to it), sorted.
sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) >"$2"; }

# verify ROOT SUMS : every file listed has its checksum, and ROOT has no other files.
verify() {
	local root=$1 list=$2 want got
	(cd "$root" && sha256sum -c --quiet "$list") || return 1
	want=$(awk '{ print $2 }' "$list")
	got=$(cd "$root" && find . -type f | LC_ALL=C sort)
	[ "$want" = "$got" ] || { echo "file lists differ:"; diff <(echo "$want") <(echo "$got") | head; return 1; }
	echo "$(wc -l <"$list") files verified under $root"
}

# total_bytes SUMS ROOT : bytes in the files listed.
total_bytes() { (cd "$2" && awk '{ print $2 }' "$1" | xargs -r stat -c %s | awk '{ s += $1 } END { print s + 0 }'); }

# is_zero DEV OFFSET LEN : LEN bytes of DEV at OFFSET (all multiples of 1 MiB) read as zeros.
is_zero() {
	local n=$(($3 >> 20))
	dd if="$1" bs=1M skip=$(($2 >> 20)) count="$n" iflag=direct status=none | cmp -n "$3" - /dev/zero
}

# range_sum DEV OFFSET LEN : sha256 of LEN bytes at OFFSET (multiples of 1 MiB).
range_sum() {
	dd if="$1" bs=1M skip=$(($2 >> 20)) count=$(($3 >> 20)) iflag=direct status=none | sha256sum | cut -d' ' -f1
}

# trimmed_bytes : the byte count of the last "fstrim -v" (in $STEP_OUT).
trimmed_bytes() { sed -n 's/.*(\([0-9]*\) bytes) trimmed.*/\1/p' "$STEP_OUT" | head -n 1; }

# le A B / ge A B : integer comparisons for wait_for.
le() { [ "$1" -le "$2" ]; }
hv_le() { local v; v=$(hv "$1" "$2") && [ "$v" -le "$3" ]; }
vv_le() { local v; v=$(vv "$1" "$2" "$3") && [ "$v" -le "$4" ]; }
