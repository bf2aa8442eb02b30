#!/usr/bin/env bash
# skiff gc and the cache's use on disk (fanotify frontend): what an image
# leaves in the cache when it goes (its blobs' cache files and records,
# chunk tables, bootstrap) stays for the next image with the same blobs,
# counts as unused in skiff status and /metrics, and skiff gc removes it:
# nothing a registered image uses, nothing written in the last --min-age
# seconds. The image still mounted reads on from its cache; the one
# removed is fetched again when it comes back.
. "$(dirname "$0")/lib.sh"
need_root
for c in curl jq; do
	command -v $c >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
done
[ -x "$READCHECK" ] || skip_all "build readcheck first (make)"
need_fanotify_skiffd

random_images "$T/src" 2 || done_testing
t_ok "skiffd starts" start_skiffd --frontend fanotify || done_testing
mount_random_images || done_testing
files() { printf "$1/f%s\n" 1 2 3 4; }
state() { "$SKIFF" status --json | jq -r ".$1"; }
t_ok "both images read whole and right" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files a) $(files b)
total0=$(state cache_bytes)
t_ok "skiff status: the cache holds both images ($total0 bytes on disk)" test "$total0" -ge $((16 << 20))
t_is "... nothing unused" "$(state cache_unused_bytes)" 0
t_grep "... and says so" "cache on disk .*, of which 0 B no registered image uses" <("$SKIFF" status)
t_ok "... each blob's bytes on disk" \
	test "$("$SKIFF" status --json | jq '[.images[].blobs[].cache_bytes] | min')" -ge $((8 << 20))
t_grep "skiff gc with everything in use removes nothing" "^removed 0 files, 0 B" \
	<("$SKIFF" gc --min-age 0)

t_ok "skiff umount b" skiff_umount "$T/mnt/b"
unused=$(state cache_unused_bytes)
t_ok "b's cache files are unused now ($unused bytes)" test "$unused" -ge $((8 << 20))
t_is "... and so in /metrics" "$(metric skiff_cache_unused_bytes)" "$unused"
t_grep "skiff gc spares files written in the last minute" "^removed 0 files, 0 B; .* more unused but written in the last 60 s" \
	<("$SKIFF" gc)
"$SKIFF" gc -n --min-age 0 >"$T/dry" 2>&1
t_is "skiff gc --dry-run lists b's blob file, chunk table and bootstrap" \
	"$(grep -c "^would remove $T/cache/\(blobs\|tables\|bootstraps\)/" "$T/dry")" 3
# all_there WANT PATH...: whether every PATH exists (WANT yes) or none (no)
all_there() {
	local want=$1 f
	shift
	for f in "$@"; do
		if [ -e "$f" ]; then [ "$want" = yes ] || return 1; else [ "$want" = no ] || return 1; fi
	done
}
t_ok "... removing none of them" all_there yes $(sed -n 's/^would remove \(\/[^ ]*\) .*/\1/p' "$T/dry")
t_is "... nothing of a's among them" \
	"$(grep -c -F -f <("$SKIFF" status --json | jq -r '.images[].blobs[].cache_file') "$T/dry")" 0
"$SKIFF" gc --min-age 0 --json >"$T/gc.json"
t_is "skiff gc --min-age 0 removes them" "$(jq '.files | length' "$T/gc.json")" 3
t_ok "... gone from the disk" all_there no $(jq -r ".files[].path" "$T/gc.json")
t_ok "... with b's record of verified chunks" test "$(ls "$T/cache/verified" | wc -l)" = 1
t_is "... nothing unused left" "$(state cache_unused_bytes)" 0
t_is "... what it freed counted" "$(metric skiff_gc_removed_bytes_total)" "$(jq .bytes "$T/gc.json")"
t_ok "... the cache the smaller by it" \
	test "$(state cache_bytes)" -le $((total0 - $(jq .bytes "$T/gc.json") + 65536))
t_grep "... and skiffd logged it" "gc: removed 3 files" "$T/skiffd.log"

f0=$(metric skiff_fetched_bytes_total)
t_ok "image a reads right on" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files a)
t_is "... from its cache: nothing fetched" "$(metric skiff_fetched_bytes_total)" "$f0"
t_ok "image b mounted again" skiff_mount "$T/store:b" "$T/mnt/b" || done_testing
t_ok "... reads right" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files b)
t_ok "... fetched again" test "$(metric skiff_fetched_bytes_total)" -ge $((f0 + (8 << 20)))

t_ok "both unmounted" eval 'skiff_umount "$T/mnt/a" && skiff_umount "$T/mnt/b"'
t_is "skiff gc --min-age 0 removes both images' files" \
	"$("$SKIFF" gc --min-age 0 --json | jq '.files | length')" 6
t_ok "... the cache nearly empty" test "$(state cache_bytes)" -lt $((1 << 20))
mount_random_images || done_testing
t_ok "... the images, mounted again, read right" "$READCHECK" -r 2 "$T/mnt" "$T/src" $(files a) $(files b)

api_gc() {
	curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SKIFF_SOCKET" -X POST --data "$1" \
		http://skiffd/v1/gc
}
t_is "POST /v1/gc refuses a negative min_age" "$(api_gc '{"min_age": -1}')" 400
t_is "... and a dry_run that is not a boolean" "$(api_gc '{"dry_run": "yes"}')" 400
t_fails "skiff gc refuses --min-age that is not seconds" "$SKIFF" gc --min-age soon
for img in a b; do
	t_ok "skiff umount $img" skiff_umount "$T/mnt/$img"
done
t_ok "skiffd stops" stop_skiffd
done_testing
