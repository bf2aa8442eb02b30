#!/usr/bin/env bash
# net-bench.sh: skiffd's HTTP backend on loopback. An image holding one
# file of SKIFF_BENCH_NET_MIB (default 1024) MiB of random data is served
# by nginx on 127.0.0.1; a cold sequential read of the file through a
# lazy fanotify mount (skiffd fetching from nginx) against curl
# downloading the same blob in one request. Prints throughput ratios and
# HTTP requests per chunk read; exits non-zero only on errors.
#
# Environment: SKIFF_BENCH_RUNS (median of N, default 3),
# SKIFF_BENCH_NET_MIB, SKIFF_BENCH_OUT (default /var/tmp/skiff-bench/net),
# SKIFF_BENCH_READAHEAD (skiffd --readahead, default 4M),
# SKIFF_BENCH_MERGE (skiffd --merge-limit, default 8M),
# SKIFF_BENCH_AHEAD (skiffd --ahead, default 8M: a deployment that streams
# large files turns background read-ahead on).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
RUNS=${SKIFF_BENCH_RUNS:-3}
MIB=${SKIFF_BENCH_NET_MIB:-1024}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/net}
RA=${SKIFF_BENCH_READAHEAD:-4M}
MERGE=${SKIFF_BENCH_MERGE:-8M}
AHEAD=${SKIFF_BENCH_AHEAD:-8M}
MNT=$OUT/mnt
pid=
npid=

die() { echo "net-bench: $*" >&2; exit 1; }
note() { echo "net-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "build first (make)"
command -v nginx >/dev/null || die "nginx missing (scripts/setup.sh installs it)"

cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
	rm -rf "$OUT/cache" "$OUT/work" "$OUT/mnt"
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
blob=$("$SKIFF" inspect --json "$OUT/www/layout:big" | jq -r '.blobs[0].id')
stored=$("$SKIFF" inspect --json "$OUT/www/layout:big" | jq '.blobs[0].stored_size')
chunks=$("$SKIFF" inspect --json "$OUT/www/layout:big" | jq '.blobs[0].chunks')

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$OUT/nginx/tmp"
cat >"$OUT/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
user root;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 256; }
http {
	client_body_temp_path $OUT/nginx/tmp/body;
	proxy_temp_path $OUT/nginx/tmp/proxy;
	fastcgi_temp_path $OUT/nginx/tmp/fastcgi;
	uwsgi_temp_path $OUT/nginx/tmp/uwsgi;
	scgi_temp_path $OUT/nginx/tmp/scgi;
	access_log off;
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 100000;
	server { listen 127.0.0.1:$port; root $OUT/www; }
}
EOF
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
npid=$!
for _ in $(seq 1 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done
URL=http://127.0.0.1:$port/layout

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
metric_sum() {
	curl -s --unix-socket "$OUT/sock" http://skiffd/metrics |
		awk -v n="$1" 'index($1, n "{") == 1 || $1 == n { s += $2 } END { print s + 0 }'
}
metric() {
	curl -s --unix-socket "$OUT/sock" http://skiffd/metrics | awk -v n="$1" '$1 == n { print $2 }'
}

# the blob file stays in nginx's page cache for both: loopback and
# memory are what is measured, not the disk
cat "$OUT/www/layout/blobs/sha256/$blob" >/dev/null
curl_s=()
skiffd_s=()
local_s=()
reqs=()
fetched=()
for r in $(seq 1 "$RUNS"); do
	t=$(curl -s -o /dev/null -w '%{time_total}' "$URL/blobs/sha256/$blob")
	curl_s+=("$t")

	for src in "$URL#big" "$OUT/www/layout:big"; do
	rm -rf "$OUT/cache" "$OUT/work" "$OUT/ready"
	mkfifo "$OUT/ready"
	"$SKIFFD" --frontend fanotify --cache-dir "$OUT/cache" --work-dir "$OUT/work" \
		--socket "$OUT/sock" --readahead "$RA" --merge-limit "$MERGE" --ahead "$AHEAD" \
		--ready-fd 3 3>"$OUT/ready" >>"$OUT/skiffd.log" 2>&1 &
	pid=$!
	read -r -t 30 line <"$OUT/ready" || true
	[ "${line:-}" = READY ] || die "skiffd did not start: $(tail -3 "$OUT/skiffd.log")"
	SKIFF_SOCKET=$OUT/sock "$SKIFF" mount "$src" "$MNT" >/dev/null
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "$OUT/www/layout/blobs/sha256/$blob" >/dev/null
	t0=$(date +%s.%N)
	cat "$MNT/big" >/dev/null
	t1=$(date +%s.%N)
	if [ "$src" = "$URL#big" ]; then
		skiffd_s+=("$(echo "$t1 - $t0" | bc)")
		reqs+=("$(metric_sum skiff_backend_requests_total)")
		fetched+=("$(metric skiff_fetched_chunks_total)")
	else
		local_s+=("$(echo "$t1 - $t0" | bc)")
	fi
	SKIFF_SOCKET=$OUT/sock "$SKIFF" umount "$MNT" >/dev/null
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	done
done

cs=$(printf '%s\n' "${curl_s[@]}" | median)
ss=$(printf '%s\n' "${skiffd_s[@]}" | median)
ls_=$(printf '%s\n' "${local_s[@]}" | median)
rq=$(printf '%s\n' "${reqs[@]}" | median)
fc=$(printf '%s\n' "${fetched[@]}" | median)
cmbs=$(echo "scale=1; $stored / 1048576 / $cs" | bc)
smbs=$(echo "scale=1; $stored / 1048576 / $ss" | bc)
ratio=$(echo "scale=2; $smbs / $cmbs" | bc)
lmbs=$(echo "scale=1; $stored / 1048576 / $ls_" | bc)
lratio=$(echo "scale=2; $lmbs / $cmbs" | bc)
rpc=$(echo "scale=3; $rq / $fc" | bc)
echo
echo "HTTP backend on loopback: $((stored >> 20)) MiB blob, $chunks chunks, nginx, median of $RUNS (readahead $RA, merge limit $MERGE, ahead $AHEAD)"
printf '%-44s %12s %12s %8s\n' "" "curl" "skiffd" "ratio"
printf '%-44s %12s %12s %8s\n' "cold sequential read, MiB/s" "$cmbs" "$smbs" "$ratio"
printf '%-44s %12s %12s %8s\n' "... same image from the local store, MiB/s" "$cmbs" "$lmbs" "$lratio"
printf '%-44s %12s %12s %8s\n' "HTTP requests (incl. index, manifest, bootstrap)" "1" "$rq" ""
printf '%-44s %12s %12s %8s\n' "chunks read" "" "$fc" ""
printf '%-44s %12s %12s %8s\n' "requests per chunk" "" "$rpc" ""
echo
verdict() { if [ "$(echo "$1" | bc)" = 1 ]; then echo met; else echo "NOT met"; fi; }
echo "goal: throughput >= 0.8 of curl: $(verdict "$ratio >= 0.8")"
echo "goal: requests <= 1/4 of chunks read: $(verdict "$rpc <= 0.25")"
