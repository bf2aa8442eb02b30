#!/usr/bin/env bash
# The cache disk fills up (fanotify frontend): skiffd's cache is on a
# small ext4 of its own, and a file takes all its room but a little. Reads
# that need a fill then fail with EIO, never with wrong bytes or zeros; an
# image already cached is served on; skiffd says so once for the episode,
# not once per read, and counts it. With room again every read is right:
# no chunk whose write failed was taken for ready.
. "$(dirname "$0")/lib.sh"
need_root
for c in curl mkfs.ext4 fallocate; do
	command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd

# images a and b: four random files of 8 MiB each, 64K chunks
random_images "$T/src" 8 || done_testing
t_ok "a 96 MiB ext4 for the cache (room for both images)" eval 'truncate -s 96M "$T/disk.img" && mkfs.ext4 -q -F -m 0 "$T/disk.img" &&
	mkdir -p "$T/cachefs" && mount -o loop "$T/disk.img" "$T/cachefs"' || done_testing
_t_mounts+=("$T/cachefs")
export SKIFF_TEST_CACHE=$T/cachefs/cache
t_ok "skiffd starts with its cache there" start_skiffd --frontend fanotify || done_testing
mount_random_images || done_testing
files() { printf "$1/f%s\n" 1 2 3 4; }

# readcheck's one-line summary: "... wrong N failed N ..." -> "N N"
wrong_failed() { sed -n 's/.*wrong \([0-9]*\) failed \([0-9]*\).*/\1 \2/p' "$T/rc.out"; }
t_ok "image b read whole and right (cached)" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files b)

free=$(df -B1 --output=avail "$T/cachefs" | tail -n 1)
# written until the disk refuses (fallocate of what df says is free
# needs room for its own extent tree)
dd if=/dev/zero of="$T/cachefs/filler" bs=64K 2>/dev/null
sync
t_ok "a file takes all the cache disk's room (it had $free bytes)" \
	test "$(df -B1 --output=avail "$T/cachefs" | tail -n 1)" -lt 65536
# four readers: some wait for a fetch another makes, which fails
"$READCHECK" -r 4 "$T/mnt" "$T/src" $(files a) >"$T/rc.out" 2>"$T/rc.err"
diag "image a with the disk full: $(cat "$T/rc.out")"
read -r wrong failed <<<"$(wrong_failed)"
t_is "image a with the disk full: no wrong byte" "$wrong" 0
t_ok "... reads that needed room failed ($failed)" test "${failed:-0}" -gt 0
t_grep "... with EIO" "Input/output error" "$T/rc.err"
sync
echo 1 >/proc/sys/vm/drop_caches
t_ok "image b, cached, is read right all the same (from the cache file, page cache dropped)" \
	"$READCHECK" -r 2 "$T/mnt" "$T/src" $(files b)
t_is "skiffd said so once" "$(grep -c "cache disk full" "$T/skiffd.log")" 1
t_grep "... naming why" "cache disk full: read .*No space left on device" "$T/skiffd.log"
t_is "... one episode in its metrics" "$(metric skiff_cache_full_episodes_total)" 1
t_ok "... and the reads it failed" test "$(metric skiff_cache_full_failures_total)" -ge "$failed"

t_ok "the cache disk has room again" rm "$T/cachefs/filler"
t_ok "image a now reads whole and right: no failed write was taken for data" \
	"$READCHECK" -r 2 "$T/mnt" "$T/src" $(files a)
t_ok "skiffd said the episode was over" \
	grep -q "cache disk has room again: [0-9]* reads failed for lack of it" "$T/skiffd.log"
t_is "... and logged nothing per read" "$(grep -c "error: read \[" "$T/skiffd.log")" 0

# a restart trusts only what is whole and recorded
t_ok "skiff umount both" eval 'skiff_umount "$T/mnt/a" && skiff_umount "$T/mnt/b"'
t_ok "skiffd stops" stop_skiffd
t_ok "it starts again on the same cache" start_skiffd --frontend fanotify || done_testing
mount_random_images || done_testing
f0=$(metric skiff_fetched_bytes_total)
t_ok "both images read right from the cache" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files a) $(files b)
t_is "... fetching nothing" "$(metric skiff_fetched_bytes_total)" "$f0"
for img in a b; do
	t_ok "skiff umount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops" stop_skiffd
done_testing
