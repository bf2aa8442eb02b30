#!/usr/bin/env bash
# The command line: help for every command, clear errors that name the
# file and the cause, tags, JSON output, and OCI layouts that standard
# tools (skopeo) copy.
. "$(dirname "$0")/lib.sh"

t_ok "skiff --help" "$SKIFF" --help
for c in build inspect ls cat check export-cache; do
	t_ok "skiff $c --help" "$SKIFF" "$c" --help
	t_grep "... prints a usage line" "^usage: skiff $c" "$T/.out"
done
t_fails "unknown command" "$SKIFF" frobnicate
t_grep "... says so" "unknown command 'frobnicate'" "$T/.out"

SRC=$T/src
mkdir -p "$SRC/sub"
echo hello >"$SRC/sub/hello"
t_fails "build from a missing directory" "$SKIFF" build "$T/nope" "$T/x"
t_grep "... names the path and the cause" "$T/nope: No such file or directory" "$T/.out"
t_fails "build with chunk size 3000" "$SKIFF" build --chunk-size 3000 "$SRC" "$T/x"
t_grep "... explains the valid range" "power of two from 4K to 64M" "$T/.out"
t_fails "build with chunk size 128M" "$SKIFF" build --chunk-size 128M "$SRC" "$T/x"
t_fails "build with an unknown compressor" "$SKIFF" build --compress lz4 "$SRC" "$T/x"
t_grep "... lists the choices" "use zstd or none" "$T/.out"
t_fails "build with level 40" "$SKIFF" build -l 40 "$SRC" "$T/x"

IMG=$T/layout
t_ok "build tagged v1" "$SKIFF" build -q "$SRC" "$IMG:v1"
echo changed >"$SRC/sub/hello"
t_ok "build tagged v2 into the same layout" "$SKIFF" build -q "$SRC" "$IMG:v2"
t_ok "oci-layout file" test -f "$IMG/oci-layout"
t_is "index.json holds both tags" \
	"$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | sort | join(",")' "$IMG/index.json")" "v1,v2"
MANF=$IMG/blobs/sha256/$(jq -r '.manifests[0].digest' "$IMG/index.json" | cut -c8-)
t_is "the bootstrap has skiff's media type, under the OCI layer prefix" \
	"$(jq -r '.layers[-1].mediaType' "$MANF")" "application/vnd.oci.image.layer.skiff.bootstrap.v1.erofs"
t_is "... the blobs theirs" "$(jq -r '[.layers[:-1][].mediaType] | unique | join(",")' "$MANF")" \
	"application/vnd.oci.image.layer.skiff.blob.v1"
t_is "each layer says what it is to a containerd snapshotter" \
	"$(jq -r '[.layers[].annotations["containerd.io/snapshot/skiff.layer"]] | join(",")' "$MANF")" \
	"$(jq -r '[.layers[:-1][] | "blob"] + ["bootstrap"] | join(",")' "$MANF")"
t_is "v1 keeps the old bytes" "$("$SKIFF" cat "$IMG:v1" /sub/hello)" hello
t_is "v2 has the new bytes" "$("$SKIFF" cat "$IMG:v2" sub/hello)" changed
t_fails "an untagged reference to a layout with two images" "$SKIFF" inspect "$IMG"
t_grep "... asks for a tag" "holds several images" "$T/.out"
t_fails "a tag that is not there" "$SKIFF" inspect "$IMG:v3"
t_grep "... says which" "no image tagged v3" "$T/.out"
t_ok "rebuild v2: the tag moves, nothing piles up" "$SKIFF" build -q "$SRC" "$IMG:v2"
t_is "index.json still has two entries" "$(jq '.manifests | length' "$IMG/index.json")" 2
t_fails "inspect a directory that is no layout" "$SKIFF" inspect "$SRC"
t_grep "... says what is missing" "not an OCI image layout" "$T/.out"
t_fails "cat a directory" "$SKIFF" cat "$IMG:v1" /sub
t_grep "... says it is one" "Is a directory" "$T/.out"
t_fails "cat a missing path" "$SKIFF" cat "$IMG:v1" /sub/nothing
t_grep "... names it" "/sub/nothing: No such file" "$T/.out"

t_ok "inspect --json" "$SKIFF" inspect --json "$IMG:v1"
cp "$T/.out" "$T/inspect.json"
t_is "... is JSON with inode counts" "$(jq .inodes.files "$T/inspect.json")" 1
t_is "... and the chunk size" "$(jq .chunk_size "$T/inspect.json")" 1048576
t_ok "ls -x shows xattrs" "$SKIFF" ls -x "$IMG:v1" /sub

if command -v skopeo >/dev/null; then
	t_ok "skopeo copies the image to another layout" \
		skopeo copy --quiet "oci:$IMG:v1" "oci:$T/copy:c1"
	t_ok "the copy checks ok" "$SKIFF" check "$T/copy:c1"
	t_is "the copy has the same manifest digest" "$(manifest_of "$T/copy:c1")" "$(manifest_of "$IMG:v1")"
else
	t_skip "skopeo not installed"
fi

mkdir -p "$T/empty"
t_ok "an empty tree builds (no blob at all)" "$SKIFF" build -q "$T/empty" "$T/eimg"
t_ok "... and checks ok" "$SKIFF" check "$T/eimg"
t_is "... with zero blobs" "$("$SKIFF" inspect --json "$T/eimg" | jq '.blobs | length')" 0

# a tree whose files claim far more than they hold: 4 KiB of data in a
# 1 TiB sparse file
mkdir -p "$T/holes"
printf 'data' >"$T/holes/big"
truncate -s 1T "$T/holes/big"
t_fails "a tree with a 1 TiB sparse file holding 4 KiB is refused" \
	"$SKIFF" build -q -c 64M "$T/holes" "$T/himg"
t_grep "... saying what it claims and which option raises the limit" \
	"the tree's files claim 1\.0 TiB .* over the limit .*\(--max-expansion RATIO\[,SIZE\] raises" "$T/.out"
t_fails "... and a bad --max-expansion is named" \
	"$SKIFF" build -q --max-expansion 16,x "$T/holes" "$T/himg"
t_grep "... with what it takes" "--max-expansion 16,x: need RATIO\[,SIZE\]" "$T/.out"
t_ok "--max-expansion 1,2048G builds it" "$SKIFF" build -q -c 64M --max-expansion 1,2048G "$T/holes" "$T/himg"
t_ok "... and so does --max-expansion off" "$SKIFF" build -q -c 64M --max-expansion off "$T/holes" "$T/himg"
t_ok "... an image skiff check verifies" "$SKIFF" check "$T/himg"

done_testing
