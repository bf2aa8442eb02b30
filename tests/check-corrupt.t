#!/usr/bin/env bash
# skiff check and the reader against damaged images: a flipped byte in the
# bootstrap, in a chunk, in a chunk table or footer, a truncated or missing
# blob. Each is found, named, and exits 1; none crashes.
. "$(dirname "$0")/lib.sh"

SRC=$T/src
mkdir -p "$SRC/d"
head -c 300000 /dev/urandom >"$SRC/rand"
seq 1 200000 >"$SRC/d/text"
ln -s d/text "$SRC/link"
IMG=$T/img
t_ok "build a small image (64K chunks)" "$SKIFF" build -q --chunk-size 64K "$SRC" "$IMG:t" || done_testing
t_ok "the intact image checks ok" "$SKIFF" check "$IMG:t"

json=$("$SKIFF" inspect --json "$IMG:t")
BS=$(jq -r .bootstrap <<<"$json")
BLOB=$(jq -r '.blobs[0].id' <<<"$json")
MAN=$(jq -r .manifest <<<"$json")

# damaged NAME: a fresh copy of the image to damage
damaged() {
	rm -rf "$T/$1"
	cp -a "$IMG" "$T/$1"
	echo "$T/$1"
}

resign() { resign_bootstrap "$1" "$BS" "$MAN"; }

l=$(damaged bs-flip)
flip "$l/blobs/sha256/$BS" 5000
t_fails "flipped bootstrap byte: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the bootstrap digest mismatch" "bootstrap.*does not match" "$T/.out"

l=$(damaged chunk-flip)
flip "$l/blobs/sha256/$BLOB" 1000
t_fails "flipped chunk byte: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the blob's digest" "blob .*$BLOB.*does not match its digest" "$T/.out"
t_grep "... and the chunk" "chunk 0: .*(digest mismatch|does not decompress)" "$T/.out"
# the walk puts /d/text's chunks first in the blob
t_fails "flipped chunk byte: cat of the file fails" "$SKIFF" cat "$l:t" /d/text
t_grep "... with a digest error, not wrong bytes" "digest mismatch|does not decompress" "$T/.out"

blob_size=$(stat -c %s "$IMG/blobs/sha256/$BLOB")
l=$(damaged table-flip)
flip "$l/blobs/sha256/$BLOB" $((blob_size - 128 - 20))
t_fails "flipped chunk-table byte: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the chunk table" "chunk table digest mismatch" "$T/.out"

l=$(damaged footer-flip)
flip "$l/blobs/sha256/$BLOB" $((blob_size - 128))
t_fails "flipped footer magic: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the footer" "footer" "$T/.out"

l=$(damaged truncated)
truncate -s $((blob_size - 1)) "$l/blobs/sha256/$BLOB"
t_fails "truncated blob: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the size mismatch" "size does not match" "$T/.out"

l=$(damaged missing)
rm "$l/blobs/sha256/$BLOB"
t_fails "missing blob: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the missing file" "$BLOB.*No such file" "$T/.out"

# Structural damage with valid digests: only the bootstrap parser stands
# between the image and the reader.
l=$(damaged root-mode)
# root inode: first slot after the superblock and one device slot
printf '\x00\x80' | dd of="$l/blobs/sha256/$BS" bs=1 seek=$((1280 + 4)) conv=notrunc status=none
resign "$l"
t_fails "root inode made a regular file: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the root inode" "inode 40: regular file layout" "$T/.out"

l=$(damaged sb-magic)
flip "$l/blobs/sha256/$BS" 1024
resign "$l"
t_fails "bad EROFS magic: check fails" "$SKIFF" check "$l:t"
t_grep "... naming the magic" "bad EROFS magic" "$T/.out"

# A sweep over the metadata: every damaged bootstrap either checks ok
# (a byte the structure cannot judge, such as an mtime) or fails cleanly.
bs_size=$(stat -c %s "$IMG/blobs/sha256/$BS")
crashes=0 detected=0 tried=0
for ((off = 1024; off < bs_size && tried < 150; off += 37)); do
	l=$(damaged sweep)
	flip "$l/blobs/sha256/$BS" "$off"
	resign "$l"
	"$SKIFF" check "$l:t" >/dev/null 2>&1
	st=$?
	tried=$((tried + 1))
	[ "$st" -eq 1 ] && detected=$((detected + 1))
	if [ "$st" -gt 1 ]; then
		crashes=$((crashes + 1))
		diag "offset $off: exit status $st"
	fi
done
diag "sweep: $tried damaged bootstraps, $detected rejected"
t_is "no damaged bootstrap crashes skiff check" "$crashes" 0

done_testing
