#!/usr/bin/env bash
# skiff convert benchmark: times `skiff convert` of a layered OCI image (a
# Debian 12 minbase system from scripts/test-rootfs.sh, plus a layer that
# adds 64 MiB and deletes files) against `umoci unpack` of the same image,
# what a runtime does to apply the layers (the baseline), with the page
# cache warm, and prints a table of ratios.
#
# It reports; it does not assert: it exits 0 whether or not skiff is
# faster, and non-zero only when something fails.
#
# Environment:
#   SKIFF_BENCH_OUT   scratch directory (default /var/tmp/skiff-bench/convert),
#                     the source image is kept there for later runs
#   SKIFF_BENCH_RUNS  timed runs per configuration, median taken (default 3)
#   SKIFF             skiff binary (default build/skiff of this repo)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
SKIFF=${SKIFF:-$repo/build/skiff}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/convert}
RUNS=${SKIFF_BENCH_RUNS:-3}

die() { echo "convert-bench: $*" >&2; exit 1; }
note() { echo "convert-bench: $*" >&2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[ -x "$SKIFF" ] || die "$SKIFF not found: run make first"
command -v umoci >/dev/null || die "umoci not found (scripts/setup.sh installs it)"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, umoci unpack of a system)"
ROOTFS=$("$repo/scripts/test-rootfs.sh") || die "no Debian root filesystem"

SRC=$OUT/src
if [ ! -f "$SRC/.done" ]; then
	note "making the source image in $SRC (once; kept for later runs)"
	rm -rf "$SRC" "$OUT/b"
	mkdir -p "$OUT"
	umoci init --layout "$SRC" && umoci new --image "$SRC:base"
	umoci unpack --image "$SRC:base" "$OUT/b" >/dev/null
	cp -a "$ROOTFS/." "$OUT/b/rootfs/"
	umoci repack --image "$SRC:l1" "$OUT/b"
	rm -rf "$OUT/b"
	umoci unpack --image "$SRC:l1" "$OUT/b" >/dev/null
	head -c $((64 << 20)) /dev/urandom >"$OUT/b/rootfs/opt/data.bin"
	rm -rf "$OUT/b/rootfs/usr/share/locale" "$OUT/b/rootfs/usr/share/doc"
	umoci repack --image "$SRC:l2" "$OUT/b"
	rm -rf "$OUT/b"
	touch "$SRC/.done"
fi
WORK=$(mktemp -d "$OUT/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

layers_bytes=$(du -sb "$SRC/blobs" | cut -f1)
files_bytes=$(du -sb --apparent-size "$ROOTFS" | cut -f1)
# warm the page cache with the source blobs
cat "$SRC"/blobs/sha256/* >/dev/null

# time_cmd NAME CMD...: median wall seconds of RUNS runs; the output of
# each run is removed before the next
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -A T
run() {
	local name=$1 i s e
	shift
	for ((i = 0; i < RUNS; i++)); do
		rm -rf "$WORK/o"
		s=$(date +%s.%N)
		"$@" >/dev/null 2>&1 || die "$name failed: $*"
		e=$(date +%s.%N)
		echo "$e - $s" | bc
	done | median >"$WORK/t"
	T[$name]=$(cat "$WORK/t")
	rm -rf "$WORK/o"
}

load=$(awk '{ print $1 }' /proc/loadavg)
run umoci umoci unpack --image "$SRC:l2" "$WORK/o"
run skiff "$SKIFF" convert -q "oci:$SRC:l2" "oci:$WORK/o:x"
run skiff-none "$SKIFF" convert -q --compress none "oci:$SRC:l2" "oci:$WORK/o:x"
run skiff-j1 "$SKIFF" convert -q -j 1 "oci:$SRC:l2" "oci:$WORK/o:x"
"$SKIFF" convert -q "oci:$SRC:l2" "oci:$WORK/keep:x"
stored=$("$SKIFF" inspect --json "$WORK/keep:x" | awk -F': ' '/"stored_bytes"/ { gsub(",", "", $2); print $2 }')

printf '\nskiff convert vs umoci unpack: 2 layers, %d MiB compressed, ~%d MiB of files; median of %d, load %s\n\n' \
	$((layers_bytes >> 20)) $((files_bytes >> 20)) "$RUNS" "$load"
printf '| %-34s | %9s | %14s | %8s |\n' "what" "seconds" "MiB/s (layers)" "vs umoci"
printf '| %-34s | %9s | %14s | %8s |\n' "---" "---:" "---:" "---:"
for k in umoci skiff skiff-none skiff-j1; do
	case $k in
	umoci) d="umoci unpack (baseline)" ;;
	skiff) d="skiff convert (zstd -l 3)" ;;
	skiff-none) d="skiff convert --compress none" ;;
	skiff-j1) d="skiff convert -j 1" ;;
	esac
	printf '| %-34s | %9.2f | %14.0f | %7.2fx |\n' "$d" "${T[$k]}" \
		"$(echo "$layers_bytes / 1048576 / ${T[$k]}" | bc -l)" \
		"$(echo "${T[umoci]} / ${T[$k]}" | bc -l)"
done
printf '\nskiff image: %d MiB stored (zstd -l 3); "vs umoci" > 1 means skiff is faster\n' $((stored >> 20))
