#!/usr/bin/env bash
# skiffd reading images from web servers: an OCI layout served by nginx
# mounts lazily and equals its source, with few HTTP requests for many
# chunks; a misbehaving server (tests/servers/faulty_http.py) is survived
# where the data can be had (5xx, 429 + Retry-After, truncated and short
# bodies, wrong ranges, resets, stalls, bodies dripping a byte a second,
# redirects, one to a dead host whose retry asks the origin again) by
# skiffd's own retries, and fails with EIO in bounded time where it
# cannot (a body dripping, under curl's low-speed limit or over it, or a
# redirect to a dead host for good: each backend read ends by its read
# deadline, no chunk becomes ready, the file reads once the server
# mends); wrong bytes never reach a cache file; a serving process killed
# restores the image pinned to its manifest; an image whose server holds
# its answers delays neither reads of another image nor status, metrics
# or unmounting (part 3), nor does unmounting an image whose read-ahead
# windows that server holds (part 4).
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
	test -s "$T/cache/tables/$(table_digest "$T/www/layout:a")"
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
for i in $(seq -w 1 22); do
	head -c $((200 * 1024 + 10#$i)) /dev/urandom >"$F/f$i"
done
t_ok "build a tree of 22 random files" "$SKIFF" build -q --chunk-size 64K "$F" "$T/fwww/l:a" || done_testing
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
# a blob read gets DEADLINE_MS per MiB begun (every read here asks less)
DEADLINE_MS=3000
cat >"$T/skiffd.json" <<EOF
{"backend": {"max_attempts": 4, "backoff_ms": 50, "backoff_max_ms": 200,
	"retry_after_max_ms": 3000, "connect_timeout_ms": 2000,
	"low_speed_time": 1, "low_speed_limit": 1000, "read_deadline_ms": $DEADLINE_MS}}
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
	local before fe
	next_file
	before=$(errs "$3")
	fe=$(metric skiff_fetch_errors_total)
	fault "$1" "$2" "${4:-}"
	t_ok "$1 x$2: $f reads right after retries" timeout 60 cmp "$MNT/$f" "$F/$f"
	# not a failed backend read that the kernel asked for again
	t_is "... skiffd's own: no backend read failed" "$(($(metric skiff_fetch_errors_total) - fe))" 0
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
# a body dripping a byte a second: under low_speed_limit, the attempt is
# cut after low_speed_time and the retry reads
recovers drip 1 timeout

# a redirect to a dead host (nothing listens on its port): skiffd's
# retry reads, so it asked the origin again (which answers now), not the
# dead host (a retry there failed the backend read, then the kernel's
# second read of the page asked the origin)
dead=$(free_port)
recovers redirect 1 connect "\"to\": \"http://127.0.0.1:$dead\""

# a redirect to another server (as registries send blobs to object
# storage) is followed
rport=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/fwww" "$rport" 2>>"$T/faulty.log" &
_n_pids+=($!)
wait_port "$rport"
next_file
rd0=$(metric "skiff_backend_redirects_total{source=\"$FURL\"}")
fault redirect 1 "\"to\": \"http://127.0.0.1:$rport\""
t_ok "a redirect to another server: $f reads right" timeout 60 cmp "$MNT/$f" "$F/$f"
t_is "... one redirect followed" "$(($(metric "skiff_backend_redirects_total{source=\"$FURL\"}") - rd0))" 1
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
# for_good DESC KIND ERRKIND OP N [EXTRA]: the server answers every
# request for the next file's data in way KIND (EXTRA: more of the
# fault): reading its first page fails with EIO, each backend read that
# failed (the kernel asks again for a page it could not read) ending by
# its deadline: within that many read deadlines and 2 s for the kernel
# and dd; failed attempts counted as ERRKIND number OP N per failed
# backend read (test(1)); no chunk becomes ready, skiffd stays up, and
# once the server mends the file reads right
for_good() {
	local desc=$1 kind=$2 ek=$3 op=$4 per=$5 extra=${6:-} r0 e0 fe0 t0 el nf ne
	next_file
	r0=$(ready)
	e0=$(errs "$ek")
	fe0=$(metric skiff_fetch_errors_total)
	fault "$kind" 1000 "$extra"
	t0=$(date +%s.%N)
	t_fails "$desc for good: reading $f fails" timeout 60 dd if="$MNT/$f" of=/dev/null bs=4k count=1
	el=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	t_grep "... with EIO" "Input/output error" "$T/.out"
	nf=$(($(metric skiff_fetch_errors_total) - fe0))
	ne=$(($(errs "$ek") - e0))
	t_ok "... in $el s, $nf failed backend reads: within their read deadlines ($DEADLINE_MS ms) and 2 s" \
		awk -v e="$el" -v n="$nf" -v d="$DEADLINE_MS" 'BEGIN { exit !(n >= 1 && e <= n * d / 1000 + 2) }'
	t_ok "... $ne failed attempts counted as $ek: $op $per per failed read" test "$ne" "$op" "$((per * nf))"
	t_is "... no chunk became ready" "$(ready)" "$r0"
	t_ok "... skiffd is up" kill -0 "$SKIFFD_PID"
	curl -s -X POST "http://127.0.0.1:$fport/_reset" >/dev/null
	t_ok "... once the server mends, $f reads right" timeout 60 cmp "$MNT/$f" "$F/$f"
}
# a byte a second: attempts cut after low_speed_time, the last at the
# deadline
for_good "a drip of a byte a second" drip timeout -ge 2
# a byte each 0.2 ms, over low_speed_limit: only the deadline ends the
# one attempt (a 64 KiB chunk trickling in to its end takes 15 s or more)
for_good "a drip over low_speed_limit" drip timeout -eq 1 '"seconds_per_byte": 0.0002'
# every attempt: to the origin, redirected, refused
for_good "a redirect to a dead host" redirect connect -eq 4 "\"to\": \"http://127.0.0.1:$dead\""
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
	cmp "$T/cache/blobs/$(cache_name "$T/fwww/l:a")" "$T/exp/$blob"
t_ok "skiff umount" skiff_umount "$MNT"
stop_skiffd

# 3. a registration waiting on the network holds up nobody else. Image A
# is mounted and read through skiffd; image B, on a second server, is
# being mounted while that server holds one of its answers (the manifest
# index, the bootstrap, the chunk table): reads of A's files (fetched
# then), skiff status, /metrics and unmounting A all answer within
# seconds, and B's mount completes once the server answers, or fails with
# a message naming the server once it is gone. Commands run under
# `timeout 10`: a daemon lock held across the wait fails the test rather
# than hanging it.
rm -rf "$T/cache" "$T/work"
G=$T/gsrc
mkdir -p "$G"
for i in 1 2 3 4; do
	head -c $((100 * 1024 + i)) /dev/urandom >"$G/g$i"
done
t_ok "build image B" "$SKIFF" build -q --chunk-size 64K "$G" "$T/gwww/l:b" || done_testing
bs_b=$("$SKIFF" inspect --json "$T/gwww/l:b" | jq -r .bootstrap)
blob_b=$("$SKIFF" inspect --json "$T/gwww/l:b" | jq -r '.blobs[0].id')
gport=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/gwww" "$gport" 2>>"$T/faulty.log" &
gpid=$!
_n_pids+=("$gpid")
t_ok "B's server listens on 127.0.0.1:$gport" wait_port "$gport" || done_testing
GURL=http://127.0.0.1:$gport/l
# a held answer is waited for (60 s), not abandoned after a second
cat >"$T/skiffd-wait.json" <<EOF
{"backend": {"max_attempts": 2, "backoff_ms": 50, "connect_timeout_ms": 2000,
	"low_speed_time": 60}}
EOF
t_ok "skiffd starts, waiting long on slow answers" \
	start_skiffd --frontend fanotify --config "$T/skiffd-wait.json" --readahead 0 --ahead 0 ||
	done_testing
t_ok "image A mounts" skiff_mount "$FURL#a" "$MNT" || done_testing
t_ok "... and reads right" timeout 10 cmp "$MNT/f01" "$F/f01"
MNTB=$T/mntb
mkdir -p "$MNTB"
gctl() { curl -s -X POST ${2:+-d "$2"} "http://127.0.0.1:$gport/$1" >/dev/null; }
# held [N]: until B's server holds N requests (default 1; 10 s)
held() {
	local i
	for i in $(seq 1 100); do
		[ "$(curl -s "http://127.0.0.1:$gport/_log" | grep -c '"fault": "hold"')" -ge "${1:-1}" ] &&
			return 0
		sleep 0.1
	done
	return 1
}
# mount_b_held WHAT MATCH: starts mounting B, its server holding the
# request whose path contains MATCH; sets mpid
mount_b_held() {
	gctl _reset
	gctl _fault "{\"kind\": \"hold\", \"count\": 1, \"match\": \"$2\"}"
	timeout 60 "$SKIFF" mount "$GURL#b" "$MNTB" >"$T/mountb.out" 2>&1 &
	mpid=$!
	_t_mounts+=("$MNTB")
	t_ok "mounting B waits on its server holding $1" held
}
k=1
for phase in "the manifest index:index.json" "the bootstrap:blobs/sha256/$bs_b" \
	"the chunk table:blobs/sha256/$blob_b"; do
	mount_b_held "${phase%%:*}" "${phase#*:}"
	k=$((k + 1))
	f=f$(printf '%02d' "$k")
	t_ok "... meanwhile A's $f (fetched now) reads right" timeout 10 cmp "$MNT/$f" "$F/$f"
	t_ok "... skiff status answers" timeout 10 "$SKIFF" status
	timeout 10 "$SKIFF" status --json >"$T/st.json" 2>&1
	t_is "... listing A alone" "$(jq -r '[.images[].ref] | join(" ")' "$T/st.json" 2>&1)" "$FURL#a"
	timeout 10 curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics >"$T/m.txt"
	t_grep "... /metrics answers" "^skiff_images 1$" "$T/m.txt"
	t_ok "... unmounting A works" timeout 10 "$SKIFF" umount "$MNT"
	t_ok "... while B still waits" kill -0 "$mpid"
	gctl _release
	t_ok "once the server answers, B's mount completes" ends "$mpid" 30 ||
		diag "$(cat "$T/mountb.out")"
	t_ok "... and B reads right" timeout 10 cmp "$MNTB/g$((k - 1))" "$G/g$((k - 1))"
	t_ok "... and unmounts" timeout 10 "$SKIFF" umount "$MNTB"
	# so that the next mount fetches bootstrap and chunk table again
	rm -f "$T/cache/bootstraps/$bs_b" "$T/cache/tables/$(table_digest "$T/gwww/l:b")"
	t_ok "A mounts again" skiff_mount "$FURL#a" "$MNT" || done_testing
done
# two registrations of B at once (through the API, no mount point), both
# waiting on B's server, and an unregistration racing them: B ends up
# registered once, under one id
api() { # METHOD PATH [BODY]: prints the HTTP status, the body in $T/api.out
	timeout 60 curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$SKIFF_SOCKET" \
		-X "$1" ${3:+-d "$3"} "http://skiffd$2"
}
refs() { # the registered images' references, sorted
	timeout 10 "$SKIFF" status --json | jq -r '[.images[].ref] | sort | join(" ")'
}
gctl _reset
gctl _fault '{"kind": "hold", "count": 2, "match": "index.json"}'
idb=skiff-$(manifest_of "$T/gwww/l:b" | cut -c1-16)
for r in 1 2; do
	timeout 60 curl -s --unix-socket "$SKIFF_SOCKET" -X POST -d "{\"ref\": \"$GURL#b\"}" \
		http://skiffd/v1/images >"$T/reg$r.json" &
	eval "rpid$r=\$!"
done
t_ok "two registrations of B wait on its server" held 2
t_is "... unregistering B meanwhile finds nothing" "$(api DELETE "/v1/images/$idb")" 404
t_is "... and leaves A" "$(refs)" "$FURL#a"
gctl _release
t_ok "once the server answers, both registrations complete" ends "$rpid1" 30
t_ok "... (the second too)" ends "$rpid2" 30
t_is "... giving the same id" "$(jq -r .id "$T/reg1.json") $(jq -r .id "$T/reg2.json")" "$idb $idb"
t_is "... B is registered once" "$(refs)" "$(printf '%s\n' "$FURL#a" "$GURL#b" | sort | paste -sd ' ')"
t_is "... and unregisters" "$(api DELETE "/v1/images/$idb")" 200
t_is "... leaving A" "$(refs)" "$FURL#a"

mount_b_held "the manifest index" index.json
stop_pid "$gpid"
t_fails "B's server gone: B's mount fails" ends "$mpid" 30
t_grep "... saying which server" "skiffd: .*127\.0\.0\.1:$gport/l/index\.json" "$T/mountb.out"
t_is "... and B is not registered" \
	"$(timeout 10 "$SKIFF" status --json | jq -r '[.images[].ref] | join(" ")')" "$FURL#a"
k=$((k + 1))
f=f$(printf '%02d' "$k")
t_ok "A's $f reads right" timeout 10 cmp "$MNT/$f" "$F/$f"
t_ok "skiff umount A" skiff_umount "$MNT"
t_ok "skiffd stops cleanly" stop_skiffd

# 4. unmounting an image whose read-ahead windows wait on a held server
# holds up nobody else. skiffd runs with --ahead 8M (windows of at most
# 1 MiB: merge_limit); a sequential read of the first 4 MiB of image H's
# big file starts windows past it, and the server holds every request of
# H's blob from 6 MiB on: those are windows alone (the reader has ended;
# a fetch of its own held would have failed its read).
# Unregistering H waits for them; meanwhile, under `timeout 10`, image A's
# files (fetched then) read right and skiff status and /metrics answer,
# with no counter of /metrics going down (H's cache file still counts
# while it closes, and then as retired).
rm -rf "$T/cache" "$T/work"
HS=$T/hsrc
mkdir -p "$HS"
head -c $((32 << 20)) /dev/urandom >"$HS/big"
t_ok "build image H: one file of 32 MiB" \
	"$SKIFF" build -q --chunk-size 256K "$HS" "$T/fwww/h:h" || done_testing
blob_h=$("$SKIFF" inspect --json "$T/fwww/h:h" | jq -r '.blobs[0].id')
HURL=http://127.0.0.1:$fport/h
cat >"$T/skiffd-ra.json" <<EOF2
{"merge_limit": 1048576,
 "backend": {"max_attempts": 2, "backoff_ms": 50, "connect_timeout_ms": 2000,
	"low_speed_time": 60}}
EOF2
t_ok "skiffd starts with --ahead 8M, waiting long on slow answers" \
	start_skiffd --frontend fanotify --config "$T/skiffd-ra.json" --ahead 8M ||
	done_testing
t_ok "image A mounts" skiff_mount "$FURL#a" "$MNT" || done_testing
MNTH=$T/mnth
mkdir -p "$MNTH"
t_ok "image H mounts" skiff_mount "$HURL#h" "$MNTH" || done_testing
fctl() { curl -s -X POST ${2:+-d "$2"} "http://127.0.0.1:$fport/$1" >/dev/null; }
# fheld: until the server holds a request (10 s)
fheld() {
	local i
	for i in $(seq 1 100); do
		curl -s "http://127.0.0.1:$fport/_log" | grep -q '"fault": "hold"' && return 0
		sleep 0.1
	done
	return 1
}
# counters FILE: the unlabelled counters of a /metrics answer, "name value"
counters() { awk '/^skiff_[a-z_]*_total / { print $1, $2 }' "$1"; }
# no_decrease A B: every counter of /metrics answer A is in answer B, and
# not smaller there
no_decrease() {
	join -a 1 -e gone -o 0,1.2,2.2 <(counters "$1" | sort) <(counters "$2" | sort) |
		awk '$3 == "gone" || $3 < $2 { print "went down:", $0; bad = 1 }
		     END { exit NR == 0 || bad }'
}
getm() { timeout 10 curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics >"$1"; }
fctl _reset
fctl _fault "{\"kind\": \"hold\", \"count\": 1000, \"match\": \"/blobs/sha256/$blob_h\", \"from\": $((6 << 20))}"
t_ok "H's first 4 MiB read right sequentially" timeout 30 cmp -n $((4 << 20)) "$MNTH/big" "$HS/big"
t_ok "... starting read-ahead windows that the server holds" fheld
getm "$T/m0.txt"
t_ok "... windows counted" test "$(awk '$1 == "skiff_readahead_windows_total" { print $2 }' "$T/m0.txt")" -gt 0
timeout 120 "$SKIFF" umount "$MNTH" >"$T/umounth.out" 2>&1 &
upid=$!
# unregistering: until skiffd lists H no more (or, holding its lock while
# it waits, answers nothing)
unregistering() {
	local i out
	for i in $(seq 1 100); do
		out=$(timeout 2 "$SKIFF" status --json 2>/dev/null) || return 0
		jq -e --arg r "$HURL#h" 'all(.images[]; .ref != $r)' <<<"$out" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}
t_ok "unmounting H: skiffd unregisters it" unregistering
t_ok "... meanwhile A's f01 (fetched now) reads right" timeout 10 cmp "$MNT/f01" "$F/f01"
t_ok "... skiff status answers" timeout 10 "$SKIFF" status
getm "$T/m1.txt"
t_grep "... /metrics answers" "^skiff_images 1$" "$T/m1.txt"
t_ok "... no counter went down: H's cache file still counts" no_decrease "$T/m0.txt" "$T/m1.txt"
t_ok "... while the unregistration waits for H's windows" kill -0 "$upid"
fctl _release
t_ok "once the server answers, H's unmount completes" ends "$upid" 60 ||
	diag "$(cat "$T/umounth.out")"
getm "$T/m2.txt"
t_ok "... no counter went down" no_decrease "$T/m1.txt" "$T/m2.txt"
c1=$(awk '$1 == "skiff_fetched_chunks_total" { print $2 }' "$T/m1.txt")
c2=$(awk '$1 == "skiff_fetched_chunks_total" { print $2 }' "$T/m2.txt")
t_ok "... and the held windows' chunks count once fetched ($c1 -> $c2)" test "$c2" -gt "$c1"
t_is "... H is unregistered, A stays" \
	"$(timeout 10 "$SKIFF" status --json | jq -r '[.images[].ref] | join(" ")')" "$FURL#a"
t_ok "A's f02 reads right" timeout 10 cmp "$MNT/f02" "$F/f02"
t_ok "skiff umount A" skiff_umount "$MNT"
t_ok "skiffd stops cleanly" stop_skiffd
done_testing
