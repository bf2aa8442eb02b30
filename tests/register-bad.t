#!/usr/bin/env bash
# skiffd registering images that a source got wrong: a bootstrap that is
# missing, has a flipped byte, cannot be kept in the cache directory,
# claims more bytes than max_bootstrap_size, or has valid digests but a
# damaged structure. Each mount fails naming the cause, the serving
# process lives on (tests/asan/register-bad.t runs this against skiffd
# built with ASan+UBSan), nothing reaches the kernel, and failed
# registrations leave no source (and none of its threads) behind.
. "$(dirname "$0")/lib.sh"
need_erofs
need_fanotify_skiffd

SRC=$T/src
mkdir -p "$SRC/d"
head -c 300000 /dev/urandom >"$SRC/rand"
seq 1 20000 >"$SRC/d/text"
ln -s d/text "$SRC/link"
IMG=$T/img
t_ok "build a small image (64K chunks)" "$SKIFF" build -q --chunk-size 64K "$SRC" "$IMG:t" || done_testing
json=$("$SKIFF" inspect --json "$IMG:t")
BS=$(jq -r .bootstrap <<<"$json")
MAN=$(jq -r .manifest <<<"$json")

# damaged NAME: a fresh copy of the image to damage
damaged() {
	rm -rf "$T/$1"
	cp -a "$IMG" "$T/$1"
	echo "$T/$1"
}

resign() { resign_bootstrap "$1" "$BS" "$MAN"; }

MNT=$T/mnt
mkdir -p "$MNT"
t_ok "skiffd starts (fanotify)" start_skiffd --frontend fanotify || done_testing
server=$("$SKIFF" status --json | jq .pid)

# bad_mount DESC LAYOUT PATTERN: the mount fails, naming PATTERN, with
# nothing mounted and the same server serving (a skiffd that died is
# started again, so that each case is judged on its own)
bad_mount() {
	t_fails "$1: skiff mount fails" "$SKIFF" mount "$2:t" "$MNT"
	t_grep "... naming the cause" "$3" "$T/.out"
	t_ok "... nothing is mounted" bash -c "! mountpoint -q '$MNT'" ||
		"$SKIFF" umount "$MNT" >/dev/null 2>&1 || umount "$MNT"
	t_is "... the serving process lives on" "$("$SKIFF" status --json 2>/dev/null | jq .pid)" "$server" ||
		{ stop_skiffd; start_skiffd --frontend fanotify; server=$("$SKIFF" status --json | jq .pid); }
}

l=$(damaged missing)
rm "$l/blobs/sha256/$BS"
bad_mount "bootstrap blob missing" "$l" "bootstrap $BS.*No such file"

l=$(damaged flipped)
flip "$l/blobs/sha256/$BS" 3000
bad_mount "bootstrap with a flipped byte" "$l" "bootstrap $BS.*digest does not match"
t_ok "... and no copy of it is kept" bash -c "! ls '$T/cache/bootstraps/' | grep -q ."

if chattr +i "$T/cache/bootstraps" 2>/dev/null; then
	bad_mount "cache directory refuses the copy (chattr +i)" "$IMG" "cache/bootstraps/.*Operation not permitted"
	chattr -i "$T/cache/bootstraps"
else
	t_skip "chattr +i is not supported on $T"
fi

l=$(damaged huge)
remanifest "$l" "$MAN" "s/\"digest\":\"sha256:$BS\",\"mediaType\":\"application\/vnd.oci.image.layer.skiff.bootstrap.v1.erofs\",\"size\":[0-9]*/\"digest\":\"sha256:$BS\",\"mediaType\":\"application\/vnd.oci.image.layer.skiff.bootstrap.v1.erofs\",\"size\":1099511627776/"
if grep -q 1099511627776 "$l"/blobs/sha256/*; then
	rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$server/status")
	bad_mount "a manifest claiming a 1 TiB bootstrap" "$l" "1099511627776 bytes, over max_bootstrap_size"
	rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$server/status")
	t_ok "... refused before anything was allocated ($rss0 -> $rss1 KiB)" test "$rss1" -lt $((rss0 + 65536))
else
	t_ok "the manifest names the bootstrap's size" false
fi

# valid digests, damaged structure: the root inode made a regular file
# (its slot follows the superblock and the one device slot)
l=$(damaged structure)
printf '\x00\x80' | dd of="$l/blobs/sha256/$BS" bs=1 seek=$((1280 + 4)) conv=notrunc status=none
resign "$l"
bad_mount "a re-signed bootstrap with a damaged root inode" "$l" "regular file layout"

# what only a walk of the whole tree sees: a file's link count made 7
# (the kernel would mount it and show it). EROFS inode numbers are nids.
t_ok "the image mounts directly (loop)" mount_image "$IMG:t" "$T/direct" || done_testing
nid=$(stat -c %i "$T/direct/rand")
umount_image "$T/direct"
meta=$(od -An -tu4 --endian=little -j 1064 -N4 "$IMG/blobs/sha256/$BS" | tr -d ' ')
pos=$((meta * 4096 + nid * 32))
fmt=$(od -An -tu2 --endian=little -j "$pos" -N2 "$IMG/blobs/sha256/$BS" | tr -d ' ')
l=$(damaged nlink)
if [ $((fmt & 1)) = 1 ]; then	# extended inode: 32-bit i_nlink at 44
	printf '\x07\x00\x00\x00' | dd of="$l/blobs/sha256/$BS" bs=1 seek=$((pos + 44)) conv=notrunc status=none
else				# compact inode: 16-bit i_nlink at 6
	printf '\x07\x00' | dd of="$l/blobs/sha256/$BS" bs=1 seek=$((pos + 6)) conv=notrunc status=none
fi
resign "$l"
t_fails "... re-signed with /rand's link count 7: skiff check refuses it" "$SKIFF" check "$l:t"
bad_mount "... and skiffd" "$l" "bootstrap of .* is damaged \\(1 problem; skiff check names them all\\): /rand: link count 7, the tree has 1"

# a sweep of single-byte damage with valid digests: every mount either
# fails cleanly or gives a tree skiff check accepts, and nothing crashes
bs_size=$(stat -c %s "$IMG/blobs/sha256/$BS")
tried=0 refused=0 mounted=0 bad=0
for ((off = 1024; off < bs_size && tried < 40; off += 97)); do
	l=$(damaged sweep)
	flip "$l/blobs/sha256/$BS" "$off"
	resign "$l"
	tried=$((tried + 1))
	if "$SKIFF" mount "$l:t" "$MNT" >"$T/sweep.out" 2>&1; then
		mounted=$((mounted + 1))
		"$SKIFF" check "$l:t" >/dev/null 2>&1 || { bad=$((bad + 1)); diag "offset $off: mounted, but skiff check refuses it"; }
		"$SKIFF" umount "$MNT" >/dev/null 2>&1 || umount "$MNT"
	else
		refused=$((refused + 1))
	fi
done
diag "sweep: $tried re-signed bootstraps, $refused refused, $mounted mounted"
t_is "... every mounted one passes skiff check" "$bad" 0
t_is "... and the server lives on" "$("$SKIFF" status --json | jq .pid)" "$server"

# failed registrations from network locations leave no source behind
threads() { ls "/proc/$server/task" | wc -l; }
"$SKIFF" mount "http://127.0.0.1:1/warmup#t" "$MNT" >/dev/null 2>&1
th0=$(threads)
for i in $(seq 1 12); do
	"$SKIFF" mount "http://127.0.0.1:1/nothing-$i#t" "$MNT" >/dev/null 2>&1
done
th1=$(threads)
t_is "12 failed registrations at 12 locations leave no thread behind ($th0 -> $th1)" "$th1" "$th0"
t_is "... nor a source" "$("$SKIFF" status --json | jq '.sources | length')" 0

t_ok "the intact image mounts" skiff_mount "$IMG:t" "$MNT"
t_ok "... and reads right" timeout 120 "$TREECMP" "$SRC" "$MNT"
skiff_umount "$MNT"
t_is "... an unmounted image leaves no source either" "$("$SKIFF" status --json | jq '.sources | length')" 0

# a cache file that cannot be set up (its record of verified chunks is a
# directory): the mount fails naming it, and leaves no source behind
rec=$T/cache/verified/$(cache_name "$IMG:t")
rm -f "$rec"
mkdir -p "$rec"
t_fails "a record that cannot be opened fails the mount" "$SKIFF" mount "$IMG:t" "$MNT"
t_grep "... naming it" "verified/.*Is a directory" "$T/.out"
t_is "... leaving no source" "$("$SKIFF" status --json | jq '.sources | length')" 0
rmdir "$rec"

# an image claiming another image's blob id with a chunk table of its
# own (and its own bytes behind it): mounted first, it must not make the
# real image's readers get its bytes, nor leave them trusted for later
HS=$T/hostile-src
mkdir -p "$HS/d"
head -c 300000 /dev/urandom >"$HS/rand"
seq 5 20004 >"$HS/d/text"
ln -s d/text "$HS/link"
HX=$T/hostile
t_ok "build another image (64K chunks)" "$SKIFF" build -q --chunk-size 64K "$HS" "$HX:t" || done_testing
BLOB=$(jq -r '.blobs[0].id' <<<"$json")
hjson=$("$SKIFF" inspect --json "$HX:t")
hblob=$(jq -r '.blobs[0].id' <<<"$hjson")
hbs=$(jq -r .bootstrap <<<"$hjson")
hman=$(jq -r .manifest <<<"$hjson")
# its blob renamed to the other's id: in the layout, the manifest and
# both places of the bootstrap (blob table, binary; device slot, hex)
mv "$HX/blobs/sha256/$hblob" "$HX/blobs/sha256/$BLOB"
/usr/bin/python3 - "$HX/blobs/sha256/$hbs" "$hblob" "$BLOB" <<'PY'
import sys
p, old, new = sys.argv[1:4]
b = open(p, 'rb').read()
n = b.count(bytes.fromhex(old)) + b.count(old.encode())
b = bytearray(b.replace(bytes.fromhex(old), bytes.fromhex(new)).replace(old.encode(), new.encode()))
# the skiff header's digest of its extension (the blob table): offset and
# size at 16 and 24, the digest at 32
import hashlib, struct
off, size = struct.unpack_from('<QQ', b, 16)
b[32:64] = hashlib.sha256(b[off:off + size]).digest()
open(p, 'wb').write(b)
sys.exit(0 if n >= 2 else 1)
PY
t_is "... forged to claim the first image's blob id" "$?" 0
remanifest "$HX" "$hman" "s/$hblob/$BLOB/"
hman=$(jq -r '.manifests[0].digest' "$HX/index.json" | cut -d: -f2)
resign_bootstrap "$HX" "$hbs" "$hman"
stop_skiffd
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify || done_testing
t_ok "the forged image mounts" skiff_mount "$HX:t" "$T/mnt-x"
t_ok "... and reads its own bytes" timeout 120 "$TREECMP" "$HS" "$T/mnt-x"
t_ok "the real image mounts while it is mounted" skiff_mount "$IMG:t" "$MNT"
t_ok "... and reads right, not the forged image's bytes" timeout 120 "$TREECMP" "$SRC" "$MNT"
skiff_umount "$MNT"
skiff_umount "$T/mnt-x"
stop_skiffd
t_ok "skiffd starts again on the same cache" start_skiffd --frontend fanotify
t_ok "the real image mounts" skiff_mount "$IMG:t" "$MNT"
t_ok "... and reads right after the restart" timeout 120 "$TREECMP" "$SRC" "$MNT"
skiff_umount "$MNT"

# a bootstrap over a configured limit is refused before it is read
stop_skiffd
echo '{"max_bootstrap_size": 4096}' >"$T/small.json"
t_ok "skiffd starts with max_bootstrap_size 4096" start_skiffd --frontend fanotify --config "$T/small.json" || done_testing
t_fails "an image whose bootstrap is larger does not mount" "$SKIFF" mount "$IMG:t" "$MNT"
t_grep "... naming the limit" "over max_bootstrap_size \\(4096 bytes" "$T/.out"
echo '{"max_bootstrap_size": "1k"}' >"$T/bad.json"
t_fails "max_bootstrap_size under 4096 is refused" "$SKIFFD" --config "$T/bad.json" --socket "$T/x.sock" --cache-dir "$T/c2" --work-dir "$T/w2"
t_grep "... with the range" "\"max_bootstrap_size\" must be 4096 to 4294967296 bytes" "$T/.out"

done_testing
