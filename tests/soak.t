#!/usr/bin/env bash
# A soak of skiffd (fanotify) the way a node runs it, bounded: 16 images
# served by a web server that misbehaves on purpose (tests/servers/
# faulty_http.py: wrong bytes, 5xx bursts, 429 with Retry-After, resets,
# truncated and short bodies, stalls, a drip, each now and then on a data
# blob), under a cache limit that keeps evicting. 64 readers (half of them
# reading blocks in a random order) check every byte of 12 mounted images,
# dropping the page cache at every pass: 32 go through 6 images all along,
# 32 through 3 of the other 6 for 4 s, then the other 3, so that what they
# leave goes cold, is evicted and is fetched again, faults and all. The
# other 4 images are mounted, read and unmounted in turn. Nothing may be wrong, no read may
# hang past its deadline, and skiffd's file descriptors, threads, memory
# and the mounts must be where they were once it is over.
#
# SKIFF_SOAK_SECONDS (default 30) sets how long; `bench/soak-bench.sh`
# (make bench) runs it for 10 minutes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_root
for c in curl jq; do
	command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd

SECONDS_SOAK=${SKIFF_SOAK_SECONDS:-30}
MIB=$((1 << 20))
NIMG=16
NREAD=12	# images the readers go through; the rest come and go

imgs=()
for ((k = 1; k <= NIMG; k++)); do
	img=$(printf 'i%02d' "$k")
	imgs+=("$img")
	mkdir -p "$T/src/$img"
	for f in 1 2 3; do
		head -c $((k * 37 * 1024 + f * 300 * 1024 + f)) /dev/urandom >"$T/src/$img/f$f"
	done
done
t_ok "build $NIMG images (64K chunks) into one layout" eval '
	for img in "${imgs[@]}"; do
		"$SKIFF" build -q --chunk-size 64K "$T/src/$img" "$T/www/l:$img" || exit 1
	done' || done_testing
blobs=()
for ((k = 0; k < NREAD; k++)); do
	blobs+=("$("$SKIFF" inspect --json "$T/www/l:${imgs[k]}" | jq -r '.blobs[0].id')")
done

port=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/www" "$port" 2>>"$T/faulty.log" &
_n_pids+=("$!")
t_ok "the faulty server listens on 127.0.0.1:$port" wait_port "$port" || done_testing
URL=http://127.0.0.1:$port/l
DEADLINE_MS=5000
cat >"$T/skiffd.json" <<EOF
{"backend": {"max_attempts": 6, "backoff_ms": 50, "backoff_max_ms": 400,
	"retry_after_max_ms": 2000, "connect_timeout_ms": 2000,
	"low_speed_time": 1, "low_speed_limit": 1000, "read_deadline_ms": $DEADLINE_MS},
 "cache": {"max_size": "24M", "evict_grace": 1}}
EOF
t_ok "skiffd starts with a 24 MiB cache limit (the images hold $(du -sbc "$T"/src/* | tail -n 1 | cut -f1) bytes)" \
	start_skiffd --frontend fanotify --config "$T/skiffd.json" || done_testing
READ_FILES=()
for ((k = 0; k < NREAD; k++)); do
	img=${imgs[k]}
	skiff_mount "$URL#$img" "$T/mnt/$img" || { t_ok "mount $img" false; done_testing; }
	READ_FILES+=("$img/f1" "$img/f2" "$img/f3")
done
ALL_FILES=("${READ_FILES[@]}")
t_ok "$NREAD images mounted" test "$(grep -c " $T/mnt/" /proc/self/mountinfo)" = "$NREAD"

# counts of the serving process and the node
counts() {
	local pid
	pid=$(server_pid) || return 1
	echo "fds=$(ls "/proc/$pid/fd" | wc -l) threads=$(ls "/proc/$pid/task" | wc -l)" \
		"rss_kib=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")" \
		"mounts=$(grep -c " $T/mnt/" /proc/self/mountinfo)"
}
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# a warm-up pass of the readers, so that pools, buffers and connections
# are at their steady state before the first count
t_ok "warm-up: 64 readers, every byte right" \
	"$READCHECK" -r 64 -R -d 60 "$T/mnt" "$T/src" "${ALL_FILES[@]}"
before=$(counts)
diag "before: $before"
pid0=$(server_pid)

fault_loop() {
	local kinds=('"wrong"' '"503", "count": 3' '"429", "retry_after": 1' '"reset"'
		'"truncate"' '"short"' '"stall", "seconds": 2' '"drip", "seconds_per_byte": 0.001')
	local i=0 k b
	while [ ! -e "$T/readers.stop" ]; do
		k=${kinds[RANDOM % ${#kinds[@]}]}
		b=${blobs[RANDOM % ${#blobs[@]}]}
		# first, wrong bytes where a fetch surely comes: the images
		# the second group reads from 4 s on, evicted until then
		[ "$i" = 0 ] && k=${kinds[0]} b=${blobs[9]}
		curl -s -X POST -d "{\"kind\": $k, \"count\": 1, \"match\": \"$b\"}" \
			"http://127.0.0.1:$port/_fault" >/dev/null
		i=$((i + 1))
		sleep 0.3
	done
	echo "$i" >"$T/faults.n"
}
cycle_loop() {
	local n=0 bad=0 img k
	while [ ! -e "$T/readers.stop" ]; do
		k=$((NREAD + n % (NIMG - NREAD)))
		img=${imgs[k]}
		mkdir -p "$T/mnt/$img"
		if "$SKIFF" mount "$URL#$img" "$T/mnt/$img" >/dev/null 2>>"$T/cycle.err" &&
			cmp "$T/mnt/$img/f2" "$T/src/$img/f2" 2>>"$T/cycle.err" &&
			"$SKIFF" umount "$T/mnt/$img" >/dev/null 2>>"$T/cycle.err"; then
			:
		else
			bad=$((bad + 1))
			umount "$T/mnt/$img" 2>/dev/null
		fi
		n=$((n + 1))
	done
	echo "$n $bad" >"$T/cycles.n"
}
# the second group of readers, 4 s on one half of its images, 4 s on the
# other; every run's figures in $T/group.out, failures counted
group_loop() {
	local half=0 n=0 bad=0 files k
	while [ ! -e "$T/readers.stop" ]; do
		files=()
		for ((k = 6 + half * 3; k < 9 + half * 3; k++)); do
			files+=("${imgs[k]}/f1" "${imgs[k]}/f2" "${imgs[k]}/f3")
		done
		rm -f "$T/group.stop"
		(sleep 4; touch "$T/group.stop") &
		"$READCHECK" -r 32 -R -e -d 120 -u "$T/group.stop" "$T/mnt" "$T/src" "${files[@]}" \
			>>"$T/group.out" 2>>"$T/group.err" || bad=$((bad + 1))
		wait
		half=$((1 - half))
		n=$((n + 1))
	done
	echo "$n $bad" >"$T/group.n"
}
soak() {
	fault_loop &
	local fl=$!
	cycle_loop &
	local cl=$!
	group_loop &
	local gl=$!
	sleep "$SECONDS_SOAK"
	touch "$T/readers.stop"
	wait "$fl" "$cl" "$gl"
}
e0=$(metric skiff_cache_evicted_chunks_total)
v0=$(metric skiff_verify_errors_total)
READ_FILES=()
for ((k = 0; k < 6; k++)); do
	READ_FILES+=("${imgs[k]}/f1" "${imgs[k]}/f2" "${imgs[k]}/f3")
done
READCHECK_FLAGS="-r 32 -R -e" t_ok "64 readers check every byte for ${SECONDS_SOAK} s under faults, eviction, mounts and unmounts" \
	eval 'under_readers "$T/mnt" "$T/src" soak'
diag "readers of 6 images: $(cat "$T/readers.out")"
read -r ngroups gbad <"$T/group.n"
t_is "... the readers going from 3 images to 3 others: $ngroups runs, none failed" "$gbad" 0
[ "$gbad" = 0 ] || diag "$(head -n 5 "$T/group.err")"
diag "their last run: $(tail -n 1 "$T/group.out")"
t_is "... none of them read a wrong byte" "$(awk '{ s += $6 } END { print s + 0 }' "$T/group.out")" 0
t_is "... none hung" "$(awk '{ s += $10 } END { print s + 0 }' "$T/group.out")" 0
read -r ncycles nbad <"$T/cycles.n"
t_ok "... $(cat "$T/faults.n") faults injected" test "$(cat "$T/faults.n")" -gt 0
t_ok "... the server failed requests as told ($(curl -s "http://127.0.0.1:$port/_log" | grep -vc '"fault": null'))" \
	test "$(curl -s "http://127.0.0.1:$port/_log" | grep -vc '"fault": null')" -gt 0
t_is "... $ncycles mounts, reads and unmounts of the other images, none failed" "$nbad" 0
t_ok "... at least one" test "$ncycles" -gt 0
t_ok "... chunks were evicted ($(($(metric skiff_cache_evicted_chunks_total) - e0)))" \
	test "$(metric skiff_cache_evicted_chunks_total)" -gt "$e0"
t_ok "... wrong bytes from the server were caught ($(($(metric skiff_verify_errors_total) - v0)))" \
	test "$(metric skiff_verify_errors_total)" -gt "$v0"
t_is "... no read was past its deadline" "$(sed -n 's/.* hung \([0-9]*\).*/\1/p' "$T/readers.out")" 0
curl -s -X POST "http://127.0.0.1:$port/_reset" >/dev/null
t_ok "once the faults stop, a pass of the readers is all right, no EIO" \
	"$READCHECK" -r 64 -R -d 60 "$T/mnt" "$T/src" "${ALL_FILES[@]}"
sleep 2	# a grace: the windows and evictions of the soak settle
after=$(counts)
diag "after: $after"
t_is "no mount left behind" "$(field mounts "$after")" "$(field mounts "$before")"
t_ok "no file descriptor growth ($(field fds "$before") -> $(field fds "$after"); 8 sockets of slack)" \
	test "$(field fds "$after")" -le $(($(field fds "$before") + 8))
t_ok "no thread growth ($(field threads "$before") -> $(field threads "$after"))" \
	test "$(field threads "$after")" -le $(($(field threads "$before") + 2))
t_ok "no memory growth (RSS $(field rss_kib "$before") -> $(field rss_kib "$after") KiB; 16 MiB of slack)" \
	test "$(field rss_kib "$after")" -le $(($(field rss_kib "$before") + 16384))
t_is "the serving process never died" "$(server_pid)" "$pid0"
for ((k = 0; k < NREAD; k++)); do
	skiff_umount "$T/mnt/${imgs[k]}" || t_ok "unmount ${imgs[k]}" false
done
t_ok "skiffd stops" stop_skiffd
done_testing
