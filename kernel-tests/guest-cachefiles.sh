#!/usr/bin/env bash
# guest-cachefiles.sh: runs INSIDE the QEMU test guest and prints TAP:
# skiffd's cachefiles frontend on Linux 6.1 or 6.12 with on-demand fscache. Mounts
# by fsid equal their source, fetch only what is read, and a remount
# reads everything from the kernel's own cache with zero READs. Section 10
# serves an image from nginx on the guest's loopback (the layout comes from
# host-cachefiles.sh, through tap-guest.sh --host). Section 11
# unregisters a mounted image while a read of it waits on a fetch. Section
# 12: a chunk table that cannot be kept, or is gone at the kernel's OPEN.
# Section 13: a cache limit culls the kernel's cache files of unused
# volumes, least recently used first.
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/netlib.sh"

[ "${SKIFF_GUEST:-}" = 1 ] ||
	skip_all "runs inside the test guest: kernel-tests/run-guest.sh $0"
need_root
[ -c /dev/cachefiles ] || skip_all "no /dev/cachefiles in this kernel"

# the cachefiles cache must be on ext4: run-guest.sh mounts one here
export SKIFF_TEST_CACHE=/var/cache/skiff/cf
SRC=/var/cache/skiff/src	# xattrs need more than the guest's tmpfs
rm -rf "$SRC" "$SKIFF_TEST_CACHE"
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing
IMG=$T/store
t_ok "build it with 64K chunks" "$SKIFF" build -q --chunk-size 64K "$SRC" "$IMG:a" || done_testing
chunks=$("$SKIFF" inspect --json "$IMG:a" | jq '.blobs[0].chunks')
stored=$("$SKIFF" inspect --json "$IMG:a" | jq '.blobs[0].stored_size')

t_ok "skiffd starts with the cachefiles frontend" start_skiffd --frontend cachefiles --readahead 0 --ahead 0 || done_testing
t_grep "... and says so" "frontend cachefiles" "$T/skiffd.log"
MNT=$T/mnt
t_ok "skiff mount (fsid)" skiff_mount "$IMG:a" "$MNT" --id img1 || done_testing
t_grep "mounted by fsid" "erofs.*fsid=img1" /proc/mounts
t_is "nothing fetched at mount time" "$(metric skiff_fetched_chunks_total)" 0
t_ok "small file reads right" cmp "$MNT/files/small5" "$SRC/files/small5"
t_is "one small file fetched one chunk" "$(metric skiff_fetched_chunks_total)" 1
fb=$(metric skiff_fetched_bytes_total)
t_ok "... $fb bytes, under 1% of the $stored stored" test "$((fb * 100))" -lt "$stored"
t_ok "mounted tree equals the source" timeout 600 "$TREECMP" "$SRC" "$MNT"
t_is "every chunk fetched exactly once" "$(metric skiff_fetched_chunks_total)" "$chunks"
# the one request path (loader/request.c) counts in both frontends alike
t_ok "READ latencies are recorded (fetched)" \
	test "$(metric 'skiff_event_seconds_count{path="fetched"}')" -ge 1
t_is "... one per READ, fetched or answered at once" \
	"$(($(metric 'skiff_event_seconds_count{path="fetched"}') + $(metric 'skiff_event_seconds_count{path="cached"}')))" \
	"$(metric skiff_events_total)"
t_is "no errors" "$(metric skiff_verify_errors_total)/$(metric skiff_fetch_errors_total)" 0/0
t_is "skiff status shows the blob wholly cached" \
	"$("$SKIFF" status --json | jq '.images[0].blobs[0] | .ready_bytes == .size')" true
closes=$(metric skiff_closes_total)
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "the kernel closed the bootstrap and the blob" test "$(($(metric skiff_closes_total) - closes))" -ge 2

events=$(metric skiff_events_total)
t_ok "mount again" skiff_mount "$IMG:a" "$MNT" --id img1
sync
echo 3 >/proc/sys/vm/drop_caches
t_ok "tree equals the source from the kernel's cache" timeout 600 "$TREECMP" "$SRC" "$MNT"
t_is "... with zero READ requests" "$(metric skiff_events_total)" "$events"
t_ok "skiff umount" skiff_umount "$MNT"
blob=$("$SKIFF" inspect --json "$IMG:a" | jq -r '.blobs[0].id')
first_file=$("$SKIFF" ls -R "$IMG:a" / | awk '$1 ~ /^-/ && $5 > 0 { print $NF; exit }')

# 5. eight concurrent readers of the same and of different files
t_ok "mount with a fresh fsid" skiff_mount "$IMG:a" "$MNT" --id img5
bad=$(concurrent_readers 8 "$MNT" "$SRC" files/random-3.5M files/compressible.txt sparse/hole-middle-3M files/size65537)
t_is "8 concurrent readers all read the right bytes, none hung" "$bad" 0
skiff_umount "$MNT"

# 4. two images sharing a blob, mounted in one domain: one OPEN for it
cp -a "$SRC" "$T/src2"
touch -d '2001-02-03 04:05:06.7' "$T/src2"
"$SKIFF" build -q --chunk-size 64K "$T/src2" "$IMG:b"
t_is "image b has the same blob" "$("$SKIFF" inspect --json "$IMG:b" | jq -r '.blobs[0].id')" "$blob"
opens=$(metric skiff_opens_total)
t_ok "mount image a in domain d1" skiff_mount "$IMG:a" "$T/ma" --id da --domain d1
t_ok "mount image b in domain d1" skiff_mount "$IMG:b" "$T/mb" --id db --domain d1
t_ok "image a equals its source" timeout 600 "$TREECMP" "$SRC" "$T/ma"
t_ok "image b equals its source" timeout 600 "$TREECMP" "$T/src2" "$T/mb"
t_is "three OPENs: two bootstraps and the shared blob once" \
	"$(($(metric skiff_opens_total) - opens))" 3
skiff_umount "$T/ma"
skiff_umount "$T/mb"

# 6. a blob missing from the store: EIO in bounded time, skiffd serves on
cp -a "$IMG" "$T/gone"
rm "$T/gone/blobs/sha256/$blob"
t_ok "an image whose blob is gone still mounts" skiff_mount "$T/gone:a" "$T/mg" --id gone
t_fails "reading its data fails" timeout 60 cat "$T/mg/files/small5"
t_grep "... with EIO, not a hang" "Input/output error" "$T/.out"
t_ok "skiffd is still up" kill -0 "$SKIFFD_PID"
t_ok "... and serves another image" skiff_mount "$IMG:a" "$MNT" --id img6
t_ok "... correctly" cmp "$MNT/files/random-3.5M" "$SRC/files/random-3.5M"
skiff_umount "$MNT"
skiff_umount "$T/mg"

# 7. a corrupted chunk: refused, nothing wrong cached, right after repair
cp -a "$IMG" "$T/bad"
cp "$T/bad/blobs/sha256/$blob" "$T/blob.orig"
t_ok "mount from a store we will damage" skiff_mount "$T/bad:a" "$MNT" --id bad
# the walk's first file with data owns the blob's first stored bytes
printf 'XX' | dd of="$T/bad/blobs/sha256/$blob" bs=1 seek=0 conv=notrunc status=none
t_fails "reading $first_file, whose chunk is damaged, fails" timeout 60 cat "$MNT$first_file"
t_grep "... with EIO" "Input/output error" "$T/.out"
t_ok "a verify error is counted" test "$(metric skiff_verify_errors_total)" -ge 1
cp "$T/blob.orig" "$T/bad/blobs/sha256/$blob"
t_ok "after the store is repaired, the file reads right" cmp "$MNT$first_file" "$SRC$first_file"
skiff_umount "$MNT"

# 8. prefetch after mount fills the kernel's cache files: a full read
#    after it sends no READ
t_ok "mount with a fresh fsid" skiff_mount "$IMG:a" "$MNT" --id pf8
t_ok "skiff prefetch --all MNT" "$SKIFF" prefetch --all "$MNT"
t_grep "... done" "prefetch of pf8 done" "$T/.out"
t_ok "... fetched as prefetch" test "$(metric skiff_prefetch_chunks_total)" -gt 0
events=$(metric skiff_events_total)
sync; echo 3 >/proc/sys/vm/drop_caches
t_ok "tree equals the source after the prefetch" timeout 600 "$TREECMP" "$SRC" "$MNT"
t_is "... with zero READ requests" "$(metric skiff_events_total)" "$events"
skiff_umount "$MNT"

# 9. prefetch of an image before it is mounted waits for the kernel to
#    open its blob, then fills it
t_ok "skiff prefetch --all --no-wait IMAGE (not mounted)" \
	"$SKIFF" prefetch --all --no-wait --id pf9 "$IMG:a"
for _ in $(seq 100); do
	st=$("$SKIFF" status --json | jq -r '.images[] | select(.id == "pf9") | .prefetch.state')
	[ "$st" = waiting ] && break
	sleep 0.1
done
t_is "... waits for the kernel to open the blob" "$st" waiting
t_ok "mount it" skiff_mount "$IMG:a" "$MNT" --id pf9
t_ok "skiff prefetch then finishes (--all again: nothing left to fetch)" \
	"$SKIFF" prefetch --all "$MNT"
events=$(metric skiff_events_total)
sync; echo 3 >/proc/sys/vm/drop_caches
t_ok "the tree reads right" timeout 600 "$TREECMP" "$SRC" "$MNT"
t_is "... with zero READ requests" "$(metric skiff_events_total)" "$events"
skiff_umount "$MNT"

# 10. an image from a web server: nginx on the guest's own loopback serves
#     the OCI layout that host-cachefiles.sh built on the host (read over
#     9p; nginx's pid, logs and temp files in $T, on tmpfs). skiffd, with
#     its default read-ahead, merges chunk ranges into few requests; once
#     all is cached, a read after dropping the page cache with the server
#     gone sends no READ and no request (an attempt would be counted, and
#     would fail the read): one read checks both, as each costs 30-50 s.
http_source() {
	local www=${SKIFF_HOST_DIR:-}/www mnt=$T/mweb big=files/random-3.5M
	local port url req0 req ch need reads events t0=$SECONDS t1
	if [ -z "${SKIFF_HOST_DIR:-}" ] || [ ! -f "$www/layout/index.json" ]; then
		t_skip "HTTP source: no layout from the host half (run kernel-tests/cachefiles.t)"
		return
	fi
	if ! command -v nginx >/dev/null; then
		t_skip "HTTP source: nginx missing (scripts/setup.sh installs it)"
		return
	fi
	# the same reproducible tree, so $SRC is the served image's source
	t_is "the host's layout holds the guest's own build of the tree" \
		"$(manifest_of "$www/layout:a")" "$(manifest_of "$IMG:a")"
	# -net none leaves the guest its loopback only, down until raised
	t_ok "the guest's loopback is up" ip link set lo up || return
	# the loopback is the guest's own and holds nothing else, so a fixed
	# port (free_port starts python3: 3 s under TCG)
	port=18080
	t_ok "nginx serves the layout on 127.0.0.1:$port" start_nginx web "$port" "root $www;" || return
	url=http://127.0.0.1:$port/layout
	t_ok "skiffd stops" stop_skiffd
	t_ok "skiffd starts again with its default read-ahead" start_skiffd --frontend cachefiles || return
	t_ok "skiff mount $url#a" skiff_mount "$url#a" "$mnt" --id web || return
	t_is "nothing of the data blob fetched at mount time" "$(metric skiff_fetched_chunks_total)" 0

	req0=$(metric_sum skiff_backend_requests_total)
	events=$(metric skiff_events_total)
	t1=$SECONDS
	t_ok "a sequential read of $big gives the right bytes" cmp "$mnt/$big" "$SRC/$big"
	ch=$(metric skiff_fetched_chunks_total)
	reads=$(metric skiff_reads_total)
	events=$(($(metric skiff_events_total) - events))
	req=$(($(metric_sum skiff_backend_requests_total) - req0))
	need=$((($(stat -c %s "$SRC/$big") + 65535) / 65536))
	diag "sequential read: $events READs ($reads needing a fetch or a wait), $ch chunks fetched ($need in the file) in $req HTTP requests, $((SECONDS - t1)) s"
	t_ok "... $req HTTP requests for its $ch chunks: merged (under a quarter)" \
		test "$ch" -ge "$need" -a "$((req * 4))" -lt "$ch"

	t1=$SECONDS
	t_ok "the tree equals the source" timeout 600 "$TREECMP" "$SRC" "$mnt"
	diag "whole tree: $((SECONDS - t1)) s"
	t_is "every chunk fetched exactly once" "$(metric skiff_fetched_chunks_total)" "$chunks"
	req=$(metric_sum skiff_backend_requests_total)
	diag "HTTP requests in all (index, manifest, bootstrap, chunk table, data): $req for $chunks chunks"
	t_ok "... in $req HTTP requests in all (under a quarter of $chunks)" test "$((req * 4))" -lt "$chunks"
	t_is "no failed attempts, retries, failed fetches or bad chunks" \
		"$(metric_sum skiff_backend_errors_total)/$(metric_sum skiff_backend_retries_total)/$(metric skiff_fetch_errors_total)/$(metric skiff_verify_errors_total)" 0/0/0/0
	t_ok "nginx answered range requests" grep -q "GET /layout/blobs/sha256/.* 206 bytes=" "$T/web/access.log"
	t_is "nginx logged as many requests as skiffd counted" "$(wc -l <"$T/web/access.log")" "$req"

	stop_pid "$NGINX_PID"
	t_fails "nginx is stopped" curl -s -o /dev/null "$url/index.json"
	events=$(metric skiff_events_total)
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t1=$SECONDS
	t_ok "after dropping caches, with nginx gone, the tree reads right (all cached)" \
		timeout 600 "$TREECMP" "$SRC" "$mnt"
	diag "whole tree again: $((SECONDS - t1)) s"
	t_is "... with no READ and no HTTP request" \
		"$(metric skiff_events_total)/$(metric_sum skiff_backend_requests_total)" "$events/$req"
	t_ok "skiff umount" skiff_umount "$mnt"
	diag "HTTP source section: $((SECONDS - t0)) s"
}
http_source

# right_or_eio STATUS OUT ERR EXPECTED: a reader's result is the right
# bytes, or EIO with at most a right prefix read before it
right_or_eio() {
	if [ "$1" = 0 ]; then
		cmp "$2" "$4"
	else
		grep -q "Input/output error" "$3" && cmp -n "$(stat -c %s "$2")" "$2" "$4"
	fi
}

# 11. an image unregistered through the API (DELETE, no umount) while a
#     read of it waits on a slow fetch. Its mount stays, so the kernel's
#     objects stay open, and they name the image: the read ends with the
#     right bytes (or EIO, never wrong ones), the server lives on, the
#     mount still reads, and the other image of the domain, whose blob
#     object the unregistered one opened, still finds that object (it
#     looks at the object's image; MALLOC_PERTURB_ fills freed memory, so
#     a look at a freed image finds nothing instead of stale bytes).
unregister_during_read() {
	local f=files/size65537 server opens0 reads0 reader st watchdog got t0=$SECONDS
	stop_skiffd
	export SKIFF_TEST_FETCH_DELAY_MS=2000 MALLOC_PERTURB_=165
	t_ok "skiffd restarts with a slow store (2 s a fetch)" \
		start_skiffd --frontend cachefiles --readahead 0 --ahead 0
	unset SKIFF_TEST_FETCH_DELAY_MS MALLOC_PERTURB_
	[ -n "$SKIFFD_PID" ] || return
	opens0=$(metric skiff_opens_total)
	t_ok "mount image a in domain du" skiff_mount "$IMG:a" "$T/mu1" --id u1 --domain du || return
	# the blob's one OPEN in the domain comes while only u1 is registered:
	# the object names u1
	for _ in $(seq 1 100); do
		[ "$(($(metric skiff_opens_total) - opens0))" -ge 2 ] && break
		sleep 0.05
	done
	t_is "the kernel opened u1's bootstrap and the blob" "$(($(metric skiff_opens_total) - opens0))" 2
	t_ok "mount image b in domain du (shares a's blob object)" \
		skiff_mount "$IMG:b" "$T/mu2" --id u2 --domain du || return
	server=$("$SKIFF" status --json | jq .pid)
	reads0=$(metric skiff_reads_total)
	cat "$T/mu1/$f" >"$T/unreg.out" 2>"$T/unreg.err" &
	reader=$!
	t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total "$reads0"
	t_is "image u1 is unregistered meanwhile" "$(curl -s -o /dev/null -w '%{http_code}' \
		--unix-socket "$SKIFF_SOCKET" -X DELETE "http://skiffd/v1/images/u1")" 200
	st=0
	reaped "$reader" || st=$?
	got=$(stat -c %s "$T/unreg.out")
	diag "reader: status $st, $got bytes, $(cat "$T/unreg.err")"
	t_ok "the reader got the right bytes or a clean EIO, never wrong bytes" \
		right_or_eio "$st" "$T/unreg.out" "$T/unreg.err" "$SRC/$f"
	t_is "the server never died" "$("$SKIFF" status --json | jq .pid)" "$server"
	t_is "u1 is no longer registered" \
		"$("$SKIFF" status --json | jq '[.images[] | select(.id == "u1")] | length')" 0
	t_ok "u1's mount still reads right" cmp "$T/mu1/files/small5" "$SRC/files/small5"
	t_ok "u2 still finds the shared blob object: skiff status shows its fill" \
		test "$("$SKIFF" status --json |
			jq '.images[] | select(.id == "u2") | .blobs[0].ready_bytes // 0')" -gt 0
	t_ok "skiffd serves u2" cmp "$T/mu2/files/size4097" "$T/src2/files/size4097"
	t_ok "u1 unmounts (the kernel closes objects naming the unregistered image)" umount "$T/mu1"
	t_ok "skiff umount u2" skiff_umount "$T/mu2"
	t_is "the server lives on after the CLOSEs" "$("$SKIFF" status --json | jq .pid)" "$server"
	diag "unregister section: $((SECONDS - t0)) s"
}
unregister_during_read

# 12. the chunk table a blob OPEN needs, kept in cache_dir/tables by the
#     registration: a registration that cannot keep it fails, naming the
#     path and the error; an OPEN takes the table registration verified,
#     so one that finds the kept copy gone still serves the blob, and
#     never reads the source on the event thread
kept_tables() {
	local src3=$T/src3 blob3 td3 t0=$SECONDS
	mkdir -p "$src3"
	head -c 200000 /dev/urandom >"$src3/data"
	echo small >"$src3/small"
	t_ok "build a third image (its table not kept yet)" \
		"$SKIFF" build -q --chunk-size 64K "$src3" "$IMG:c" || return
	blob3=$("$SKIFF" inspect --json "$IMG:c" | jq -r '.blobs[0].id')
	td3=$(table_digest "$IMG:c")
	mkdir -p "$T/mc"
	t_ok "the tables directory made immutable" chattr +i "$SKIFF_TEST_CACHE/tables" || return
	t_fails "a mount that cannot keep the blob's table fails" \
		"$SKIFF" mount "$IMG:c" "$T/mc" --id kt1
	t_grep "... naming the path and the error" \
		"tables/$td3: Operation not permitted" "$T/.out"
	chattr -i "$SKIFF_TEST_CACHE/tables"
	t_ok "skiffd is still up" kill -0 "$SKIFFD_PID"
	# registered (the table kept), then the kept table removed before
	# the kernel's OPEN: a plain mount by fsid, as skiff mount does
	t_is "image c registers without a mount" "$(curl -s -o /dev/null -w '%{http_code}' \
		--unix-socket "$SKIFF_SOCKET" -X POST -d "{\"ref\": \"$IMG:c\", \"id\": \"kt2\"}" \
		http://skiffd/v1/images)" 200
	rm -f "$SKIFF_TEST_CACHE/tables/$td3"
	mkdir -p "$T/mk"
	t_ok "the kernel mounts it (the bootstrap OPEN succeeds)" mount -t erofs -o fsid=kt2 none "$T/mk" &&
		_t_mounts+=("$T/mk")
	# the blob's table is skiffd's since registration: the OPEN reads
	# neither the kept copy nor the source
	t_ok "its data reads right without the kept table" timeout 60 cmp "$T/mk/data" "$src3/data"
	t_ok "... and its small file" timeout 60 cmp "$T/mk/small" "$src3/small"
	t_ok "... the kept table was not needed again" test ! -e "$SKIFF_TEST_CACHE/tables/$td3"
	t_no_grep "... and nothing was logged about it" "chunk table" "$T/skiffd.log"
	t_ok "skiffd still answers" "$SKIFF" status
	umount "$T/mk"
	curl -s -o /dev/null --unix-socket "$SKIFF_SOCKET" -X DELETE http://skiffd/v1/images/kt2
	diag "kept-table section: $((SECONDS - t0)) s"
}
kept_tables

# 13. a cache limit in cachefiles mode: the kernel's cache files no
#     registered image names are culled, least recently used first, with
#     skiffd's records of them; a mounted image's stay, and so do those of
#     an image still registered though unmounted (the oldest here); an
#     image culled reads right when it comes back, fetched again
cache_limit() {
	local t0=$SECONDS k f0 e0 cache=$SKIFF_TEST_CACHE
	stop_skiffd
	rm -rf "$cache"
	for k in 0 1 2 3; do
		mkdir -p "$T/src-cl$k"
		head -c $((3 << 20)) /dev/urandom >"$T/src-cl$k/f1"
		head -c $((3 << 20)) /dev/urandom >"$T/src-cl$k/f2"
		"$SKIFF" build -q --chunk-size 64K "$T/src-cl$k" "$IMG:cl$k" || { t_ok "build image cl$k" false; return; }
	done
	t_ok "skiffd starts with a 22 MiB cache limit" \
		start_skiffd --frontend cachefiles --cache-max-size 22M --cache-evict-grace 1 || return
	# the kernel links an object file into the cache once its mount
	# goes (before, it is unnamed): wait for it
	objs() { find "$cache/fscache/cache" -path "*Ierofs,$1/*" -type f 2>/dev/null | wc -l; }
	linked() { local i; for ((i = 0; i < 100; i++)); do [ "$(objs "$1")" -ge 2 ] && return; sleep 0.1; done; return 1; }
	reads() { cmp "$T/m-$1/f1" "$T/src-$1/f1" && cmp "$T/m-$1/f2" "$T/src-$1/f2"; }
	t_ok "image cl0 (6 MiB) mounted" skiff_mount "$IMG:cl0" "$T/m-cl0" --id cl0 || return
	t_ok "... reads right" reads cl0
	t_ok "... unmounted by the kernel alone: still registered" eval 'umount "$T/m-cl0" && linked cl0'
	for k in 1 2; do
		t_ok "image cl$k (6 MiB) mounted" skiff_mount "$IMG:cl$k" "$T/m-cl$k" --id "cl$k" || return
		t_ok "... reads right" reads "cl$k"
		t_ok "... unmounted, its kernel cache files linked" eval "skiff_umount $T/m-cl$k && linked cl$k"
	done
	t_ok "they stay while there is room" test "$(objs cl1)" -ge 2 -a "$(objs cl2)" -ge 2
	t_ok "... with the records of their verified chunks" test -n "$(ls "$cache/verified/erofs,cl1")"
	t_is "... nothing evicted" "$(metric skiff_cache_evictions_total)" 0
	t_ok "image cl3 mounted" skiff_mount "$IMG:cl3" "$T/m-cl3" --id cl3 || return
	t_ok "... reads right, passing the limit" reads cl3
	# 18 MiB are linked files: only the mounted image's unnamed ones,
	# counted by what skiffd wrote to them, pass the limit
	t_ok "an eviction follows (the mounted image's unnamed files counted)" \
		metric_above skiff_cache_evicted_files_total 0
	diag "$(grep -m 1 "cache over its limit" "$T/skiffd.log")"
	diag "fscache: $(find "$cache/fscache/cache" -type f | sed "s|$cache/fscache/cache/||" | tr '\n' ' ')"
	t_is "... cl1's files, the least recently used unregistered, are culled" "$(objs cl1)" 0
	t_ok "... cl0's, older but registered, stay" test "$(objs cl0)" -ge 2
	t_ok "... cl2's, used later, stay" test "$(objs cl2)" -ge 2
	t_is "... cl1's records went with them" "$(ls "$cache/verified/erofs,cl1" 2>/dev/null | wc -l)" 0
	t_ok "... counted" test "$(metric 'skiff_cache_evicted_bytes_total{kind="file"}')" -ge $((6 << 20))
	t_grep "... and logged" "cache over its limit .*removed [1-9][0-9]* unused files" "$T/skiffd.log"
	e0=$(metric skiff_events_total)
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t_ok "the mounted image reads right" reads cl3
	t_is "... from the kernel's cache, untouched: zero READs" "$(metric skiff_events_total)" "$e0"
	f0=$(metric skiff_fetched_chunks_total)
	t_ok "image cl1 mounted again" skiff_mount "$IMG:cl1" "$T/m-cl1" --id cl1 || return
	t_ok "... reads right" reads cl1
	t_ok "... fetched again" test "$(metric skiff_fetched_chunks_total)" -gt "$f0"
	t_ok "unmount cl1 and cl3" eval 'skiff_umount "$T/m-cl1" && skiff_umount "$T/m-cl3"'
	curl -s -o /dev/null --unix-socket "$SKIFF_SOCKET" -X DELETE http://skiffd/v1/images/cl0
	diag "cache-limit section: $((SECONDS - t0)) s"
}
cache_limit

# 14. file-aware read-ahead with the kernel's cache files (defaults, 1 MiB
#     chunks): 40 of 100 small files read in a random order fetch their
#     own chunks and nothing across files; 100 more read in the order
#     they are stored (a stream: READs starting where the last ended)
#     cost few requests
file_readahead() {
	local t0=$SECONDS i f0 r0 reads
	stop_skiffd
	rm -rf "$SKIFF_TEST_CACHE"
	mkdir -p "$T/src-ra"
	for i in $(seq 0 199); do
		head -c $((1024 + i * 997 % 40000)) /dev/urandom >"$T/src-ra/$(printf 'f%03d' "$i")"
	done
	"$SKIFF" build -q "$T/src-ra" "$IMG:ra" || { t_ok "build image ra" false; return; }
	t_ok "skiffd starts (cachefiles, default read-ahead)" start_skiffd --frontend cachefiles || return
	t_ok "image ra mounted" skiff_mount "$IMG:ra" "$T/m-ra" --id ra || return
	same() { local f; for f in "$@"; do cmp "$T/m-ra/$f" "$T/src-ra/$f" || return 1; done; }
	mapfile -t picked < <(seq 0 99 | shuf -n 40 --random-source=<(yes) | xargs printf 'f%03d\n')
	t_ok "40 of its first 100 files, in a random order, read right" same "${picked[@]}"
	t_is "... fetching their 40 chunks, not one of another file" \
		"$(metric skiff_fetched_chunks_total)" 40
	t_is "... nothing read ahead across files" \
		"$(metric skiff_fetched_readahead_across_bytes_total)" 0
	r0=$(metric skiff_backend_fetches_total)
	t_ok "the other 100 in stored order read right" same $(seq 100 199 | xargs printf 'f%03d ')
	reads=$(($(metric skiff_backend_fetches_total) - r0))
	t_ok "... in few requests ($reads)" test "$reads" -le 10
	t_ok "... reading ahead across files" metric_above skiff_fetched_readahead_across_bytes_total 0
	t_ok "skiff umount" skiff_umount "$T/m-ra"
	diag "read-ahead section: $((SECONDS - t0)) s"
}
file_readahead

stop_skiffd
done_testing
