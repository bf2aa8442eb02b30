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

t_ok "skiffd starts with the cachefiles frontend" start_skiffd --frontend cachefiles || done_testing
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
t_ok "skiff umount" skiff_umount "$MNT"

events=$(metric skiff_events_total)
t_ok "mount again" skiff_mount "$IMG:a" "$MNT" --id img1
sync
echo 3 >/proc/sys/vm/drop_caches
t_ok "tree equals the source from the kernel's cache" timeout 600 "$TREECMP" "$SRC" "$MNT"
t_is "... with zero READ requests" "$(metric skiff_events_total)" "$events"
t_ok "skiff umount" skiff_umount "$MNT"
stop_skiffd
done_testing
