#!/usr/bin/env bash
# restart-bench.sh: the long version of tests/crash-loop.t and
# tests/upgrade.t (fanotify, this host). 8 readers (build/readcheck) go
# through two lazily mounted images, every byte checked, once with
# nothing happening (the baseline), once while the serving process is
# SIGKILLed SKIFF_BENCH_KILLS times (default 200), once during
# SKIFF_BENCH_UPGRADES live upgrades (default 100), once while the holder
# is SIGKILLed SKIFF_BENCH_HOLDER_KILLS times (default 50) under
# build/fdsup, which plays systemd's fd store. Each run starts on an
# empty cache, the store behind a 2 MB/s link, so that the 128 MiB stay
# partly cold for about a minute (a complete blob raises no events at
# all). Prints read latency (p50, p99, max: the longest stall, link
# queueing included) and the ratio of each to the baseline of the same
# run; exits non-zero when a read failed, hung or
# returned a wrong byte, or a kill or upgrade was not survived.
#
# Environment: SKIFF_BENCH_OUT (scratch, default /var/tmp/skiff-bench/restart).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
READCHECK=$ROOT/build/readcheck
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/restart}
KILLS=${SKIFF_BENCH_KILLS:-200}
UPGRADES=${SKIFF_BENCH_UPGRADES:-100}
HOLDER_KILLS=${SKIFF_BENCH_HOLDER_KILLS:-50}
. "$ROOT/bench/lib.sh"

die() { echo "restart-bench: $*" >&2; exit 1; }
note() { echo "restart-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
FDSUP=$ROOT/build/fdsup
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] && [ -x "$READCHECK" ] && [ -x "$FDSUP" ] ||
	die "build first (make)"

cleanup() {
	for m in "$OUT"/mnt/*; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
	bench_stop_skiffd
}
trap cleanup EXIT
export SKIFF_SOCKET=$OUT/sock

rm -rf "$OUT"
mkdir -p "$OUT/src"
files=()
for img in a b; do
	mkdir -p "$OUT/src/$img"
	for i in $(seq 1 8); do
		head -c $((8 * 1024 * 1024)) /dev/urandom >"$OUT/src/$img/f$i"
		files+=("$img/f$i")
	done
	"$SKIFF" build -q --chunk-size 64K "$OUT/src/$img" "$OUT/store:$img"
done

server() { "$SKIFF" status --json 2>/dev/null | jq -er .pid 2>/dev/null; }
holder() { "$SKIFF" status --json 2>/dev/null | jq -er .holder_pid 2>/dev/null; }

# kill_loop N WHO: SIGKILLs the process WHO names N times, each once the
# one before was replaced
kill_loop() {
	local i pid new t0
	for ((i = 1; i <= $1; i++)); do
		pid=$($2) || return 1
		sleep "0.$(printf '%03d' $((RANDOM % 300)))"
		kill -KILL "$pid"
		t0=$SECONDS
		until new=$($2) && [ "$new" != "$pid" ]; do
			[ $((SECONDS - t0)) -lt 60 ] || return 1
			sleep 0.02
		done
	done
}

kills() { kill_loop "$KILLS" server; }
holders() { kill_loop "$HOLDER_KILLS" holder; }

upgrades() {
	local i
	cp "$SKIFFD" "$OUT/skiffd-a"
	cp "$SKIFFD" "$OUT/skiffd-b"
	for ((i = 1; i <= UPGRADES; i++)); do
		sleep "0.$(printf '%03d' $((RANDOM % 300)))"
		"$SKIFF" daemon upgrade --binary "$OUT/skiffd-$([ $((i % 2)) = 1 ] && echo a || echo b)" \
			>>"$OUT/upgrades.log" 2>&1 || return 1
	done
}

idle() { sleep 30; }

# run NAME ACTION: one run on an empty cache; its readcheck line in OUT/NAME
run() {
	local name=$1 action=$2 rc st=0 as=0
	bench_start_skiffd "$OUT" --readahead 0 --ahead 0 || die "skiffd did not start"
	for img in a b; do
		mkdir -p "$OUT/mnt/$img"
		"$SKIFF" mount "$OUT/store:$img" "$OUT/mnt/$img" >/dev/null || die "mount $img"
	done
	rm -f "$OUT/stop"
	"$READCHECK" -r 8 -d 300 -u "$OUT/stop" "$OUT/mnt" "$OUT/src" "${files[@]}" \
		>"$OUT/$name" 2>"$OUT/$name.err" &
	rc=$!
	"$action" || as=$?
	touch "$OUT/stop"
	wait "$rc" || st=$?
	for img in a b; do "$SKIFF" umount "$OUT/mnt/$img" >/dev/null; done
	bench_stop_skiffd
	[ "$as" = 0 ] || die "$name: the $action did not complete (log: $OUT/skiffd.log)"
	[ "$st" = 0 ] || die "$name: readers failed: $(cat "$OUT/$name") $(head -n 3 "$OUT/$name.err")"
	note "$name: $(cat "$OUT/$name")"
}

export SKIFF_TEST_FETCH_BPS=2000000
run baseline idle
run kills kills
run upgrades upgrades
BENCH_SKIFFD_WRAP="$FDSUP -s $OUT/notify.sock --"
run holders holders
unset BENCH_SKIFFD_WRAP

field() { awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$OUT/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '\n%-22s %9s %9s %9s %9s %11s %11s\n' "run" "reads" "p50 ms" "p99 ms" "max ms" "p99/base" "max/base"
for r in baseline kills upgrades holders; do
	printf '%-22s %9s %9s %9s %9s %11s %11s\n' \
		"$r$([ $r = kills ] && echo " ($KILLS)")$([ $r = upgrades ] && echo " ($UPGRADES)")$([ $r = holders ] && echo " ($HOLDER_KILLS)")" \
		"$(field $r reads)" "$(field $r p50_ms)" "$(field $r p99_ms)" "$(field $r max_ms)" \
		"$(ratio "$(field $r p99_ms)" "$(field baseline p99_ms)")" \
		"$(ratio "$(field $r max_ms)" "$(field baseline max_ms)")"
done
echo "every byte of every read checked: none wrong, failed or hung"
