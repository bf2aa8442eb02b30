#!/usr/bin/env bash
# One image mounted at two mount points at once (fanotify frontend): each
# mount is a registration of its own sharing the cache file, `skiff
# umount MNT` takes exactly that one while the other keeps being served,
# both come back after a restart, and the cache file is released with the
# last. The same with the image once from a local layout and once from a
# copy of it served by nginx (same manifest, so the same default id).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_root
for c in curl jq mountpoint; do
	command -v "$c" >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
need_fanotify_skiffd

SRC=$T/src
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing
t_ok "build it into a local layout" "$SKIFF" build -q --chunk-size 64K "$SRC" "$T/store:a" || done_testing
chunks=$("$SKIFF" inspect --json "$T/store:a" | jq '.blobs[0].chunks')
blob=$("$SKIFF" inspect --json "$T/store:a" | jq -r '.blobs[0].id')
M1=$T/m1
M2=$T/m2
# a skiffd that shared one registration between mount points (what this
# test catches) leaves mounts stacked where lib.sh undoes one: undo all
_umount_all() {
	local m
	for m in "$T/m3" "$M2" "$M1"; do
		while mountpoint -q "$m"; do umount "$m" 2>/dev/null || umount -l "$m" || break; done
	done
}
trap '_umount_all; _n_cleanup; _t_cleanup' EXIT

mounts() { "$SKIFF" status --json | jq -r '[.images[].mountpoint] | sort | join(" ")'; }
id_at() { "$SKIFF" status --json | jq -r --arg m "$1" '.images[] | select(.mountpoint == $m) | .id'; }
saved() { jq -r '[.[].mountpoint] | sort | join(" ")' "$T/work/images.json"; }
# uncached data must come through skiffd again
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# 1. the same local image at two mount points
# no read-ahead: which chunks are fetched follows from what is read
t_ok "skiffd starts (fanotify)" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
t_ok "mount the image at m1" skiff_mount "$T/store:a" "$M1" || done_testing
t_ok "mount the same image at m2" skiff_mount "$T/store:a" "$M2" || done_testing
t_is "both are registered, each with its mount point" "$(mounts)" "$M1 $M2"
id1=$(id_at "$M1")
id2=$(id_at "$M2")
t_ok "... under two ids ($id1, $id2)" test -n "$id1" -a -n "$id2" -a "$id1" != "$id2"
t_is "one cache file for both" "$(ls "$T/cache/blobs")" "$(cache_name "$T/store:a")"
t_ok "a file reads right through m1" cmp "$M1/files/small5" "$SRC/files/small5"
t_ok "another reads right through m2" cmp "$M2/files/random-3.5M" "$SRC/files/random-3.5M"
t_ok "the one m1 read reads through m2 too" cmp "$M2/files/small5" "$SRC/files/small5"
t_ok "skiff status" "$SKIFF" status
t_grep "... lists m1" "mounted at $M1\$" "$T/.out"
t_grep "... and m2" "mounted at $M2\$" "$T/.out"
t_is "images.json keeps both" "$(saved)" "$M1 $M2"
t_fails "a second mount on top of m1 is refused" "$SKIFF" mount "$T/store:a" "$M1"
_t_mounts+=("$M1")	# undone on exit should it have happened
t_grep "... saying what is mounted there" "image $id1 is mounted there already" "$T/.out"
t_is "... and m1 keeps its registration" "$(id_at "$M1")" "$id1"
mkdir "$T/m3"
t_fails "an id mounted at m1 is refused for another mount point" \
	"$SKIFF" mount --fsid "$id1" "$T/store:a" "$T/m3"
_t_mounts+=("$T/m3")
t_grep "... saying where it is mounted" "id $id1 is mounted at $M1" "$T/.out"

# 2. a restart brings both back. Both mounts are lazy: a plain stop is
#    refused (the group would close under them), so it is forced, and
#    nothing reads them until skiffd is back
t_fails "a plain stop is refused" "$SKIFF" stop
t_grep "... naming both mounts" "2 lazy mounts are up.*$M2 .*$M1 " "$T/.out"
t_ok "skiffd stops (forced)" force_stop_skiffd
t_ok "skiffd restarts" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
t_is "both are registered again" "$(mounts)" "$M1 $M2"
t_is "... under the same ids" "$(id_at "$M1") $(id_at "$M2")" "$id1 $id2"
drop_caches
t_ok "m1 reads right after the restart" cmp "$M1/files/compressible.txt" "$SRC/files/compressible.txt"
t_ok "... and so does m2" cmp "$M2/files/size65537" "$SRC/files/size65537"

# 3. unmounting m1 leaves m2 served
t_ok "skiff umount m1" "$SKIFF" umount "$M1"
t_grep "... names m1's id" "unmounted $M1 \\(id $id1\\)" "$T/.out"
t_ok "m1 is no longer a mount point" sh -c "! mountpoint -q '$M1'"
t_is "only m2 is registered" "$(mounts)" "$M2"
t_is "... under its id" "$(id_at "$M2")" "$id2"
t_is "images.json keeps m2 alone" "$(saved)" "$M2"
t_fails "umount m1 again: nothing there" "$SKIFF" umount "$M1"
t_grep "... says so" "no skiff image is mounted there" "$T/.out"
t_ok "the cache file is still in use" test "$(metric "skiff_cache_ready_bytes{blob=\"$blob\"}")" != missing
drop_caches
# every chunk not read yet is fetched through m2's registration now; a
# cache file left unwatched would read its holes as zeros
t_ok "m2's whole tree equals the source" timeout 300 "$TREECMP" "$SRC" "$M2"
t_is "every chunk of the blob is ready" \
	"$("$SKIFF" status --json | jq '.images[0].blobs[0].ready_chunks')" "$chunks"
t_is "no errors" "$(metric skiff_verify_errors_total)/$(metric skiff_fetch_errors_total)" 0/0

# 4. the remaining one comes back after a restart, and goes last
t_ok "skiffd stops" stop_skiffd
t_ok "skiffd restarts" start_skiffd --frontend fanotify || done_testing
t_is "m2 alone is registered again" "$(mounts)" "$M2"
drop_caches
t_ok "m2's tree equals the source" timeout 300 "$TREECMP" "$SRC" "$M2"
t_is "... from the cache, with no fetch" "$(metric skiff_fetched_chunks_total)" 0
t_ok "skiff umount m2" skiff_umount "$M2"
t_is "no image is left" "$(mounts)" ""
t_is "images.json is empty" "$(jq length "$T/work/images.json")" 0
t_is "the cache file is released" "$(metric "skiff_cache_ready_bytes{blob=\"$blob\"}")" missing
t_ok "... but stays on disk for the next mount" test -s "$T/cache/blobs/$(cache_name "$T/store:a")"
stop_skiffd

# 5. the same image from a local layout and from nginx: one manifest,
#    so both want the same default id
if ! command -v nginx >/dev/null; then
	t_skip "nginx missing (scripts/setup.sh installs it): no HTTP copy"
	done_testing
fi
rm -rf "$T/cache" "$T/work"
t_ok "build the same tree into a layout under the web root" \
	"$SKIFF" build -q --chunk-size 64K "$SRC" "$T/www/layout:a" || done_testing
t_is "... with the same manifest" "$(manifest_of "$T/www/layout:a")" "$(manifest_of "$T/store:a")"
port=$(free_port)
t_ok "nginx serves it on 127.0.0.1:$port" start_nginx web "$port" "root $T/www;" || done_testing
URL=http://127.0.0.1:$port/layout#a
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
t_ok "mount the local layout at m1" skiff_mount "$T/store:a" "$M1" || done_testing
t_ok "mount the served copy at m2" skiff_mount "$URL" "$M2" || done_testing
t_is "both are registered" "$(mounts)" "$M1 $M2"
t_is "... m2 from the web server" \
	"$("$SKIFF" status --json | jq -r --arg m "$M2" '.images[] | select(.mountpoint == $m) | .ref')" "$URL"
t_is "one cache file for both" "$(ls "$T/cache/blobs")" "$(cache_name "$T/store:a")"
t_ok "a file reads right through m1" cmp "$M1/files/small5" "$SRC/files/small5"
t_ok "another reads right through m2" cmp "$M2/files/random-3.5M" "$SRC/files/random-3.5M"
t_ok "skiffd stops (forced: both mounts are lazy)" force_stop_skiffd
t_ok "skiffd restarts" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
t_is "both are registered again" "$(mounts)" "$M1 $M2"
t_ok "skiff umount m1" skiff_umount "$M1"
t_is "only m2 is registered" "$(mounts)" "$M2"
drop_caches
t_ok "m2's whole tree equals the source" timeout 300 "$TREECMP" "$SRC" "$M2"
t_is "every chunk of the blob is ready" \
	"$("$SKIFF" status --json | jq '.images[0].blobs[0].ready_chunks')" "$chunks"
t_ok "skiff umount m2" skiff_umount "$M2"
t_is "no image is left" "$(mounts)" ""
stop_skiffd
done_testing
