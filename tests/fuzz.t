#!/usr/bin/env bash
# Bounded libFuzzer runs of every tests/fuzz target. Seeds come from real
# images built here with build/skiff: bootstraps for fuzz_bootstrap, and
# for fuzz_chunktable a blob's footer + chunk table (+ its first chunks),
# the layout that target expects; and for every target the inputs kept in
# tests/fuzz/corpus/<target>/ (what reviews and earlier crashes found:
# a bounded run starts from them). The working corpus lives in
# build/fuzz-corpus/<target>/ and grows from run to run.
#
# Run from the repository root (prove --exec bash tests/fuzz.t) after
# `make`; FUZZ_SECONDS (default 30) is the budget per target.
set -u

B=${B:-build}
SECS=${FUZZ_SECONDS:-30}
# every tests/fuzz/fuzz_*.c is a target
TARGETS=()
for f in tests/fuzz/fuzz_*.c; do
	TARGETS+=("$(basename "$f" .c)")
done

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}
command -v clang >/dev/null 2>&1 || skip_all "clang is not installed"
for t in "${TARGETS[@]}"; do
	[ -x "$B/fuzz/$t" ] || skip_all "$B/fuzz/$t is not built (make check-fuzz)"
done
[ -x "$B/skiff" ] || skip_all "$B/skiff is not built"

echo "1..$((1 + ${#TARGETS[@]}))"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/skiff-fuzz-XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
CORPUS=$B/fuzz-corpus
LOGS=$B/fuzz-logs
mkdir -p "$LOGS" "$B/fuzz-artifacts"
for t in "${TARGETS[@]}"; do
	mkdir -p "$CORPUS/$t"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp -f tests/fuzz/corpus/"$t"/* "$CORPUS/$t/" 2>/dev/null
	fi
	if [ "$t" = fuzz_remote ]; then
		# selector 8: a credential helper's answer; 9: helper names
		printf '\10{"ServerURL":"h","Username":"u","Secret":"s"}' >"$CORPUS/$t/seed-helper"
		printf '\11{"credsStore":"s","credHelpers":{"127.0.0.1:5000":"h"}}' >"$CORPUS/$t/seed-helpers"
	fi
	[ "$t" = fuzz_http ] || continue
	# first byte: parser selector (see tests/fuzz/fuzz_http.c)
	printf '\0GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' >"$CORPUS/$t/seed-get"
	printf '\0POST /v1/images HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' >"$CORPUS/$t/seed-post"
	printf '\1HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}' >"$CORPUS/$t/seed-resp"
done
# fuzz_tar: first byte is the read size (see tests/fuzz/fuzz_tar.c), then
# a layer: the small test layers, plain, gzip and zstd
if /usr/bin/python3 scripts/gen-test-layers.py "$TMP/layers" >/dev/null 2>&1; then
	for f in "$TMP"/layers/layers/*.tar; do
		[ "$(stat -c %s "$f")" -le 300000 ] || continue
		n=$(basename "$f" .tar)
		{ printf '\0'; cat "$f"; } >"$CORPUS/fuzz_tar/seed-$n"
		{ printf '\7'; gzip -n -c "$f"; } >"$CORPUS/fuzz_tar/seed-$n-gz"
		{ printf '\3'; zstd -q -c "$f"; } >"$CORPUS/fuzz_tar/seed-$n-zst"
	done
fi
# fuzz_remote: first byte picks the parser (see tests/fuzz/fuzz_remote.c)
R=$CORPUS/fuzz_remote
printf '\0bytes 0-99/1000' >"$R/seed-range"
printf '\1Sun, 06 Nov 1994 08:49:37 GMT' >"$R/seed-retry"
printf '\2Bearer realm="https://a/token",service="reg",scope="repository:a/b:pull,push"' >"$R/seed-auth"
printf '\3docker://127.0.0.1:5000/a/b:v1' >"$R/seed-ref"
printf '\4{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:%064d","size":1},"layers":[{"mediaType":"application/vnd.skiff.bootstrap.v1.erofs","digest":"sha256:%064d","size":2}]}' 1 2 >"$R/seed-manifest"
printf '\5{"manifests":[{"mediaType":"m","digest":"sha256:%064d","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}' 3 >"$R/seed-index"
printf '\6{"auths":{"127.0.0.1:5000":{"auth":"dTpw"}}}' >"$R/seed-docker"
printf '\7{"max_attempts":3,"registries":{"r":{"mirrors":[{"url":"http://m","headers":{"X":"y"}}]}}}' >"$R/seed-config"

# Little-endian unsigned integer of $3 bytes at offset $2 of file $1.
le() {
	od -An -v -t "u$3" --endian=little -j "$2" -N "$3" "$1" | tr -d ' \n'
}

# A small tree with what the format has: multi-chunk, compressible,
# sparse and duplicate files, symlinks, hard links, nested and
# multi-block directories, an empty directory and (if possible) xattrs.
make_tree() {
	local d=$1 i
	mkdir -p "$d/a/b/c" "$d/many" "$d/empty"
	printf 'hello\n' >"$d/small"
	: >"$d/zero"
	head -c 20000 /dev/urandom >"$d/random"
	cp "$d/random" "$d/random.dup"
	for i in $(seq 1 600); do echo "line $i of a compressible file"; done >"$d/text"
	truncate -s 100000 "$d/sparse"
	printf 'data' | dd of="$d/sparse" bs=1 seek=50000 conv=notrunc status=none
	printf 'deep\n' >"$d/a/b/c/deep"
	ln -s small "$d/link"
	ln -s a/b/c "$d/dirlink"
	ln "$d/small" "$d/hard"
	mkfifo "$d/fifo" 2>/dev/null || true
	for i in $(seq 1 300); do
		echo "$i" >"$d/many/entry-number-$i"
	done
	if command -v setfattr >/dev/null 2>&1; then
		setfattr -n user.seed -v value "$d/small" 2>/dev/null || true
		setfattr -n user.dir -v 1 "$d/a" 2>/dev/null || true
	fi
}

# Copies the bootstrap and chunk-table seeds out of the layout $1; $2
# names them.
harvest() {
	local layout=$1 name=$2 f magic size toff tsize soff ssize n=0
	for f in "$layout"/blobs/sha256/*; do
		[ -f "$f" ] || continue
		size=$(stat -c %s "$f")
		magic=$(head -c 8 "$f" | tr -d '\0')
		if [ "$magic" = SKIFFRFS ]; then
			cp "$f" "$CORPUS/fuzz_bootstrap/seed-$name"
			n=$((n + 1))
			continue
		fi
		[ "$size" -ge 128 ] || continue
		[ "$(tail -c 128 "$f" | head -c 8)" = SKIFFBLB ] || continue
		toff=$(le "$f" $((size - 128 + 16)) 8)
		tsize=$(le "$f" $((size - 128 + 24)) 8)
		{
			tail -c 128 "$f"
			tail -c +$((toff + 1)) "$f" | head -c "$tsize"
		} >"$CORPUS/fuzz_chunktable/seed-$name-table"
		# the first chunk's stored bytes too, when it is small
		soff=$(le "$f" "$toff" 8)
		ssize=$(le "$f" $((toff + 20)) 4)
		if [ "$tsize" -ge 64 ] && [ "$soff" -eq 0 ] && [ "$ssize" -le 262144 ]; then
			cat "$CORPUS/fuzz_chunktable/seed-$name-table" >"$TMP/seed"
			head -c "$ssize" "$f" >>"$TMP/seed"
			mv "$TMP/seed" "$CORPUS/fuzz_chunktable/seed-$name-data"
		fi
		n=$((n + 1))
	done
	[ "$n" -ge 1 ]
}

seed_ok=1
make_tree "$TMP/src"
mkdir -p "$TMP/bare" "$TMP/one" "$TMP/tiny/d"
: >"$TMP/bare/empty-file"
# one compressible file: the first stored chunk is a zstd frame
for i in $(seq 1 400); do echo "row $i, much like the row before it"; done >"$TMP/one/text"
# small images mutate faster than the 300-entry one
printf 'x\n' >"$TMP/tiny/f"
ln -s f "$TMP/tiny/l"
printf 'y\n' >"$TMP/tiny/d/g"
# a prefetch list (tiny has one: its bootstrap carries the NIDs)
printf '/d/g\n/f\n/l\n' >"$TMP/tiny.list"
while read -r name src opts; do
	opts=${opts/TINYLIST/$TMP/tiny.list}
	# shellcheck disable=SC2086
	if ! "$B/skiff" build -q $opts "$TMP/$src" "$TMP/img-$name" >"$TMP/build.log" 2>&1 ||
	    ! harvest "$TMP/img-$name" "$name"; then
		seed_ok=0
		sed 's/^/# /' "$TMP/build.log"
	fi
done <<'EOF'
zstd-1m  src  -j1
zstd-4k  src  -c4K
raw-4k   src  --compress=none -c4K
raw-64k  src  --compress=none -c64K
nodata   bare -j1
one      one  -c4K
tiny     tiny -c4K
tinypf   tiny -c4K --prefetch-list=TINYLIST
EOF
nboot=$(find "$CORPUS/fuzz_bootstrap" -name 'seed-*' | wc -l)
ntable=$(find "$CORPUS/fuzz_chunktable" -name 'seed-*' | wc -l)
if [ "$seed_ok" = 1 ] && [ "$nboot" -ge 8 ] && [ "$ntable" -ge 7 ]; then
	echo "ok 1 - seed corpus: $nboot bootstraps, $ntable chunk tables"
else
	echo "not ok 1 - seed corpus: $nboot bootstraps, $ntable chunk tables"
fi

n=1
for t in "${TARGETS[@]}"; do
	n=$((n + 1))
	log=$LOGS/$t.log
	"$B/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/fuzz-artifacts/$t-" \
		"$CORPUS/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
	units=$(find "$CORPUS/$t" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $t: ${SECS}s, ${execs:-?} runs, ${rate:-?}/s, ${cov:-no coverage line}, corpus $units"
	else
		echo "not ok $n - $t exited with status $rc (log: $log)"
		tail -n 60 "$log" | sed 's/^/# /'
		ls "$B/fuzz-artifacts/$t-"* 2>/dev/null | sed 's/^/# artifact: /'
	fi
done
