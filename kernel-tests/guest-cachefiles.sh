#!/usr/bin/env bash
# guest-cachefiles.sh: runs INSIDE the QEMU test guest and prints TAP:
# skiffd's cachefiles frontend on Linux 6.1 with on-demand fscache. Mounts
# by fsid equal their source, fetch only what is read, and a remount
# reads everything from the kernel's own cache with zero READs.
. "$(dirname "$0")/../tests/lib.sh"

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

stop_skiffd
done_testing
