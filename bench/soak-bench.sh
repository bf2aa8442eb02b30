#!/usr/bin/env bash
# The long soak (make bench): tests/soak.t for SKIFF_BENCH_SOAK_SECONDS
# (default 600) instead of make check's 30 s. 16 images behind a web server
# that fails on purpose, a 24 MiB cache limit that keeps evicting, 64
# readers checking every byte, 4 images mounted and unmounted in turn.
# Prints what was counted, before and after: a pass/fail soak, no
# baseline (the figures that matter are zeros and equalities).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
secs=${SKIFF_BENCH_SOAK_SECONDS:-600}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "== soak: ${secs} s of faults, eviction, mounts and 64 readers (tests/soak.t)"
SKIFF_SOAK_SECONDS=$secs bash "$ROOT/tests/soak.t" >"$out" 2>&1
st=$?
pick() { grep -m 1 -E "$1" "$out" | sed 's/^# //; s/^ok [0-9]* - //; s/^not ok [0-9]* - /FAILED: /'; }
printf '| %s | %s |\n' "what" "measured" "---" "---"
printf '| %s | %s |\n' \
	"readers of 6 images, all along" "$(pick '^# readers of 6 images' | sed 's/readers of 6 images: //')" \
	"readers going from 3 images to 3 others, last run" "$(pick '^# their last run' | sed 's/their last run: //')" \
	"faults injected" "$(pick 'faults injected' | sed 's/.*\.\.\. //')" \
	"server requests failed on purpose" "$(pick 'failed requests as told' | sed 's/.*(\(.*\))/\1/')" \
	"mount/read/unmount cycles" "$(pick 'mounts, reads and unmounts' | sed 's/.*\.\.\. //')" \
	"chunks evicted" "$(pick 'chunks were evicted' | sed 's/.*(\(.*\))/\1/')" \
	"wrong chunks caught by digest" "$(pick 'wrong bytes from the server' | sed 's/.*(\(.*\))/\1/')" \
	"before (serving process)" "$(pick '^# before:' | sed 's/before: //')" \
	"after" "$(pick '^# after:' | sed 's/after: //')"
if [ "$st" = 0 ]; then
	echo "verdict: PASS (no wrong byte, no hang, no growth)"
else
	echo "verdict: FAIL"
	grep -A 6 "^not ok" "$out" | head -n 40
fi
exit "$st"
