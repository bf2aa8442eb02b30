#!/usr/bin/env bash
# The cache limit (--cache-max-size, fanotify frontend): skiffd keeps its cache
# directory under the limit by removing the files no registered image uses,
# least recently used first (an image unmounted earlier goes before one
# unmounted later), then by punching out chunks of mounted images that no
# read asked for within --cache-evict-grace seconds. Readers going through
# three mounted images that together pass the limit, page caches dropped
# at each pass, read every byte right while chunks are evicted under them
# and fetched again; the cache ends under its limit.
. "$(dirname "$0")/lib.sh"
need_root
for c in curl jq; do
	command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd

MIB=$((1 << 20))
LIMIT=$((20 * MIB))
READ_FILES=()
for img in a b c; do
	mkdir -p "$T/src/$img"
	for i in 1 2; do
		head -c $((4 * MIB)) /dev/urandom >"$T/src/$img/f$i"
		READ_FILES+=("$img/f$i")
	done
	t_ok "build image $img (8 MiB, 64K chunks)" \
		"$SKIFF" build -q --chunk-size 64K "$T/src/$img" "$T/store:$img" || done_testing
done
state() { "$SKIFF" status --json | jq -r ".$1"; }
blob_file() { echo "$T/cache/blobs/$(cache_name "$T/store:$1")"; }
reads_right() {
	local img f
	for img in "$@"; do
		for f in f1 f2; do
			cmp "$T/mnt/$img/$f" "$T/src/$img/$f" || return
		done
	done
}
# under_limit SECONDS: waits until the cache on disk is under the limit
under_limit() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		[ "$(state cache_bytes)" -le "$LIMIT" ] && return 0
		sleep 0.1
	done
	diag "cache on disk: $(state cache_bytes) bytes"
	return 1
}

t_fails "a limit that is not a size is refused" "$SKIFFD" --cache-max-size 20X --cache-dir "$T/x" --work-dir "$T/x" --socket "$T/x.sock"
t_grep "... naming the flag" "cache-max-size" "$T/.out"
t_ok "skiffd starts with --cache-max-size 20M --cache-evict-grace 1" \
	start_skiffd --frontend fanotify --cache-max-size 20M --cache-evict-grace 1 || done_testing
t_is "the limit is in /metrics" "$(metric skiff_cache_limit_bytes)" "$LIMIT"
t_grep "... and in skiff status" "cache limit 20.0 MiB, 0 B evicted so far" <("$SKIFF" status)

# 1. unused files go, the least recently used first
for img in a b; do
	t_ok "mount $img" skiff_mount "$T/store:$img" "$T/mnt/$img" || done_testing
	t_ok "... it reads right" reads_right "$img"
	t_ok "... unmount it" skiff_umount "$T/mnt/$img"
	sleep 0.1	# distinct mtimes
done
t_ok "a's and b's cache files stay while there is room" test -s "$(blob_file a)" -a -s "$(blob_file b)"
t_is "... nothing evicted" "$(metric skiff_cache_evictions_total)" 0
t_ok "mount c" skiff_mount "$T/store:c" "$T/mnt/c" || done_testing
t_ok "... it reads right" reads_right c
t_ok "the limit was passed: an eviction follows" metric_above skiff_cache_evictions_total 0
t_ok "... the cache is under its limit" under_limit 10
t_ok "... a's cache file, the least recently used, is gone" test ! -e "$(blob_file a)"
t_ok "... b's, used later, is kept" test -s "$(blob_file b)"
t_ok "... and c's, in use" test -s "$(blob_file c)"
t_is "... no chunk of a mounted image evicted" "$(metric skiff_cache_evicted_chunks_total)" 0
t_ok "... the bytes counted" test "$(metric 'skiff_cache_evicted_bytes_total{kind="file"}')" -ge $((8 * MIB))
t_grep "... and logged" "cache over its limit .*removed [0-9]+ unused files" "$T/skiffd.log"
f0=$(metric skiff_fetched_bytes_total)
t_ok "b mounted again" skiff_mount "$T/store:b" "$T/mnt/b" || done_testing
t_ok "... reads right" reads_right b
t_is "... from its kept cache file: nothing fetched" "$(metric skiff_fetched_bytes_total)" "$f0"

# 2. three mounted images pass the limit: their cold chunks go
t_ok "a mounted again" skiff_mount "$T/store:a" "$T/mnt/a" || done_testing
t_ok "... reads right, fetched again" reads_right a
t_ok "chunks of mounted images are evicted" metric_above skiff_cache_evicted_chunks_total 0
t_ok "... the cache is under its limit" under_limit 20
t_is "... every cache file stays marked under a limit, complete or not" \
	"$("$SKIFF" status --json | jq '[.images[].blobs[] | select(.watched)] | length')" 3
t_is "... images.json says their mounts opened them marked" \
	"$(jq '[.[] | select(.notify == true)] | length' "$T/work/images.json")" 3
t_is "... no read was denied" "$(metric skiff_events_failed_total)" 0
f0=$(metric skiff_fetched_chunks_total)
echo 3 >/proc/sys/vm/drop_caches
t_ok "every image reads right after the page cache is dropped" reads_right a b c
t_ok "... evicted chunks were fetched again" test "$(metric skiff_fetched_chunks_total)" -gt "$f0"

# 3. readers that keep going through two of the images, dropping the page
# cache of each file before each pass, while the third one's chunks go
# cold and are evicted; then through the evicted one and another, which
# fetch again what went while the one left out is evicted under them: no
# wrong byte, no failed read
# first the serving process is killed: its successor opens the cache
# files already marked, so its own punches raise events it must answer
# (with the cache lock held across the punch, every reader hung)
p0=$(server_pid)
kill -KILL "$p0"
new_server() { local p; p=$(server_pid) && [ "$p" != "$p0" ]; }
t_ok "the serving process killed, another serves" eval 'for i in $(seq 100); do new_server && break; sleep 0.1; done; new_server'
t_is "... images.json still says so" \
	"$(jq '[.[] | select(.notify == true)] | length' "$T/work/images.json")" 3
for phase in "a b" "c a"; do
	READ_FILES=()
	for img in $phase; do READ_FILES+=("$img/f1" "$img/f2"); done
	e0=$(metric skiff_cache_evicted_chunks_total)
	f0=$(metric skiff_fetched_chunks_total)
	t_ok "8 readers check every byte of ${phase/ / and } for 6 s under eviction" \
		under_readers "$T/mnt" "$T/src" sleep 6
	diag "readers: $(cat "$T/readers.out")"
	t_ok "... chunks were evicted meanwhile" test "$(metric skiff_cache_evicted_chunks_total)" -gt "$e0"
	[ "$phase" = "c a" ] &&
		t_ok "... and what the readers needed fetched again" test "$(metric skiff_fetched_chunks_total)" -gt "$f0"
done
t_ok "the cache is back under its limit" under_limit 20
t_is "... no read was denied" "$(metric skiff_events_failed_total)" 0
t_is "... no fetch failed" "$(metric skiff_fetch_errors_total)" 0

for img in a b c; do
	t_ok "unmount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops" stop_skiffd
t_no_grep "no eviction failed" "punching a hole|cache limit:" "$T/skiffd.log"

# 4. a limit set on a node whose mounts opened complete, unmarked cache
# files: the kernel decides at open whether a file raises pre-content
# events, so those mounts would read a punched chunk as zeros. Their
# chunks are never evicted, until the image is mounted again.
t_ok "skiffd starts without a limit" start_skiffd --frontend fanotify || done_testing
t_ok "mount a" skiff_mount "$T/store:a" "$T/mnt/a" || done_testing
t_ok "... it reads right, its cache file complete" reads_right a
t_ok "... unmount it" skiff_umount "$T/mnt/a"
t_ok "mount a again: its complete cache file opened unmarked" skiff_mount "$T/store:a" "$T/mnt/a" || done_testing
t_is "... unwatched" "$("$SKIFF" status --json | jq '.images[0].blobs[0].watched')" false
t_is "... images.json does not say its mount opened it marked" "$(jq '.[0].notify' "$T/work/images.json")" null
t_ok "skiffd stops with a complete mount up" stop_skiffd
LIMIT=$((4 * MIB))
t_ok "skiffd starts with --cache-max-size 4M over it" \
	start_skiffd --frontend fanotify --cache-max-size 4M --cache-evict-grace 1 || done_testing
t_ok "... and says that it cannot get under the limit" logged "nothing may free" 20
t_is "... images.json still does not say so" "$(jq '.[0].notify' "$T/work/images.json")" null
sleep 3	# three graces: the chunks are cold, passes run
t_is "... a's chunks were not evicted" "$(metric skiff_cache_evicted_chunks_total)" 0
echo 3 >/proc/sys/vm/drop_caches
t_ok "a reads right" reads_right a
t_ok "... a's cache file complete still" test "$(stat -c %b "$(blob_file a)")" -ge $((8 * MIB / 512))
t_ok "a unmounted" skiff_umount "$T/mnt/a"
t_ok "... mounted again, under the limit now" skiff_mount "$T/store:a" "$T/mnt/a" || done_testing
t_ok "... reads right" reads_right a
t_ok "... its chunks are evicted now" metric_above skiff_cache_evicted_chunks_total 0
echo 3 >/proc/sys/vm/drop_caches
t_ok "... and it reads right after" reads_right a
t_ok "unmount a" skiff_umount "$T/mnt/a"
t_ok "skiffd stops" stop_skiffd
done_testing
