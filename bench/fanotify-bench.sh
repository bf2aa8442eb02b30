#!/usr/bin/env bash
# fanotify-bench.sh: lazy reads through skiffd's fanotify frontend on this
# host, against the same image's exported cache files on loop devices
# (the kernel's speed with everything local), plus skiffd's added latency
# per event. Prints a table and the goals; exits non-zero only on errors.
#
# Environment: SKIFF_BENCH_TREE (default /var/tmp/skiff-bench/tree, made by
# build-bench.sh when missing), SKIFF_BENCH_RUNS (median of N, default 3),
# SKIFF_BENCH_OUT (scratch, default /var/tmp/skiff-bench/fanotify).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
TREE=${SKIFF_BENCH_TREE:-/var/tmp/skiff-bench/tree}
RUNS=${SKIFF_BENCH_RUNS:-3}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/fanotify}
MNT=$OUT/mnt
. "$ROOT/bench/lib.sh"
loops=()

die() { echo "fanotify-bench: $*" >&2; exit 1; }
note() { echo "fanotify-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "build first (make)"

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	bench_stop_skiffd
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$OUT"
}
trap cleanup EXIT

if [ ! -d "$TREE" ]; then
	note "no input tree at $TREE: letting build-bench.sh make it"
	SKIFF_BENCH_RUNS=1 "$ROOT/bench/build-bench.sh" >/dev/null
fi
rm -rf "$OUT"
mkdir -p "$OUT" "$MNT"
bytes=$(find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
note "building the image of $TREE"
"$SKIFF" build -q "$TREE" "$OUT/store"
stored=$("$SKIFF" inspect --json "$OUT/store" | jq '[.blobs[].stored_size] | add')

drop() { bench_drop_caches; }
read_all() { # prints seconds
	local t0 t1
	drop
	t0=$(date +%s.%N)
	find "$1" -type f -print0 | xargs -0 cat >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
median() { bench_median; }
metrics() { curl -s --unix-socket "$OUT/sock" http://skiffd/metrics; }
metric() { metrics | awk -v n="$1" '$1 == n { print $2 }'; }

start() { bench_start_skiffd "$OUT" "$@" || die "skiffd did not start"; }
stop() { bench_stop_skiffd; }
lazy_mount() { SKIFF_SOCKET=$OUT/sock "$SKIFF" mount "$OUT/store" "$MNT" >/dev/null; }
lazy_umount() { SKIFF_SOCKET=$OUT/sock "$SKIFF" umount "$MNT" >/dev/null; }

# quantile Q PATH: from skiffd's histogram, linear inside the bucket
quantile() {
	metrics | awk -v q="$1" -v p="$2" '
		$1 ~ "^skiff_event_seconds_bucket\\{path=\"" p "\"" {
			match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
			n++; bound[n] = (le == "+Inf") ? -1 : le + 0; cum[n] = $2 }
		END {
			total = cum[n]; if (!total) { print "-"; exit }
			want = q * total; prev = 0; lo = 0
			for (i = 1; i <= n; i++) {
				if (cum[i] >= want) {
					if (bound[i] < 0) { printf ">%.0f", lo * 1e6; exit }
					f = (cum[i] == prev) ? 1 : (want - prev) / (cum[i] - prev)
					printf "%.1f", (lo + f * (bound[i] - lo)) * 1e6; exit }
				prev = cum[i]; lo = bound[i] }
		}'
}

# --- baseline: exported cache files on loop devices
note "exporting the cache files (baseline)"
opts=ro
for id in $("$SKIFF" export-cache "$OUT/store" "$OUT/export"); do
	l=$(losetup -f --show -r "$OUT/export/$id")
	loops+=("$l")
	opts="$opts,device=$l"
done
mount -t erofs -o "$opts" "$OUT/export/bootstrap" "$MNT"
loop=$(for _ in $(seq "$RUNS"); do read_all "$MNT"; done | median)
umount "$MNT"

# --- lazy: cold from the local store, then warm from the filled cache
cold_t=() warm_t=()
for r in $(seq "$RUNS"); do
	note "lazy run $r/$RUNS"
	rm -rf "$OUT/cache" "$OUT/work"
	start
	lazy_mount
	cold_t+=("$(read_all "$MNT")")
	fetched=$(metric skiff_fetched_bytes_total)
	events=$(metric skiff_events_total)
	lazy_umount
	lazy_mount
	warm_t+=("$(read_all "$MNT")")
	warm_events=$(($(metric skiff_events_total) - events))
	lazy_umount
	stop
done
cold=$(printf '%s\n' "${cold_t[@]}" | median)
warm=$(printf '%s\n' "${warm_t[@]}" | median)

# --- latency: 4 KiB misses with no read-ahead, then the same events with
#     the data already filled (the cache file stays marked: incomplete)
note "event latency"
rm -rf "$OUT/cache" "$OUT/work"
start --readahead 0
lazy_mount
{ find "$MNT" -type f -size -4k -size +0 -print0 || true; } | head -z -n 2000 >"$OUT/small" || true
drop
xargs -0 cat <"$OUT/small" >/dev/null
drop
xargs -0 cat <"$OUT/small" >/dev/null
miss50=$(quantile 0.5 fetched) miss99=$(quantile 0.99 fetched)
hit50=$(quantile 0.5 cached) hit99=$(quantile 0.99 cached)
nhit=$(metric 'skiff_event_seconds_count{path="cached"}')
nmiss=$(metric 'skiff_event_seconds_count{path="fetched"}')
lazy_umount
stop

mb() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
ratio() { awk -v a="$loop" -v b="$1" 'BEGIN { printf "%.2f", a / b }'; }
echo "skiff fanotify read benchmark"
echo "  machine: $(nproc) CPUs, $(uname -r); tree $TREE: $(find "$TREE" -type f | wc -l) files, $((bytes / 1048576)) MiB"
echo "  image: default options, $((stored / 1048576)) MiB stored; reads: find | xargs cat after drop_caches; median of $RUNS"
echo
printf '%-30s %8s %7s %6s\n' mode seconds MB/s ratio
printf '%-30s %8s %7s %6s\n' ------------------------------ -------- ------- ------
printf '%-30s %8.2f %7s %6s\n' "loop (exported cache files)" "$loop" "$(mb "$loop")" 1.00
printf '%-30s %8.2f %7s %6s\n' "lazy cold (local store)" "$cold" "$(mb "$cold")" "$(ratio "$cold")"
printf '%-30s %8.2f %7s %6s\n' "lazy warm (filled cache)" "$warm" "$(mb "$warm")" "$(ratio "$warm")"
echo
echo "  cold run: $((fetched / 1048576)) MiB fetched of $((stored / 1048576)) MiB stored, $events events; warm run: $warm_events events"
echo "  event to answer, data already filled: p50 ${hit50} us, p99 ${hit99} us ($nhit events)"
echo "  event to answer, 4 KiB miss from the local store: p50 ${miss50} us, p99 ${miss99} us ($nmiss events)"
echo
verdict() { if awk "BEGIN { exit !($1) }"; then echo MET; else echo "NOT MET"; fi; }
echo "goals:"
printf '  %-52s %s\n' "warm read >= 0.95 of loop ($(ratio "$warm"))" "$(verdict "$(ratio "$warm") >= 0.95")"
printf '  %-52s %s\n' "cold read >= 0.5 of loop ($(ratio "$cold"))" "$(verdict "$(ratio "$cold") >= 0.5")"
case $hit99 in
-|\>*) printf '  %-52s %s\n' "p99 of a filled event < 200 us ($hit99)" "NOT MET" ;;
*) printf '  %-52s %s\n' "p99 of a filled event < 200 us ($hit99 us)" "$(verdict "$hit99 < 200")" ;;
esac
