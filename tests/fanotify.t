#!/usr/bin/env bash
# skiffd's fanotify frontend on the host kernel: lazy mounts that equal
# their source, fetch only what is read, survive a restart warm, share
# cache files between images, stand concurrent readers, outlive the
# holder process, and fail bad data with EIO, never with wrong bytes or a
# hang; a restart trusts only chunks recorded as verified.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
need_fanotify_skiffd

SRC=$T/src
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing
IMG=$T/store
t_ok "build it with 64K chunks" "$SKIFF" build -q --chunk-size 64K "$SRC" "$IMG:a" || done_testing
chunks=$("$SKIFF" inspect --json "$IMG:a" | jq '.blobs[0].chunks')
stored=$("$SKIFF" inspect --json "$IMG:a" | jq '.blobs[0].stored_size')
blob=$("$SKIFF" inspect --json "$IMG:a" | jq -r '.blobs[0].id')
first_file=$("$SKIFF" ls -R "$IMG:a" / | awk '$1 ~ /^-/ && $5 > 0 { print $NF; exit }')

# 1. a lazy mount equals its source, and the first full read fetches
#    every chunk exactly once (no read-ahead: counts are exact)
t_ok "skiffd starts (fanotify)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
MNT=$T/mnt
t_ok "skiff mount" skiff_mount "$IMG:a" "$MNT" || done_testing
t_is "nothing fetched at mount time" "$(metric skiff_fetched_chunks_total)" 0
t_ok "small file reads right" cmp "$MNT/files/small5" "$SRC/files/small5"
t_is "one small file fetched one chunk" "$(metric skiff_fetched_chunks_total)" 1
fb=$(metric skiff_fetched_bytes_total)
t_ok "... $fb bytes, under 1% of the $stored stored" test "$((fb * 100))" -lt "$stored"
t_ok "mounted tree equals the source (lazy)" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "every chunk fetched exactly once" "$(metric skiff_fetched_chunks_total)" "$chunks"
t_ok "event latencies are recorded (fetched)" \
	test "$(metric 'skiff_event_seconds_count{path="fetched"}')" -ge 1
t_is "... one per event that needed a fetch or was answered at once" \
	"$(($(metric 'skiff_event_seconds_count{path="fetched"}') + $(metric 'skiff_event_seconds_count{path="cached"}')))" \
	"$(metric skiff_events_total)"
t_is "no errors" "$(metric skiff_verify_errors_total)/$(metric skiff_fetch_errors_total)" 0/0
t_is "the complete blob is no longer watched" \
	"$("$SKIFF" status --json | jq '.images[0].blobs[0].watched')" false
t_ok "skiff status shows the image" "$SKIFF" status
t_grep "... with its mount point" "mounted at $MNT" "$T/.out"
t_ok "skiff umount" skiff_umount "$MNT"
t_fails "umount of something not mounted" "$SKIFF" umount "$MNT"

# 3. restart: the cache files persist and reads need no fetch at all
t_ok "skiffd stops cleanly on SIGTERM" stop_skiffd
t_grep "... after answering what it had" "signal 15: stopping" "$T/skiffd.log"
t_ok "skiffd restarts on the same cache" start_skiffd --frontend fanotify
t_ok "mount again" skiff_mount "$IMG:a" "$MNT"
sync
echo 3 >/proc/sys/vm/drop_caches
t_ok "tree equals the source after the restart" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "... with zero fetches" "$(metric skiff_fetched_chunks_total)" 0
skiff_umount "$MNT"
stop_skiffd

# read-ahead: a miss also fetches the rest of its file when that is
# small (within the limit, in the same backend read), never the files
# stored after it
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts with 256K of read-ahead (and 8M in the background)" \
	start_skiffd --frontend fanotify --readahead 256K --ahead 8M
skiff_mount "$IMG:a" "$MNT"
t_ok "small file reads right" cmp "$MNT/files/small5" "$SRC/files/small5"
t_is "one backend read" "$(metric skiff_backend_fetches_total)" 1
t_is "... of its one chunk, not the files stored after it" \
	"$(metric skiff_fetched_chunks_total)" 1
t_is "... counted as asked for" "$(metric skiff_fetched_demand_bytes_total)" \
	"$(metric skiff_fetched_bytes_total)"
t_ok "the first page of a file of two chunks" \
	dd if="$MNT/files/size65537" of=/dev/null bs=4k count=1 status=none
t_is "... is one more backend read" "$(metric skiff_backend_fetches_total)" 2
t_is "... that brought the whole file" "$(metric skiff_fetched_chunks_total)" 3
raf=$(metric skiff_fetched_readahead_file_bytes_total)
t_ok "... its second chunk read ahead within the file ($raf bytes)" test "$raf" -gt 0
t_is "... nothing read ahead into other files" \
	"$(metric skiff_fetched_readahead_across_bytes_total)" 0
fc=$(metric skiff_fetched_chunks_total)
t_ok "the first page of a large file" \
	dd if="$MNT/files/random-3.5M" of=/dev/null bs=4k count=1 status=none
t_is "... reads ahead nothing the kernel did not ask for" \
	"$(metric skiff_fetched_readahead_file_bytes_total)" "$raf"
t_ok "... fetching a few of its 56 chunks ($(($(metric skiff_fetched_chunks_total) - fc)))" \
	test "$(($(metric skiff_fetched_chunks_total) - fc))" -le 4
t_ok "the whole tree is right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "... every chunk still fetched once" "$(metric skiff_fetched_chunks_total)" "$chunks"
t_ok "background read-ahead windows ran for the sequential reads" \
	test "$(metric skiff_readahead_windows_total)" -gt 0
t_ok "... so most reads found their data ready or coming" \
	test "$(($(metric skiff_read_misses_total) * 2))" -lt "$(metric skiff_events_total)"
skiff_umount "$MNT"
stop_skiffd


# 4. two images that share a blob share one cache file
cp -a "$SRC" "$T/src2"
touch -d '2001-02-03 04:05:06.7' "$T/src2"
"$SKIFF" build -q --chunk-size 64K "$T/src2" "$IMG:b"
t_is "image b has the same blob" "$("$SKIFF" inspect --json "$IMG:b" | jq -r '.blobs[0].id')" "$blob"
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify
t_ok "mount image a" skiff_mount "$IMG:a" "$T/ma"
t_ok "mount image b" skiff_mount "$IMG:b" "$T/mb"
t_is "one cache file for both" "$(ls "$T/cache/blobs" | wc -l)" 1
t_ok "image b equals its source" timeout 300 "$TREECMP" "$T/src2" "$T/mb"
t_ok "image a equals its source" timeout 300 "$TREECMP" "$SRC" "$T/ma"
t_is "the shared chunks were fetched once" "$(metric skiff_fetched_chunks_total)" "$chunks"
skiff_umount "$T/ma"
skiff_umount "$T/mb"
stop_skiffd

# 5. sixteen concurrent readers of the same and of different files
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify
skiff_mount "$IMG:a" "$MNT"
bad=$(concurrent_readers 16 "$MNT" "$SRC" files/random-3.5M files/compressible.txt sparse/hole-middle-3M sparse/big-5G files/size65537 files/dup-copy-b)
t_is "16 concurrent readers all read the right bytes" "$bad" 0
t_ok "the whole tree is right afterwards" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "no chunk was fetched twice" "$(metric skiff_fetched_chunks_total)" "$chunks"
skiff_umount "$MNT"
stop_skiffd

# 6. a corrupted chunk and a missing blob: EIO in bounded time, skiffd
#    stays up, nothing unverified lands in the cache
rm -rf "$T/cache" "$T/work"
cp -a "$IMG" "$T/bad"
cp "$T/bad/blobs/sha256/$blob" "$T/blob.orig"
# no read-ahead: which files are cached must follow from what was read
t_ok "skiffd starts" start_skiffd --frontend fanotify --readahead 0 --ahead 0
t_ok "mount the image from a store we will damage" skiff_mount "$T/bad:a" "$MNT"
# the walk's first file with data owns the blob's first stored bytes
printf 'XX' | dd of="$T/bad/blobs/sha256/$blob" bs=1 seek=0 conv=notrunc status=none
t_fails "reading $first_file, whose chunk is damaged, fails" timeout 30 cat "$MNT$first_file"
t_grep "... with EIO" "Input/output error" "$T/.out"
t_ok "skiffd is still up" kill -0 "$SKIFFD_PID"
t_ok "... and serves other files" cmp "$MNT/files/random-3.5M" "$SRC/files/random-3.5M"
t_ok "a verify error is counted" test "$(metric skiff_verify_errors_total)" -ge 1
cp "$T/blob.orig" "$T/bad/blobs/sha256/$blob"
t_ok "after the store is repaired, the same file reads right" cmp "$MNT$first_file" "$SRC$first_file"
: >"$T/bad/blobs/sha256/$blob"
t_fails "with the blob gone from the store, an uncached file fails" \
	timeout 30 cat "$MNT/files/compressible.txt"
t_grep "... with EIO" "Input/output error" "$T/.out"
t_ok "a fetch error is counted" test "$(metric skiff_fetch_errors_total)" -ge 1
t_ok "skiffd is still up" kill -0 "$SKIFFD_PID"
skiff_umount "$MNT"
stop_skiffd
t_grep "skiffd logged the damaged chunk" "digest mismatch|does not decompress" "$T/skiffd.log"

# 7. the serving process killed while a reader waits: the holder keeps
#    the fanotify group, starts a new server and hands it the unanswered
#    event; the reader gets the right bytes, never the holes' zeros
rm -rf "$T/cache" "$T/work"
# slow while $T/slow exists: every server the holder starts inherits it,
# and the tree is checked at full speed once it is gone
touch "$T/slow"
export SKIFF_TEST_FETCH_DELAY_MS=2000 SKIFF_TEST_FETCH_DELAY_WHILE=$T/slow
t_ok "skiffd starts with a slow store" start_skiffd --frontend fanotify
unset SKIFF_TEST_FETCH_DELAY_MS SKIFF_TEST_FETCH_DELAY_WHILE
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
server=$("$SKIFF" status --json | jq .pid)
t_ok "a holder process ($SKIFFD_PID) runs the server ($server)" \
	test "$server" -gt 0 -a "$server" != "$SKIFFD_PID"
f=files/size65537
cat "$MNT/$f" >"$T/killed.out" 2>"$T/killed.err" &
reader=$!
t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total 0
kill -KILL "$server"
st=0
reaped "$reader" || st=$?
t_is "the reader finished without error" "$st" 0
t_ok "... and read the right bytes (not zeros)" cmp "$T/killed.out" "$SRC/$f"
t_grep "the holder saw the server die" "died \\(signal 9\\)" "$T/skiffd.log"
t_grep "... and handed its unanswered event on" "handed [0-9]+ unanswered" "$T/skiffd.log"
new=$("$SKIFF" status --json | jq .pid)
t_ok "a new server ($new) serves" test "$new" -gt 0 -a "$new" != "$server"
t_is "... the holder's second (generation 2)" "$("$SKIFF" status --json | jq .generation)" 2
t_ok "... which says it was handed the waiting read" \
	test "$("$SKIFF" status --json | jq .handed_over)" -ge 1
rm -f "$T/slow"
t_ok "the whole tree is right afterwards" timeout 300 "$TREECMP" "$SRC" "$MNT"
skiff_umount "$MNT"
stop_skiffd

# 8. the holder killed (no systemd) while a read waits on a fetch: the
#    server starts a new holder (skiffd, given the group and the holder's
#    journal), which pins the numbers of the events the dead holder had
#    taken and sweeps the rest before it reads the group; the server exits
#    once it has, and the new holder's own server serves those events
rm -rf "$T/cache" "$T/work"
touch "$T/slow"
export SKIFF_TEST_FETCH_DELAY_MS=1000 SKIFF_TEST_FETCH_DELAY_WHILE=$T/slow
t_ok "skiffd starts (no read-ahead, a slow store)" \
	start_skiffd --frontend fanotify --readahead 0 --ahead 0
unset SKIFF_TEST_FETCH_DELAY_MS SKIFF_TEST_FETCH_DELAY_WHILE
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
server=$("$SKIFF" status --json | jq .pid)
old=$SKIFFD_PID
cat "$MNT/$f" >"$T/orphan.out" 2>"$T/orphan.err" &
reader=$!
t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total 0
kill -KILL "$SKIFFD_PID"
wait "$SKIFFD_PID" 2>/dev/null
SKIFFD_PID=$server	# what the cleanup stops until the new holder is known
t_ok "the server hands the group to a new holder, then exits" \
	logged "the new holder took the group over: exiting" 10
t_ok "... which adopted the group and the journal" \
	logged "adopted [1-9][0-9]* unanswered events from the journal" 10
for _ in $(seq 1 100); do
	new=$("$SKIFF" status --json 2>/dev/null | jq .holder_pid) && [ "$new" -gt 0 ] 2>/dev/null &&
		[ "$new" != "$old" ] && break
	sleep 0.1
done
SKIFFD_PID=$new
t_ok "... under which a new server serves ($new)" test "$new" -gt 0 -a "$new" != "$old"
t_ok "the old server is gone" gone "$server"
st=0
reaped "$reader" 60 || st=$?
t_is "the reader finished without error" "$st" 0
t_ok "... with the right bytes (not zeros)" cmp "$T/orphan.out" "$SRC/$f"
t_ok "the new server served the dead holder's event" \
	test "$(metric skiff_events_adopted_total)" -ge 1
t_no_grep "... and none was lost" "answered with EIO" "$T/skiffd.log"
rm -f "$T/slow"
t_ok "the whole tree is right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_ok "skiff umount" skiff_umount "$MNT"
kill -TERM "$new"
for _ in $(seq 1 100); do
	gone "$new" && break
	sleep 0.1
done
t_ok "the new holder stops on SIGTERM" gone "$new"
SKIFFD_PID=

# 9. an image unregistered while a read of it waits on a fetch: the read
#    holds a reference on the cache file, so it ends with the right bytes
#    and the file is closed after it, not under it
rm -rf "$T/cache" "$T/work"
export SKIFF_TEST_FETCH_DELAY_MS=2000
t_ok "skiffd starts with a slow store" start_skiffd --frontend fanotify
unset SKIFF_TEST_FETCH_DELAY_MS
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
server=$("$SKIFF" status --json | jq .pid)
id=$("$SKIFF" status --json | jq -r '.images[0].id')
f=files/size65537
cat "$MNT/$f" >"$T/unreg.out" 2>"$T/unreg.err" &
reader=$!
t_ok "the reader waits on a fetch in flight" metric_above skiff_reads_total 0
t_is "the image is unregistered meanwhile" "$(curl -s -o /dev/null -w '%{http_code}' \
	--unix-socket "$SKIFF_SOCKET" -X DELETE "http://skiffd/v1/images/$id")" 200
st=0
reaped "$reader" || st=$?
t_is "the reader finished without error" "$st" 0
t_ok "... with the right bytes" cmp "$T/unreg.out" "$SRC/$f"
t_is "the server never died" "$("$SKIFF" status --json | jq .pid)" "$server"
t_is "no image is registered" "$("$SKIFF" status --json | jq '.images | length')" 0
open_blobs() { find "/proc/$server/fd" -lname "$T/cache/blobs/*" 2>/dev/null | wc -l; }
for _ in $(seq 1 100); do
	[ "$(open_blobs)" -eq 0 ] && break
	sleep 0.05
done
t_is "... and the server closed the cache file after the read" "$(open_blobs)" 0
umount "$MNT"
stop_skiffd

# 10. a restart trusts only chunks recorded as verified (cache_dir/verified):
#     garbage in the ranges of chunks never fetched (allocated, unrecorded)
#     is fetched again and overwritten before anybody reads it. A fetched
#     chunk altered on disk afterwards keeps its record and is served as
#     it is: the record guards against unverified writes (a crash between
#     write and record, a foreign write), not against later tampering.
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts (no read-ahead)" start_skiffd --frontend fanotify --readahead 0 --ahead 0
t_ok "mount" skiff_mount "$IMG:a" "$MNT"
t_ok "small file reads right" cmp "$MNT/files/small5" "$SRC/files/small5"
t_is "... one chunk fetched" "$(metric skiff_fetched_chunks_total)" 1
skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd
cf=$T/cache/blobs/$(cache_name "$IMG:a")
# data extents of the cache file: START END per line
extents() {
	python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end, pos = os.fstat(fd).st_size, 0
while pos < end:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    print(d, h)
    pos = h' "$1"
}
read -r x0 x1 <<<"$(extents "$cf")"
t_is "the cache file holds one extent" "$(extents "$cf" | wc -l)" 1
size=$(stat -c %s "$cf")
# the fetched chunk altered, its record left; garbage everywhere else
printf 'ZZZZ' | dd of="$cf" bs=1 seek="$x0" conv=notrunc status=none
head -c "$x0" /dev/urandom | dd of="$cf" conv=notrunc status=none
head -c "$((size - x1))" /dev/urandom | dd of="$cf" bs=64K seek="$x1" oflag=seek_bytes conv=notrunc status=none
t_is "the whole cache file is allocated now" "$(extents "$cf")" "0 $size"
t_ok "skiffd restarts on that cache" start_skiffd --frontend fanotify --readahead 0 --ahead 0
t_ok "mount again" skiff_mount "$IMG:a" "$MNT"
sync
echo 3 >/proc/sys/vm/drop_caches
# one process reads them all (a cmp per file took a minute), the
# source's data only (treecmp skips holes too: the 5G sparse file); files
# with small5's bytes are served from the altered chunk
wrong=$(python3 - "$SRC" "$MNT" <<'PY'
import os, sys
src, mnt = sys.argv[1], sys.argv[2]
altered = open(os.path.join(src, "files/small5"), "rb").read()

def same(p, q):
    a, b = os.open(p, os.O_RDONLY), os.open(q, os.O_RDONLY)
    try:
        size, pos = os.fstat(a).st_size, 0
        if os.fstat(b).st_size != size:
            return False
        while pos < size:
            try:
                d = os.lseek(a, pos, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(a, d, os.SEEK_HOLE)
            for o in range(d, h, 1 << 20):
                n = min(1 << 20, h - o)
                if os.pread(a, n, o) != os.pread(b, n, o):
                    return False
            pos = h
        return True
    finally:
        os.close(a)
        os.close(b)

bad = []
for d, _, names in os.walk(src):
    for n in names:
        p = os.path.join(d, n)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        if os.path.getsize(p) == len(altered) and open(p, "rb").read() == altered:
            continue
        try:
            ok = same(p, os.path.join(mnt, os.path.relpath(p, src)))
        except OSError:
            ok = False
        if not ok:
            bad.append(os.path.relpath(p, src))
print(len(bad), *bad)
PY
)
t_is "every file over the garbage reads exactly its source bytes" "$wrong" 0
t_is "... every unrecorded chunk fetched again, the recorded one not" \
	"$(metric skiff_fetched_chunks_total)" "$((chunks - 1))"
t_fails "the altered chunk, recorded as verified, is served as it is on disk" \
	cmp "$MNT/files/small5" "$SRC/files/small5"
skiff_umount "$MNT"
stop_skiffd

# 11. a chunk table that cannot be kept in cache_dir/tables fails the
#     registration, naming the path and the error
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify
if chattr +i "$T/cache/tables" 2>/dev/null; then
	t_fails "a mount with the tables directory immutable fails" "$SKIFF" mount "$IMG:a" "$MNT"
	t_grep "... naming the table's path and the error" \
		"tables/$(table_digest "$IMG:a"): Operation not permitted" "$T/.out"
	chattr -i "$T/cache/tables"
	t_ok "with it writable again the mount succeeds" skiff_mount "$IMG:a" "$MNT"
	t_ok "... and reads right" cmp "$MNT/files/small5" "$SRC/files/small5"
	skiff_umount "$MNT"
else
	t_skip "chattr +i does not work on $T"
fi
stop_skiffd

done_testing
