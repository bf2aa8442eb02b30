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
"$SKIFF" status --json | jq -r '.images[] | (.blobs[].cache_file, .bootstrap)' >"$T/a-files"
t_is "... nothing of a's among them" "$(grep -c -F -f "$T/a-files" "$T/dry")" 0
"$SKIFF" gc --min-age 0 --json >"$T/gc.json"
t_is "skiff gc --min-age 0 removes them" "$(jq '.files | length' "$T/gc.json")" 3
t_ok "... gone from the disk" all_there no $(jq -r ".files[].path" "$T/gc.json")
t_ok "... a's cache file and bootstrap still there" all_there yes $(cat "$T/a-files")
t_is "... and not among what went" "$(jq -r ".files[].path" "$T/gc.json" | grep -c -F -f "$T/a-files")" 0
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

# a registration under way: its bootstrap is kept before the image names
# it (here while the server holds its chunk table); gc leaves it alone
mkdir -p "$T/csrc"
head -c $((1 << 20)) /dev/urandom >"$T/csrc/c1"
t_ok "build image c into a layout served over HTTP" \
	"$SKIFF" build -q --chunk-size 64K "$T/csrc" "$T/www/l:c" || done_testing
bs_c=$("$SKIFF" inspect --json "$T/www/l:c" | jq -r .bootstrap)
blob_c=$("$SKIFF" inspect --json "$T/www/l:c" | jq -r '.blobs[0].id')
PY=${SKIFF_PYTHON:-/usr/bin/python3}
wport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T/www" "$wport" 2>>"$T/faulty.log" &
wpid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$wport") 2>/dev/null && break; sleep 0.1; done
curl -s -X POST -d "{\"kind\": \"hold\", \"match\": \"blobs/sha256/$blob_c\"}" \
	"http://127.0.0.1:$wport/_fault" >/dev/null
mkdir -p "$T/mnt/c"
timeout 60 "$SKIFF" mount "http://127.0.0.1:$wport/l#c" "$T/mnt/c" >"$T/mountc.out" 2>&1 &
mpid=$!
_t_mounts+=("$T/mnt/c")
t_ok "image c's registration waits on its server holding the chunk table" eval 'for _ in $(seq 1 100); do
	curl -s "http://127.0.0.1:$wport/_log" | grep -q "\"fault\": \"hold\"" && break; sleep 0.1; done
	curl -s "http://127.0.0.1:$wport/_log" | grep -q "\"fault\": \"hold\""'
"$SKIFF" gc --min-age 0 --json >"$T/gc2.json"
t_is "... gc meanwhile says a registration is under way" "$(jq .registration_under_way "$T/gc2.json")" true
t_ok "... and leaves c's bootstrap alone" test -e "$T/cache/bootstraps/$bs_c"
curl -s -X POST "http://127.0.0.1:$wport/_release" >/dev/null
t_ok "... c's mount completes once the server answers" wait "$mpid"
t_ok "... and c reads right" cmp "$T/mnt/c/c1" "$T/csrc/c1"
t_ok "skiff umount c" skiff_umount "$T/mnt/c"
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null

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
