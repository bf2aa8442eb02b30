#!/usr/bin/env bash
# skiffd reading images from web servers: an OCI layout served by nginx
# mounts lazily and equals its source, with few HTTP requests for many
# chunks; a misbehaving server (tests/servers/faulty_http.py) is survived
# where the data can be had (5xx, 429 + Retry-After, truncated and short
# bodies, wrong ranges, resets, stalls, redirects) and fails with EIO in
# bounded time where it cannot; wrong bytes never reach a cache file; a
# serving process killed restores the image pinned to its manifest.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_net_tools nginx curl jq
need_fanotify_skiffd

# 1. nginx serving a skiff build
SRC=$T/src
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing
t_ok "build it into a layout under the web root" \
	"$SKIFF" build -q --chunk-size 64K "$SRC" "$T/www/layout:a" || done_testing
chunks=$("$SKIFF" inspect --json "$T/www/layout:a" | jq '.blobs[0].chunks')
port=$(free_port)
t_ok "nginx serves it on 127.0.0.1:$port" start_nginx web "$port" "root $T/www;" || done_testing
URL=http://127.0.0.1:$port/layout
t_ok "skiffd starts" start_skiffd --frontend fanotify || done_testing
MNT=$T/mnt
t_ok "skiff mount $URL#a" skiff_mount "$URL#a" "$MNT" || done_testing
t_is "nothing of the data blob fetched at mount time" "$(metric skiff_fetched_chunks_total)" 0
t_ok "the bootstrap was fetched and kept" test -s "$T/cache/bootstraps/$("$SKIFF" inspect --json "$T/www/layout:a" | jq -r .bootstrap)"
t_ok "mounted tree equals the source" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "every chunk fetched once" "$(metric skiff_fetched_chunks_total)" "$chunks"
req=$(metric_sum skiff_backend_requests_total)
t_ok "HTTP requests ($req) are under a quarter of the chunks ($chunks)" test "$((req * 4))" -lt "$chunks"
t_is "no failed attempts" "$(metric_sum skiff_backend_errors_total)" 0
t_ok "nginx saw range requests" grep -q "GET /layout/blobs/sha256/.* 206 bytes=" "$T/web/access.log"
t_is "skiff status --json counts the requests" \
	"$("$SKIFF" status --json | jq '[.sources[] | .requests // 0] | add')" "$req"
mkdir -p "$T/mnt2"
t_fails "a tag the layout lacks is refused" "$SKIFF" mount "$URL#nope" "$T/mnt2"
t_grep "... saying so" "no image tagged nope" "$T/.out"
t_ok "the verified chunk table was kept" \
	test -s "$T/cache/tables/$("$SKIFF" inspect --json "$T/www/layout:a" | jq -r '.blobs[0].id')"
# a restart with the web server gone: manifest, bootstrap and chunk table
# are all kept, so the image comes back and reads from its cache
t_ok "skiffd stops" stop_skiffd
stop_pid "$NGINX_PID"
t_ok "skiffd restarts with nginx stopped" start_skiffd --frontend fanotify || done_testing
t_is "the mounted image is registered again" \
	"$("$SKIFF" status --json | jq -r '.images[0].mountpoint')" "$MNT"
t_ok "its tree reads right from the cache" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "... with no backend request" "$(metric_sum skiff_backend_requests_total)" 0
t_ok "skiff umount" skiff_umount "$MNT"
stop_skiffd

# 2. the faulty server: distinct files so that each case fetches anew
rm -rf "$T/cache" "$T/work"
F=$T/fsrc
mkdir -p "$F"
for i in $(seq -w 1 17); do
	head -c $((200 * 1024 + 10#$i)) /dev/urandom >"$F/f$i"
done
t_ok "build a tree of 17 random files" "$SKIFF" build -q --chunk-size 64K "$F" "$T/fwww/l:a" || done_testing
blob=$("$SKIFF" inspect --json "$T/fwww/l:a" | jq -r '.blobs[0].id')
fport=$(free_port)
start_faulty() {
	"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/fwww" "$fport" 2>>"$T/faulty.log" &
	fpid=$!
	_n_pids+=("$fpid")
	wait_port "$fport"
}
start_faulty
t_ok "the faulty server listens on 127.0.0.1:$fport" wait_port "$fport" || done_testing
cat >"$T/skiffd.json" <<EOF
{"backend": {"max_attempts": 4, "backoff_ms": 50, "backoff_max_ms": 200,
	"retry_after_max_ms": 3000, "connect_timeout_ms": 2000,
	"low_speed_time": 1, "low_speed_limit": 1000}}
EOF
t_ok "skiffd starts with short timeouts (no read-ahead)" \
	start_skiffd --frontend fanotify --config "$T/skiffd.json" --readahead 0 --ahead 0 || done_testing
FURL=http://127.0.0.1:$fport/l
t_ok "mount through the faulty server" skiff_mount "$FURL#a" "$MNT" || done_testing

fault() { # KIND COUNT [EXTRA JSON]
	curl -s -X POST -d "{\"kind\": \"$1\", \"count\": $2, \"match\": \"/blobs/\"${3:+, $3}}" \
		"http://127.0.0.1:$fport/_fault" >/dev/null
}
errs() { metric "skiff_backend_errors_total{source=\"$FURL\",kind=\"$1\"}"; }
n=0
next_file() { n=$((n + 1)); f=f$(printf '%02d' "$n"); }
recovers() { # KIND COUNT ERRKIND [EXTRA]
	local before
	next_file
	before=$(errs "$3")
	fault "$1" "$2" "${4:-}"
	t_ok "$1 x$2: $f reads right after retries" timeout 60 cmp "$MNT/$f" "$F/$f"
	if [ "$1" = reset ]; then
		# curl itself retries once a reused connection that dies
		# before answering: one of ours may cover two resets
		t_ok "... failed attempts counted as $3" test "$(($(errs "$3") - before))" -ge 1
	else
		t_is "... $2 failed attempts counted as $3" "$(($(errs "$3") - before))" "$2"
	fi
}
recovers 500 2 http_5xx
recovers 503 1 http_5xx
recovers truncate 2 connect
recovers short 2 mismatch
recovers badrange 1 mismatch
recovers norange 1 mismatch
recovers reset 2 connect
recovers stall 1 timeout '"seconds": 3'

# a redirect to another server (as registries send blobs to object
# storage) is followed
rport=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/fwww" "$rport" 2>>"$T/faulty.log" &
_n_pids+=($!)
wait_port "$rport"
next_file
fault redirect 1 "\"to\": \"http://127.0.0.1:$rport\""
t_ok "a redirect to another server: $f reads right" timeout 60 cmp "$MNT/$f" "$F/$f"
t_is "... one redirect followed" "$(metric "skiff_backend_redirects_total{source=\"$FURL\"}")" 1
t_ok "... and the other server served the range" \
	sh -c "curl -s http://127.0.0.1:$rport/_log | grep -q '\"range\": \"bytes='"
t_ok "retries are counted" test "$(metric_sum skiff_backend_retries_total)" -ge 11

# Retry-After is honoured: the next attempt waits at least that long
curl -s -X POST "http://127.0.0.1:$fport/_reset" >/dev/null
fault 429 1 '"retry_after": 2'
next_file
t_ok "429 with Retry-After: 2: $f reads right" timeout 60 cmp "$MNT/$f" "$F/$f"
gap=$(curl -s "http://127.0.0.1:$fport/_log" | jq -s '[.[] | select(.path | contains("/blobs/"))] | .[1].t - .[0].t')
t_ok "... the retry came after the $gap s asked for" awk -v g="$gap" 'BEGIN { exit !(g >= 1.9) }'

# wrong bytes: the chunks fail verification and are never written; the
# kernel's retry of the read (or ours) fetches them again
ready() { "$SKIFF" status --json | jq '.images[0].blobs[0].ready_chunks'; }
next_file
v0=$(metric skiff_verify_errors_total)
fault wrong 1
t_ok "wrong bytes once: $f still reads right" timeout 60 cmp "$MNT/$f" "$F/$f"
t_ok "... a verify error is counted" test "$(metric skiff_verify_errors_total)" -gt "$v0"
next_file
r0=$(ready)
v0=$(metric skiff_verify_errors_total)
fault wrong 1000
t_fails "wrong bytes for good: reading $f fails" timeout 60 cat "$MNT/$f"
t_grep "... with EIO" "Input/output error" "$T/.out"
t_ok "... verify errors are counted" test "$(metric skiff_verify_errors_total)" -gt "$v0"
t_is "... and no chunk became ready" "$(ready)" "$r0"
curl -s -X POST "http://127.0.0.1:$fport/_reset" >/dev/null
t_ok "once the server mends, $f reads right" timeout 60 cmp "$MNT/$f" "$F/$f"

# data that cannot be had: EIO in bounded time, skiffd stays up
for k in 500 reset stall; do
	next_file
	fault "$k" 100 '"seconds": 5'
	start=$(date +%s)
	t_fails "$k for good: reading $f fails" timeout 120 cat "$MNT/$f"
	el=$(($(date +%s) - start))
	t_grep "... with EIO (after ${el}s)" "Input/output error" "$T/.out"
	curl -s -X POST "http://127.0.0.1:$fport/_reset" >/dev/null
done
t_ok "skiffd is still up" kill -0 "$SKIFFD_PID"
# the serving process dies after the layout's index.json went away: its
# successor restores the image pinned to the manifest it had (kept in
# work_dir/manifests), without asking the index again
t_grep "the saved state pins the manifest" '"pinned": "http://.*#sha256:[0-9a-f]{64}"' "$T/work/images.json"
mv "$T/fwww/l/index.json" "$T/index.json.away"
server=$("$SKIFF" status --json | jq .pid)
kill -KILL "$server"
for _ in $(seq 1 100); do
	new=$("$SKIFF" status --json 2>/dev/null | jq .pid 2>/dev/null)
	[ -n "$new" ] && [ "$new" != "$server" ] && break
	sleep 0.1
done
t_ok "a new serving process ($new) replaces the killed one" test -n "$new" -a "$new" != "$server"
t_is "... with the image back, under the reference as given" \
	"$("$SKIFF" status --json | jq -r '.images[0].ref')" "$FURL#a" ||
	diag "$(grep -E "restor|error" "$T/skiffd.log" | tail -5)"
t_ok "... though the index is gone" test ! -e "$T/fwww/l/index.json"
t_ok "cached data reads" cmp "$MNT/f01" "$F/f01"
mv "$T/index.json.away" "$T/fwww/l/index.json"
t_ok "after the server recovers, every file reads right" timeout 120 "$TREECMP" "$F" "$MNT"
t_is "every chunk is ready" "$(ready)" "$("$SKIFF" inspect --json "$T/fwww/l:a" | jq '.blobs[0].chunks')"
"$SKIFF" export-cache "$T/fwww/l:a" "$T/exp" >/dev/null
t_ok "the cache file equals the exported one: no wrong byte in it" \
	cmp "$T/cache/blobs/$blob" "$T/exp/$blob"
t_ok "skiff umount" skiff_umount "$MNT"
stop_skiffd
done_testing
