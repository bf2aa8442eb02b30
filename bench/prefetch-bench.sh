#!/usr/bin/env bash
# prefetch-bench.sh: time from mount to "program finished" for a program
# started from a Debian image (python3 -c 'import json' in a debootstrap
# root filesystem), through skiffd's fanotify frontend, with every backend
# read going through one link of SKIFF_BENCH_BPS bytes/s (default 100
# Mbit/s; the local store's test throttle, shared by all reads):
#
#   full copy      the baseline: fetch the whole image first
#                  (skiff prefetch --all), then run the program
#   cold, lazy     mount and run: only what the program reads is fetched
#   list, first    the image rebuilt with a prefetch list recorded by
#                  `skiff trace` during the lazy run: mount, fetch the
#                  list (skiff prefetch), then run
#   list, at once  the same, running the program right after mount while
#                  skiffd fetches the list in the background
#
# Each mode starts from an empty cache and dropped page caches; the median
# of SKIFF_BENCH_RUNS runs (default 3) counts. Prints a table with each
# mode's speed-up over the full copy and the bytes it fetched against the
# image size, then the goals. Exits non-zero only on errors.
# SKIFF_BENCH_SKIFFD_ARGS adds skiffd options (for example "--ahead 16M").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
RUNS=${SKIFF_BENCH_RUNS:-3}
BPS=${SKIFF_BENCH_BPS:-12500000}
EXTRA=${SKIFF_BENCH_SKIFFD_ARGS:-}	# more skiffd options, split on spaces
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/prefetch}
PROG=(/usr/bin/python3 -c 'import json; print(json.dumps({"ok": 1}))')
MNT=$OUT/mnt
. "$ROOT/bench/lib.sh"

die() { echo "prefetch-bench: $*" >&2; exit 1; }
note() { echo "prefetch-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "build first (make)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[[ $BPS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_BPS must be bytes per second"

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	bench_stop_skiffd
	rm -rf "$OUT"
}
trap cleanup EXIT

note "a Debian root filesystem with python3 (debootstrap once, then cached)"
rootfs=$(SKIFF_ROOTFS_INCLUDE=python3 "$ROOT/scripts/test-rootfs.sh")
[ -x "$rootfs/usr/bin/python3" ] || die "no python3 in $rootfs"
rm -rf "$OUT"
mkdir -p "$OUT" "$MNT"
note "building the image of $rootfs"
"$SKIFF" build -q "$rootfs" "$OUT/store:plain"
stored=$("$SKIFF" inspect --json "$OUT/store:plain" | jq '[.blobs[].stored_size] | add')

export SKIFF_SOCKET=$OUT/sock
drop() { bench_drop_caches; }
metric() {
	curl -s --unix-socket "$OUT/sock" http://skiffd/metrics |
		awk -v n="$1" '$1 == n { print $2 }'
}
median() { bench_median; }
start() { # an empty cache, a throttled store
	# shellcheck disable=SC2086
	SKIFF_TEST_FETCH_BPS=$BPS bench_start_skiffd "$OUT" $EXTRA "$@" || die "skiffd did not start"
	drop
}
stop() { bench_stop_skiffd; }
run_prog() {
	[ "$(chroot "$MNT" "${PROG[@]}")" = '{"ok": 1}' ] || die "the program failed in the image"
}
now() { date +%s.%N; }

# one run of a mode: prints "seconds fetched_bytes"
run_mode() {
	local mode=$1 t0 t1
	case $mode in
	full)
		start --prefetch-threads 2
		t0=$(now)
		"$SKIFF" prefetch --all "$OUT/store:plain" >/dev/null
		"$SKIFF" mount "$OUT/store:plain" "$MNT" >/dev/null
		run_prog ;;
	lazy)
		start
		t0=$(now)
		"$SKIFF" mount "$OUT/store:plain" "$MNT" >/dev/null
		run_prog ;;
	list-first)
		start
		t0=$(now)
		"$SKIFF" mount "$OUT/store:pf" "$MNT" >/dev/null
		"$SKIFF" prefetch "$MNT" >/dev/null
		run_prog ;;
	list-now)
		start
		t0=$(now)
		"$SKIFF" mount "$OUT/store:pf" "$MNT" >/dev/null
		run_prog ;;
	esac
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc) $(metric skiff_fetched_bytes_total)"
	"$SKIFF" umount "$MNT" >/dev/null
	stop
}

note "recording a trace of the program (cold, lazy)"
start
"$SKIFF" mount "$OUT/store:plain" "$MNT" >/dev/null
"$SKIFF" trace start "$MNT" >/dev/null
run_prog
"$SKIFF" trace stop -o "$OUT/trace" "$MNT" 2>/dev/null
"$SKIFF" umount "$MNT" >/dev/null
stop
note "trace: $(grep -vc '^#' "$OUT/trace") files; rebuilding with it as the prefetch list"
"$SKIFF" build -q --prefetch-list "$OUT/trace" "$rootfs" "$OUT/store:pf"

modes=(full lazy list-first list-now)
declare -A secs bytes
for ((r = 1; r <= RUNS; r++)); do
	for m in "${modes[@]}"; do
		# not a process substitution: the mode's umount and stop must
		# be over before the next mode starts
		run_mode "$m" >"$OUT/result"
		read -r s b <"$OUT/result"
		secs[$m]+="$s "
		bytes[$m]=$b
		note "run $r $m: ${s}s, $b bytes fetched"
	done
done

full=$(tr ' ' '\n' <<<"${secs[full]}" | grep . | median)
printf '\nprefetch-bench: mount to "python3 -c import json" finished, %s runs (median),\n' "$RUNS"
printf 'backend: local store through one %s Mbit/s link; image %s stored bytes\n\n' \
	"$(echo "scale=1; $BPS * 8 / 1000000" | bc)" "$stored"
printf '%-12s %9s %9s %14s %9s\n' mode seconds speedup "bytes fetched" "of image"
printf '%-12s %9s %9s %14s %9s\n' ------------ --------- --------- -------------- ---------
for m in "${modes[@]}"; do
	s=$(tr ' ' '\n' <<<"${secs[$m]}" | grep . | median)
	printf '%-12s %9.2f %8.1fx %14s %8.1f%%\n' "$m" "$s" "$(echo "$full / $s" | bc -l)" \
		"${bytes[$m]}" "$(echo "100 * ${bytes[$m]} / $stored" | bc -l)"
done
lf=$(tr ' ' '\n' <<<"${secs[list-first]}" | grep . | median)
speed=$(echo "$full / $lf" | bc -l)
share=$(echo "100 * ${bytes[list-first]} / $stored" | bc -l)
printf '\ngoals (with the prefetch list, fetched first):\n'
printf '  at least 5x faster than the full copy (%.1fx)  %s\n' "$speed" \
	"$([ "$(echo "$speed >= 5" | bc)" = 1 ] && echo MET || echo 'NOT met')"
printf '  bytes fetched at most 10%% of the image (%.1f%%)  %s\n' "$share" \
	"$([ "$(echo "$share <= 10" | bc)" = 1 ] && echo MET || echo 'NOT met')"
