#!/usr/bin/env bash
# net-bench.sh: skiffd's HTTP backend on loopback. An image holding one
# file of SKIFF_BENCH_NET_MIB (default 1024) MiB of random data is served
# by nginx on 127.0.0.1; a cold sequential read of the file through a
# lazy fanotify mount (skiffd fetching from nginx, verifying every chunk
# and writing it to its cache file) against curl downloading the same
# blob in one request, two ways: into a file on the cache's filesystem
# (what a download that keeps the bytes costs here) and into /dev/null
# (the transfer alone). Also the same image from the local store, the CPU
# skiffd spent per GiB next to what SHA-256 alone costs, and HTTP requests
# per chunk read. Exits non-zero only on errors.
#
# Environment: SKIFF_BENCH_RUNS (median of N, default 3),
# SKIFF_BENCH_NET_MIB, SKIFF_BENCH_OUT (default /var/tmp/skiff-bench/net),
# SKIFF_BENCH_AHEAD (skiffd --ahead, default 32M: a deployment that
# streams large files turns background read-ahead on),
# SKIFF_BENCH_SKIFFD_ARGS (more skiffd options, split on spaces, e.g.
# "--merge-limit 16M"); skiffd's other settings are its defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
RUNS=${SKIFF_BENCH_RUNS:-3}
MIB=${SKIFF_BENCH_NET_MIB:-1024}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/net}
AHEAD=${SKIFF_BENCH_AHEAD:-32M}
EXTRA=${SKIFF_BENCH_SKIFFD_ARGS:-}
MNT=$OUT/mnt
D=$OUT/skiffd
npid=
. "$ROOT/bench/lib.sh"

die() { echo "net-bench: $*" >&2; exit 1; }
note() { echo "net-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "build first (make)"
command -v nginx >/dev/null || die "nginx missing (scripts/setup.sh installs it)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	bench_stop_skiffd
	[ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
	rm -rf "$D" "$OUT/mnt" "$OUT/download" "$OUT/result"
}
trap cleanup EXIT

mkdir -p "$OUT/src" "$MNT"
if [ "$(stat -c %s "$OUT/src/big" 2>/dev/null || echo 0)" != $((MIB << 20)) ]; then
	note "making $MIB MiB of random data"
	head -c $((MIB << 20)) /dev/urandom >"$OUT/src/big"
	rm -rf "$OUT/www"
fi
if [ ! -d "$OUT/www/layout" ]; then
	note "building the image"
	"$SKIFF" build -q "$OUT/src" "$OUT/www/layout:big"
fi
info=$("$SKIFF" inspect --json "$OUT/www/layout:big")
blob=$(jq -r '.blobs[0].id' <<<"$info")
stored=$(jq '.blobs[0].stored_size' <<<"$info")
chunks=$(jq '.blobs[0].chunks' <<<"$info")
BLOB=$OUT/www/layout/blobs/sha256/$blob

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bench_nginx_conf "$OUT/nginx" "$OUT/www" "$port"
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
npid=$!
for _ in $(seq 1 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done
URL=http://127.0.0.1:$port/layout

# seconds of a command; the blob file stays in nginx's page cache for
# every reader: loopback, memory and CPU are measured, not the disk
timed() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
# one lazy read through skiffd from SRC; prints "seconds cpu requests chunks"
lazy_read() {
	local src=$1 t c0 c1 srv
	# shellcheck disable=SC2086
	bench_start_skiffd "$D" --ahead "$AHEAD" $EXTRA || die "skiffd did not start"
	SKIFF_SOCKET=$D/sock "$SKIFF" mount "$src" "$MNT" >/dev/null
	bench_drop_caches
	cat "$BLOB" >/dev/null
	srv=$(bench_skiffd_server)
	c0=$(bench_proc_cpu "$srv")
	t=$(timed read_big)
	c1=$(bench_proc_cpu "$srv")
	cmp -s "$MNT/big" "$OUT/src/big" || die "the file read through skiffd differs from its source"
	echo "$t $(echo "$c1 - $c0" | bc) $(bench_metric "$D/sock" skiff_backend_requests_total) $(bench_metric "$D/sock" skiff_fetched_chunks_total)"
	SKIFF_SOCKET=$D/sock "$SKIFF" umount "$MNT" >/dev/null
	bench_stop_skiffd
}
read_big() { cat "$MNT/big" >/dev/null; }
download() {
	curl -s -o "$OUT/download" "$URL/blobs/sha256/$blob"
}

cat "$BLOB" >/dev/null
dev_s=() file_s=() http_s=() http_cpu=() local_s=() reqs=() fetched=()
busy=0
for r in $(seq 1 "$RUNS"); do
	note "run $r of $RUNS"
	bench_wait_quiet || busy=$((busy + 1))
	dev_s+=("$(curl -s -o /dev/null -w '%{time_total}' "$URL/blobs/sha256/$blob")")
	rm -f "$OUT/download"
	sync
	file_s+=("$(timed download)")
	cmp -s "$OUT/download" "$BLOB" || die "curl's download differs from the blob"
	rm -f "$OUT/download"
	# not a process substitution: a failure must stop the bench
	lazy_read "$URL#big" >"$OUT/result"
	read -r t c q f <"$OUT/result"
	http_s+=("$t") http_cpu+=("$c") reqs+=("$q") fetched+=("$f")
	lazy_read "$OUT/www/layout:big" >"$OUT/result"
	read -r t _ _ _ <"$OUT/result"
	local_s+=("$t")
done
sha_cpu=$( { TIMEFORMAT='%3U %3S'; time openssl dgst -sha256 "$BLOB" >/dev/null; } 2>&1 |
	awk '{ print $1 + $2 }')

mibs() { echo "scale=1; $stored / 1048576 / $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
fs=$(printf '%s\n' "${file_s[@]}" | bench_median)
ds=$(printf '%s\n' "${dev_s[@]}" | bench_median)
hs=$(printf '%s\n' "${http_s[@]}" | bench_median)
ls_=$(printf '%s\n' "${local_s[@]}" | bench_median)
hc=$(printf '%s\n' "${http_cpu[@]}" | bench_median)
rq=$(printf '%s\n' "${reqs[@]}" | bench_median)
fc=$(printf '%s\n' "${fetched[@]}" | bench_median)
fm=$(mibs "$fs") dm=$(mibs "$ds") hm=$(mibs "$hs") lm=$(mibs "$ls_")
gib=$(echo "scale=4; $stored / 1073741824" | bc)
rpc=$(echo "scale=3; $rq / $fc" | bc)

echo
echo "HTTP backend on loopback: $((stored >> 20)) MiB blob, $chunks chunks, nginx, median of $RUNS"
echo "(skiffd: defaults, --ahead $AHEAD${EXTRA:+ $EXTRA}; $NCPU CPUs)"
printf '%-52s %10s %10s\n' "" "MiB/s" "ratio"
printf '%-52s %10s %10s\n' "curl downloading the blob to a file (baseline)" "$fm" "1.00"
printf '%-52s %10s %10s\n' "curl, the same into /dev/null (transfer only)" "$dm" "$(ratio "$dm" "$fm")"
printf '%-52s %10s %10s\n' "skiffd: cold sequential read of the image, HTTP" "$hm" "$(ratio "$hm" "$fm")"
printf '%-52s %10s %10s\n' "skiffd: the same from the local store" "$lm" "$(ratio "$lm" "$fm")"
echo
printf '%-52s %10s\n' "skiffd CPU seconds per GiB read over HTTP" "$(echo "scale=2; $hc / $gib" | bc)"
printf '%-52s %10s\n' "  of which at least: SHA-256 of every byte (openssl)" "$(echo "scale=2; $sha_cpu / $gib" | bc)"
printf '%-52s %10s\n' "HTTP requests (incl. index, manifest, bootstrap)" "$rq"
printf '%-52s %10s\n' "chunks read" "$fc"
printf '%-52s %10s\n' "requests per chunk" "$rpc"
echo
verdict() { if [ "$(echo "$1" | bc)" = 1 ]; then echo met; else echo "NOT met"; fi; }
echo "goal: throughput >= 0.8 of curl downloading the blob: $(verdict "$hm >= 0.8 * $fm") ($(ratio "$hm" "$fm"))"
echo "      against curl into /dev/null, which keeps nothing: $(verdict "$hm >= 0.8 * $dm") ($(ratio "$hm" "$dm"))"
echo "goal: requests <= 1/4 of chunks read: $(verdict "$rpc <= 0.25")"
[ "$busy" -eq 0 ] || echo "note: $busy of $RUNS runs started on a busy machine: the ratios are unreliable"
