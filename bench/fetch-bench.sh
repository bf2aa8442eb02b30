#!/usr/bin/env bash
# fetch-bench.sh: fetch efficiency. How many stored bytes skiffd fetches
# (and in how many backend reads, and how long the program takes) for
# what a program really reads, against the floor: the bytes of the pages
# the program touches, each file's at that file's compression ratio.
#
# Workloads (each its own image, built once into $OUT/www):
#   python      python3 -c 'import json' in a Debian root filesystem with
#               python3 (scripts/test-rootfs.sh), chroot into the mount
#   compiler    gcc -O1 of a small C file and its run, in a Debian root
#               filesystem with gcc and libc6-dev (tmpfs over /tmp)
#   smallfiles  2000 files of 1..48 KiB (half text, half random; fixed
#               seed), each read whole (cat) in a fixed random order
#   bigfile     one file of SKIFF_BENCH_BIG_MB MiB (default 1024) of
#               incompressible data, read sequentially (dd bs=1M)
# Links: loopback, 100Mbit, 3MB (3 MB/s = 24 Mbit/s): nginx serves the
# layouts over HTTP in a network namespace the bench makes; nginx, skiffd,
# `skiff mount` and the program all run in it (nsenter --net, which keeps
# the host's mount namespace: `ip netns exec` would give each its own),
# the two capped links a tbf qdisc on its loopback. bigfile runs on
# 3MB only with SKIFF_BENCH_BIG_SLOW=1 (1 GiB takes 6 minutes there).
# Configs: the image at 1M, 256K and 64K chunks served by build/skiffd
# (defaults), and "today": the 1M image served by skiffd built from
# SKIFF_BENCH_BASE_REV (default a823b18, the code before the read-ahead
# change; built once into $OUT/base-src, cached by commit).
#
# Each run starts from an empty skiffd cache and dropped page caches (the
# served blobs are then read back into the page cache: nginx serves from
# memory); time is from `skiff mount` to the program's exit; the counters
# are read from /metrics once the link has been quiet for a second
# (read-ahead still in flight at the exit counts). Medians of
# SKIFF_BENCH_RUNS runs (default 3), each value on its own.
#
# The floor: the workload's tree copied onto a new ext4 filesystem on a
# loop device, read_ahead_kb of the loop device 0 (and again 128), caches
# dropped, the program run there, and fincore's resident bytes of every
# regular file of the tree; bench/fetch-floor.py weighs each file's share
# by the stored/uncompressed ratio of that file's chunks in each image.
#
# Environment: SKIFF_BENCH_RUNS, SKIFF_BENCH_WORKLOADS, SKIFF_BENCH_LINKS,
# SKIFF_BENCH_CHUNKS (space-separated subsets of the names above; chunks
# "1M 256K 64K"; a plain number, scale-bench.sh's chunk count, is
# ignored), SKIFF_BENCH_TODAY=0 (no "today" row), SKIFF_BENCH_BASE_REV,
# SKIFF_BENCH_BIG_MB, SKIFF_BENCH_BIG_SLOW=1, SKIFF_BENCH_OUT (default
# /var/tmp/skiff-bench/fetch). Prints tables and goals; exits non-zero
# only on errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
NEW_SKIFFD=$ROOT/build/skiffd
RUNS=${SKIFF_BENCH_RUNS:-3}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/fetch}
WORKLOADS=${SKIFF_BENCH_WORKLOADS:-python compiler smallfiles bigfile}
LINKS=${SKIFF_BENCH_LINKS:-loopback 100Mbit 3MB}
CHUNKS=${SKIFF_BENCH_CHUNKS:-1M 256K 64K}
# scale-bench.sh reads SKIFF_BENCH_CHUNKS as a chunk count: `make bench`
# with that set must not stop here
[[ $CHUNKS =~ ^[0-9]+$ ]] && CHUNKS="1M 256K 64K"
TODAY=${SKIFF_BENCH_TODAY:-1}
BASE_REV=${SKIFF_BENCH_BASE_REV:-a823b18}
BIG_MB=${SKIFF_BENCH_BIG_MB:-1024}
BIG_SLOW=${SKIFF_BENCH_BIG_SLOW:-0}
DEF=1M			# skiff build's default chunk size: the "default config"
PORT=8080		# in the bench's own network namespace: nothing else there
NS=skiff-fetch-$$
NX=(nsenter "--net=/run/netns/$NS")
R=$OUT/run.$$		# this run's scratch
MNT=$R/mnt
LM=$R/ext4
SKIFFD=$NEW_SKIFFD
BASE_SKIFFD=''
npid='' loop='' loop_ra='' ns_made='' PROG_PID=''
. "$ROOT/bench/lib.sh"

die() { echo "fetch-bench: $*" >&2; exit 1; }
note() { echo "fetch-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$NEW_SKIFFD" ] || die "build first (make)"
for c in nginx fincore jq tc ip nsenter losetup mkfs.ext4 openssl bc curl python3; do
	command -v "$c" >/dev/null || die "$c missing (scripts/setup.sh installs it)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[[ $BIG_MB =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_BIG_MB must be a positive integer"
for w in $WORKLOADS; do
	case $w in python | compiler | smallfiles | bigfile) ;; *) die "unknown workload $w" ;; esac
done
for l in $LINKS; do
	case $l in loopback | 100Mbit | 3MB) ;; *) die "unknown link $l (loopback, 100Mbit, 3MB)" ;; esac
done
for c in $CHUNKS; do
	case $c in 1M | 256K | 64K) ;; *) die "unknown chunk size $c (1M, 256K, 64K)" ;; esac
done
CONFIGS=$CHUNKS
[ "$TODAY" = 0 ] || CONFIGS+=" today"

# umount_retry DIR: unmounts DIR if mounted, waiting a little for users
# to go; detaches it lazily as a last resort
umount_retry() {
	local i
	for ((i = 0; i < 20; i++)); do
		mountpoint -q "$1" 2>/dev/null || return 0
		umount "$1" 2>/dev/null && return 0
		sleep 0.5
	done
	umount -l "$1"
}

cleanup() {
	set +e
	if [ -n "$PROG_PID" ]; then
		kill -TERM "$PROG_PID" 2>/dev/null	# timeout passes it to the program's group
		wait "$PROG_PID" 2>/dev/null
	fi
	umount_retry "$MNT/tmp"
	umount_retry "$MNT"
	bench_stop_skiffd
	[ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
	[ -n "$ns_made" ] && ip netns del "$NS"
	umount_retry "$LM/tmp"
	umount_retry "$LM"
	if [ -n "$loop" ]; then
		[ -n "$loop_ra" ] && echo "$loop_ra" >"/sys/block/${loop#/dev/}/queue/read_ahead_kb"
		losetup -d "$loop"
	fi
	grep -q " $R/" /proc/mounts || rm -rf "$R"
}
trap cleanup EXIT

# --- the workloads' trees, images and programs -------------------------

wl_key() { if [ "$1" = bigfile ]; then echo "bigfile-${BIG_MB}M"; else echo "$1"; fi; }

# smallfiles: 2000 files in 20 directories, text and random in turn,
# sizes 1..48 KiB; "order" the relative paths in the reading order,
# "sum" the SHA-256 of their bytes in that order
make_smallfiles() {
	python3 - "$1" <<'EOF'
import hashlib, os, random, sys
top = sys.argv[1]
rng = random.Random(20240611)
letters = "etaoinshrdlucmfwypvbgkjqxz"
words = ["".join(rng.choice(letters[:rng.randint(8, 26)]) for _ in range(rng.randint(2, 10)))
         for _ in range(600)]
names = []
for i in range(2000):
    rel = "d%02d/f%04d" % (i // 100, i)
    os.makedirs(os.path.join(top, "tree", os.path.dirname(rel)), exist_ok=True)
    size = rng.randint(1024, 48 * 1024)
    if i % 2 == 0:
        out, n = [], 0
        while n < size:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "\n"
            out.append(line)
            n += len(line)
        data = "".join(out).encode()[:size]
    else:
        data = rng.randbytes(size)
    with open(os.path.join(top, "tree", rel), "wb") as f:
        f.write(data)
    names.append(rel)
rng.shuffle(names)
h = hashlib.sha256()
for rel in names:
    with open(os.path.join(top, "tree", rel), "rb") as f:
        h.update(f.read())
with open(os.path.join(top, "order"), "w") as f:
    f.write("\n".join(names) + "\n")
with open(os.path.join(top, "sum"), "w") as f:
    f.write(h.hexdigest() + "\n")
EOF
}

# bigfile: AES-CTR of zeros under a fixed key (incompressible, the same
# bytes every time)
make_bigfile() {
	mkdir -p "$1/tree"
	set +o pipefail
	openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff \
		-iv 0 -in /dev/zero 2>/dev/null | head -c $((BIG_MB << 20)) >"$1/tree/big"
	set -o pipefail
	[ "$(stat -c %s "$1/tree/big")" = $((BIG_MB << 20)) ] || die "could not make the big file"
}

# the tree a workload's image is built from (made once)
declare -A TREE
wl_tree() {
	local w=$1 k d
	case $w in
	python)
		TREE[$w]=$(SKIFF_ROOTFS_INCLUDE=python3 "$ROOT/scripts/test-rootfs.sh") || die "no root filesystem"
		[ -x "${TREE[$w]}/usr/bin/python3" ] || die "no python3 in ${TREE[$w]}" ;;
	compiler)
		TREE[$w]=$(SKIFF_ROOTFS_INCLUDE=gcc,libc6-dev "$ROOT/scripts/test-rootfs.sh") || die "no root filesystem"
		[ -x "${TREE[$w]}/usr/bin/gcc" ] || die "no gcc in ${TREE[$w]}" ;;
	smallfiles | bigfile)
		k=$(wl_key "$w")
		d=$OUT/data/$k
		if [ ! -f "$d/.done" ]; then
			note "making the $k tree"
			rm -rf "$d" "$d.new"
			mkdir -p "$d.new"
			"make_$w" "$d.new"
			touch "$d.new/.done"
			mv "$d.new" "$d"
		fi
		TREE[$w]=$d/tree ;;
	esac
}

# the layout of a workload's image at a chunk size (built once)
layout() { echo "$OUT/www/$(wl_key "$1")-$2"; }
wl_image() {
	local w=$1 c=$2 l
	l=$(layout "$w" "$c")
	[ -f "$l/.done" ] && return 0
	note "building the $(wl_key "$w") image at $c chunks"
	rm -rf "$l" "$l.new"
	"$SKIFF" build -q --chunk-size "$c" "${TREE[$w]}" "$l.new:img" || die "skiff build failed"
	touch "$l.new/.done"
	mv "$l.new" "$l"
}

CFILE='#include <stdio.h>
#include <string.h>
int main(void)
{
	char b[32];

	snprintf(b, sizeof(b), "hello %d", 6 * 7);
	puts(b);
	return strlen(b) != 8;
}'

# prog_setup W DIR / prog_teardown W DIR: around the program in a tree
# mounted at DIR (a writable /tmp for the compiler)
prog_setup() {
	if [ "$1" = compiler ]; then
		mount -t tmpfs -o size=64m tmpfs "$2/tmp"
		printf '%s\n' "$CFILE" >"$2/tmp/h.c"
	fi
}
prog_teardown() { if [ "$1" = compiler ]; then umount "$2/tmp"; fi; }

# run_prog W DIR [PREFIX...]: the workload's program on the tree at DIR,
# checked; PREFIX (nsenter) runs it in the namespace. It runs under
# timeout (its own process group) in the background, so that a signal to
# the bench reaches cleanup at once, and cleanup stops it (PROG_PID)
# before it unmounts.
run_prog() {
	local w=$1 dir=$2 out rc=0
	shift 2
	case $w in
	python)
		set -- "$@" chroot "$dir" /usr/bin/python3 -c 'import json; print(json.dumps({"ok": 1}))' ;;
	compiler)
		set -- "$@" chroot "$dir" /bin/sh -c 'gcc -O1 -o /tmp/h /tmp/h.c && /tmp/h' ;;
	smallfiles)
		set -- "$@" sh -c 'cd "$1" && xargs -d "\n" cat <"$2" | sha256sum' sh "$dir" "$OUT/data/smallfiles/order" ;;
	bigfile)
		set -- "$@" dd if="$dir/big" of=/dev/null bs=1M ;;
	esac
	timeout 1800 "$@" >"$R/prog.out" 2>&1 &
	PROG_PID=$!
	wait "$PROG_PID" || rc=$?
	PROG_PID=''
	out=$(cat "$R/prog.out")
	[ "$rc" = 0 ] || die "$w failed in $dir ($rc): $out"
	case $w in
	python) [ "$out" = '{"ok": 1}' ] || die "python printed '$out'" ;;
	compiler) [ "$out" = 'hello 42' ] || die "the compiled program printed '$out'" ;;
	smallfiles)
		[ "${out%% *}" = "$(cat "$OUT/data/smallfiles/sum")" ] || die "the small files read differ: $out" ;;
	bigfile) grep -q "^$((BIG_MB << 20)) bytes" <<<"$out" || die "dd read less than the file: $out" ;;
	esac
}

# --- the floor ----------------------------------------------------------

# measure_floor W: $R/floor/W.ra0 and .ra128, "RESIDENT_BYTES PATH" per
# regular file of the tree after the program ran on an ext4 copy
measure_floor() {
	local w=$1 tree=${TREE[$1]} size ra
	mkdir -p "$R/floor" "$LM"
	size=$(du -s --block-size=1 "$tree" | cut -f1)
	truncate -s $(((size * 13 / 10 >> 20 << 20) + (256 << 20))) "$R/ext4.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$R/ext4.img"
	loop=$(losetup -f --show "$R/ext4.img")
	loop_ra=$(cat "/sys/block/${loop#/dev/}/queue/read_ahead_kb")
	mount "$loop" "$LM"
	cp -a "$tree/." "$LM/"
	umount "$LM"
	for ra in 0 128; do
		echo "$ra" >"/sys/block/${loop#/dev/}/queue/read_ahead_kb"
		bench_drop_caches
		mount -o ro "$loop" "$LM"
		prog_setup "$w" "$LM"
		run_prog "$w" "$LM"
		prog_teardown "$w" "$LM"
		(cd "$LM" && find . -xdev -type f -print0 |
			xargs -0 -r fincore --bytes --raw --noheadings -o RES,FILE) >"$R/floor/$w.ra$ra"
		umount "$LM"
	done
	echo "$loop_ra" >"/sys/block/${loop#/dev/}/queue/read_ahead_kb"
	losetup -d "$loop"
	loop='' loop_ra=''
	rm -f "$R/ext4.img"
}

# --- the skiffd of today --------------------------------------------------

base_skiffd() {
	local rev src=$OUT/base-src
	rev=$(git -C "$ROOT" rev-parse --verify "$BASE_REV^{commit}") || die "no commit $BASE_REV"
	BASE_SKIFFD=$OUT/base-bin/$rev/skiffd
	[ -x "$BASE_SKIFFD" ] && return 0
	note "building skiffd of $BASE_REV (${rev:0:12}) in $src"
	rm -rf "$src"
	mkdir -p "$src" "$OUT/base-bin/$rev"
	git -C "$ROOT" archive "$rev" | tar -x -C "$src"
	echo "$rev" >"$src/.skiff-bench-rev"
	make -C "$src" -j "$NCPU" build/skiffd >"$OUT/base-build.log" 2>&1 ||
		die "building skiffd of $BASE_REV failed: see $OUT/base-build.log"
	cp "$src/build/skiffd" "$BASE_SKIFFD.new"
	mv "$BASE_SKIFFD.new" "$BASE_SKIFFD"
}

# --- the link -------------------------------------------------------------

start_net() {
	ip netns add "$NS" || die "ip netns add failed"
	ns_made=1
	"${NX[@]}" ip link set lo up
	bench_nginx_conf "$R/nginx" "$OUT/www" "$PORT"
	"${NX[@]}" nginx -c "$R/nginx/nginx.conf" -p "$R/nginx" >>"$R/nginx/stderr.log" 2>&1 &
	npid=$!
	for _ in $(seq 1 100); do
		"${NX[@]}" curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
		sleep 0.1
	done
	die "nginx did not start in the namespace: $(tail -n 3 "$R/nginx/error.log" 2>/dev/null)"
}

set_link() {
	"${NX[@]}" tc qdisc del dev lo root 2>/dev/null || true
	case $1 in
	loopback) ;;
	# lo's MTU is 64 KiB: the bucket holds a few packets
	100Mbit) "${NX[@]}" tc qdisc add dev lo root tbf rate 100mbit burst 256kb latency 200ms ;;
	3MB) "${NX[@]}" tc qdisc add dev lo root tbf rate 24mbit burst 256kb latency 200ms ;;
	esac
}

link_bytes() { "${NX[@]}" awk '$1 == "lo:" { print $2 }' /proc/net/dev; }

# until the namespace's loopback has been quiet for a second (60 s at most)
link_quiet() {
	local a b i
	a=$(link_bytes)
	for ((i = 0; i < 120; i++)); do
		sleep 0.5
		b=$(link_bytes)
		if [ "$a" = "$b" ]; then
			sleep 0.5
			[ "$(link_bytes)" = "$b" ] && return 0
		fi
		a=$(link_bytes)
	done
}

# --- one run --------------------------------------------------------------

MET=(skiff_fetched_bytes_total skiff_backend_fetches_total skiff_fetched_demand_bytes_total
	skiff_fetched_readahead_file_bytes_total skiff_fetched_readahead_across_bytes_total
	skiff_prefetch_bytes_total skiff_fetched_read_later_bytes_total)
# counters summed over their labels, "-" for one skiffd does not have
read_metrics() {
	local m
	curl -s --unix-socket "$R/d/sock" http://skiffd/metrics >"$R/metrics" || die "no /metrics"
	for m in "${MET[@]}"; do
		awk -v n="$m" 'index($1, n "{") == 1 || $1 == n { s += $2; f = 1 }
			END { if (f) printf "%.0f\n", s; else print "-" }' "$R/metrics"
	done | tr '\n' ' '
}

now() { date +%s.%N; }

# one_run W LINK CONFIG: prints "seconds" then the counters of MET
one_run() {
	local w=$1 cfg=$2 c=$2 l t0 t1
	[ "$cfg" = today ] && c=$DEF
	l=$(layout "$w" "$c")
	# shellcheck disable=SC2034 # bench_start_skiffd runs $SKIFFD
	if [ "$cfg" = today ]; then SKIFFD=$BASE_SKIFFD; else SKIFFD=$NEW_SKIFFD; fi
	BENCH_SKIFFD_WRAP="${NX[*]}" bench_start_skiffd "$R/d" || die "skiffd did not start"
	bench_drop_caches
	cat "$l"/blobs/sha256/* >/dev/null	# nginx serves from memory
	t0=$(now)
	SKIFF_SOCKET=$R/d/sock "${NX[@]}" "$SKIFF" mount "http://127.0.0.1:$PORT/${l##*/}#img" "$MNT" >/dev/null ||
		die "skiff mount failed: $(tail -n 3 "$R/d/skiffd.log")"
	prog_setup "$w" "$MNT"
	run_prog "$w" "$MNT" "${NX[@]}"
	t1=$(now)
	prog_teardown "$w" "$MNT"
	link_quiet
	echo "$(printf '%.3f' "$(echo "$t1 - $t0" | bc)") $(read_metrics)"
	SKIFF_SOCKET=$R/d/sock "$SKIFF" umount "$MNT" >/dev/null || die "skiff umount failed"
	bench_stop_skiffd
}

# --- the plan -------------------------------------------------------------

runs_of() { # W LINK: does the combination run
	[ "$1" != bigfile ] || [ "$2" != 3MB ] || [ "$BIG_SLOW" = 1 ]
}
# a rough estimate: the stored MB each workload fetched here (the mean of
# the configs, today's skiffd included), at each link's rate, plus 2.5 s
# of setting up per run and the floor's runs
est_mb() { case $1 in python) echo 8 ;; compiler) echo 25 ;; smallfiles) echo 34 ;; bigfile) echo "$BIG_MB" ;; esac; }
est_rate() { case $1 in loopback) echo 250 ;; 100Mbit) echo 11.5 ;; 3MB) echo 2.9 ;; esac; }
nconf=$(wc -w <<<"$CONFIGS")
est=0
for w in $WORKLOADS; do
	est=$(echo "$est + 15 + $(est_mb "$w") / 30" | bc -l)	# the floor: a copy, two runs
	for l in $LINKS; do
		runs_of "$w" "$l" || continue
		est=$(echo "$est + $RUNS * $nconf * ($(est_mb "$w") / $(est_rate "$l") + 2.5)" | bc -l)
	done
done
note "$RUNS runs of: workloads $WORKLOADS; links $LINKS; configs $CONFIGS"
note "estimate: about $(echo "($est + 59) / 60" | bc) minutes (more the first time: debootstrap, images, skiffd of today)"
T_START=$SECONDS

rm -rf "$R"
mkdir -p "$R" "$MNT" "$OUT/www"
for w in $WORKLOADS; do
	wl_tree "$w"
	for c in $CHUNKS; do wl_image "$w" "$c"; done
	[ "$TODAY" = 0 ] || wl_image "$w" "$DEF"
done
[ "$TODAY" = 0 ] || base_skiffd

# images: stored blob bytes and bootstrap
declare -A ISIZE BSIZE BSID FLOOR0 FLOOR128 TOUCH0 TOUCH128
for w in $WORKLOADS; do
	for c in $(tr ' ' '\n' <<<"$CHUNKS $DEF" | sort -u); do
		[ -d "$(layout "$w" "$c")" ] || continue
		info=$("$SKIFF" inspect --json "$(layout "$w" "$c"):img")
		ISIZE[$w.$c]=$(jq '[.blobs[].stored_size] | add' <<<"$info")
		BSIZE[$w.$c]=$(jq '.bootstrap_size' <<<"$info")
		BSID[$w.$c]=$(jq -r '.bootstrap' <<<"$info")
	done
done

for w in $WORKLOADS; do
	note "the floor of $w: the program on an ext4 copy, read_ahead_kb 0 and 128"
	measure_floor "$w"
	for c in $(tr ' ' '\n' <<<"$CHUNKS $DEF" | sort -u); do
		[ -n "${BSID[$w.$c]:-}" ] || continue
		python3 "$ROOT/bench/fetch-floor.py" "$(layout "$w" "$c")" "${BSID[$w.$c]}" \
			"$R/floor/$w.ra0" "$R/floor/$w.ra128" >"$R/floor/$w.$c" || die "fetch-floor.py failed"
		{ read -r t0 f0 _ u0; read -r t1 f1 _ u1; } <"$R/floor/$w.$c"
		[ "$u0" = 0 ] && [ "$u1" = 0 ] || note "$w: $u0/$u1 resident paths not in the $c image"
		TOUCH0[$w]=$t0 TOUCH128[$w]=$t1 FLOOR0[$w.$c]=$f0 FLOOR128[$w.$c]=$f1
	done
	note "$w touches $(( ${TOUCH0[$w]} >> 10 )) KiB (read_ahead_kb 0), $(( ${TOUCH128[$w]} >> 10 )) KiB (128)"
done

start_net
declare -A V	# V[w.link.cfg.i] = the values of run i, one list per column
busy=0 nrun=0
for l in $LINKS; do
	set_link "$l"
	for w in $WORKLOADS; do
		runs_of "$w" "$l" || continue
		for ((r = 1; r <= RUNS; r++)); do
			bench_wait_quiet || busy=$((busy + 1))
			nrun=$((nrun + 1))
			for cfg in $CONFIGS; do
				# not a process substitution: a failure must stop the bench
				one_run "$w" "$cfg" >"$R/result"
				read -ra vals <"$R/result"
				# waste = read ahead (in the file, across) + prefetched - read later
				if [[ " ${vals[*]:4:4} " == *" - "* ]]; then vals+=(-); else
					vals+=($((vals[4] + vals[5] + vals[6] - vals[7]))); fi
				for i in "${!vals[@]}"; do V[$w.$l.$cfg.$i]+="${vals[$i]} "; done
				note "$l $w $cfg run $r/$RUNS: ${vals[0]} s, ${vals[1]} bytes fetched in ${vals[2]} reads"
			done
		done
	done
done
set_link loopback

# --- the tables -----------------------------------------------------------

med() { # a column's median over the runs, "-" when skiffd lacks it
	local v=${V[$1]:-}
	if [ -z "$v" ] || [[ " $v" == *" - "* ]]; then echo -; else tr ' ' '\n' <<<"$v" | grep . | bench_median; fi
}
mib() { if [ "$1" = - ]; then echo -; else printf '%.2f' "$(echo "$1 / 1048576" | bc -l)"; fi; }
rat() { # A / B with 2 decimals, "-" when either is missing
	if [ "$1" = - ] || [ "$2" = - ] || [ -z "$2" ] || [ "$(echo "$2 == 0" | bc)" = 1 ]; then echo -; else
		printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi
}
cfg_chunk() { if [ "$1" = today ]; then echo "$DEF"; else echo "$1"; fi; }

echo
echo "FETCH-EFFICIENCY: stored bytes skiffd fetches for a program against the floor"
echo "(HTTP from nginx in a network namespace; median of $RUNS runs, each from an empty cache"
echo " and dropped page caches; build/skiffd with defaults${BASE_SKIFFD:+; today = skiffd of $BASE_REV, $DEF image})"
echo
echo "images: stored = the blobs' stored bytes; floor = the pages the program touched on ext4"
echo "(read_ahead_kb 0 / 128), each file's at that file's stored/uncompressed ratio in the image"
printf '%-13s %-6s %11s %6s %10s %12s %12s %10s %11s\n' workload chunks "stored MiB" "vs 1M" bootstrap \
	"touched RA0" "touched 128" "floor RA0" "floor RA128"
printf '%-13s %-6s %11s %6s %10s %12s %12s %10s %11s\n' ------------- ------ ----------- ------ ---------- \
	------------ ------------ ---------- -----------
for w in $WORKLOADS; do
	for c in $(tr ' ' '\n' <<<"$CHUNKS $DEF" | sort -u -h -r); do
		[ -n "${ISIZE[$w.$c]:-}" ] || continue
		printf '%-13s %-6s %11s %6s %10s %12s %12s %10s %11s\n' "$(wl_key "$w")" "$c" "$(mib "${ISIZE[$w.$c]}")" \
			"$(rat "${ISIZE[$w.$c]}" "${ISIZE[$w.$DEF]:--}")" "$((BSIZE[$w.$c] >> 10)) KiB" \
			"$(mib "${TOUCH0[$w]}")" "$(mib "${TOUCH128[$w]}")" "$(mib "${FLOOR0[$w.$c]}")" "$(mib "${FLOOR128[$w.$c]}")"
	done
done
echo "(MiB; touched = the uncompressed bytes of those pages)"
echo
echo "fetches: time from mount to the program's exit; MiB and backend reads (skiff_backend_fetches_total)"
echo "once the link is quiet; /floor0, /floor128 = fetched / floor at read_ahead_kb 0, 128;"
echo "today t, today B = this row's seconds, fetched / today's (same workload and link)"
printf '%-13s %-8s %-6s %8s %10s %7s %9s %9s %8s %8s\n' workload link config seconds "fetched" reads \
	"/floor0" "/floor128" "today t" "today B"
printf '%-13s %-8s %-6s %8s %10s %7s %9s %9s %8s %8s\n' ------------- -------- ------ -------- ---------- \
	------- --------- --------- -------- --------
for l in $LINKS; do
	for w in $WORKLOADS; do
		runs_of "$w" "$l" || continue
		for cfg in $CONFIGS; do
			k=$w.$l.$cfg c=$(cfg_chunk "$cfg")
			s=$(med "$k.0") b=$(med "$k.1") q=$(med "$k.2")
			ts=$(med "$w.$l.today.0") tb=$(med "$w.$l.today.1")
			printf '%-13s %-8s %-6s %8.2f %10s %7s %9s %9s %8s %8s\n' "$(wl_key "$w")" "$l" "$cfg" "$s" \
				"$(mib "$b")" "$q" "$(rat "$b" "${FLOOR0[$w.$c]}")" "$(rat "$b" "${FLOOR128[$w.$c]}")" \
				"$(rat "$s" "$ts")" "$(rat "$b" "$tb")"
		done
	done
done

echo
echo "why the bytes came (MiB, medians; - where skiffd has no such counter):"
echo "waste = readahead in the file + across files + prefetch - read later"
printf '%-13s %-8s %-6s %9s %9s %9s %9s %9s %9s\n' workload link config demand "ra file" "ra across" \
	prefetch "read later" waste
printf '%-13s %-8s %-6s %9s %9s %9s %9s %9s %9s\n' ------------- -------- ------ --------- --------- \
	--------- --------- --------- ---------
for l in $LINKS; do
	for w in $WORKLOADS; do
		runs_of "$w" "$l" || continue
		for cfg in $CONFIGS; do
			k=$w.$l.$cfg
			dm=$(med "$k.3") rf=$(med "$k.4") rx=$(med "$k.5") pf=$(med "$k.6") lt=$(med "$k.7")
			ws=$(med "$k.8")
			printf '%-13s %-8s %-6s %9s %9s %9s %9s %9s %9s\n' "$(wl_key "$w")" "$l" "$cfg" "$(mib "$dm")" \
				"$(mib "$rf")" "$(mib "$rx")" "$(mib "$pf")" "$(mib "$lt")" "$(mib "$ws")"
		done
	done
done

# --- the goals ------------------------------------------------------------

verdict() { # CONDITION (bc) [RATIO]: held / NOT held, noting noise-sized misses
	case " $1 " in *" - "*) echo "not measured"; return ;; esac
	if [ "$(echo "$1" | bc)" = 1 ]; then echo held
	elif [ -n "${2:-}" ] && [ "$2" != - ] && [ "$(echo "$2 <= 1.05" | bc)" = 1 ]; then echo "NOT held (within 5%: noise?)"
	else echo "NOT held"; fi
}
in_list() { [[ " $2 " == *" $1 "* ]]; }
echo
echo "goals (default config = $DEF chunks, build/skiffd):"
for w in $WORKLOADS; do
	worst=- wl=
	for l in $LINKS; do
		runs_of "$w" "$l" && in_list "$DEF" "$CHUNKS" || continue
		x=$(rat "$(med "$w.$l.$DEF.1")" "${FLOOR128[$w.$DEF]}")
		[ "$x" = - ] && continue
		if [ "$worst" = - ] || [ "$(echo "$x > $worst" | bc)" = 1 ]; then worst=$x wl=$l; fi
	done
	[ "$worst" = - ] && continue
	printf '  %-66s %s\n' "$(wl_key "$w"): fetched/floor(128K) <= 1.3 (worst $worst, $wl)" \
		"$(verdict "$worst <= 1.3")"
done
if [ "$TODAY" != 0 ] && in_list "$DEF" "$CHUNKS"; then
	for l in loopback 100Mbit; do
		in_list "$l" "$LINKS" || continue
		for w in $WORKLOADS; do
			rs=$(rat "$(med "$w.$l.$DEF.0")" "$(med "$w.$l.today.0")")
			rq=$(rat "$(med "$w.$l.$DEF.2")" "$(med "$w.$l.today.2")")
			printf '  %-66s %s\n' "$(wl_key "$w") $l: time no slower than today ($rs)" "$(verdict "$rs <= 1" "$rs")"
			printf '  %-66s %s\n' "$(wl_key "$w") $l: reads no more than today ($rq)" "$(verdict "$rq <= 1")"
		done
	done
	if in_list bigfile "$WORKLOADS"; then
		for l in $LINKS; do
			runs_of bigfile "$l" || continue
			in_list "$l" "loopback 100Mbit" && continue	# above
			rs=$(rat "$(med "bigfile.$l.$DEF.0")" "$(med "bigfile.$l.today.0")")
			printf '  %-66s %s\n' "$(wl_key bigfile) $l: time no slower than today ($rs)" "$(verdict "$rs <= 1" "$rs")"
		done
	fi
else
	echo "  (no today row or no $DEF row: the goals against today are not judged)"
fi
for w in $WORKLOADS; do
	for c in $CHUNKS; do
		[ "$c" != "$DEF" ] || continue
		x=$(rat "${ISIZE[$w.$c]}" "${ISIZE[$w.$DEF]}")
		printf '  %-66s %s\n' "$(wl_key "$w") $c image within 5% of the $DEF image ($x)" \
			"$(verdict "$x <= 1.05 && $x >= 0.95")"
	done
done
[ "$busy" -eq 0 ] || echo "note: $busy of $nrun rounds started on a busy machine: the times are unreliable"
echo "fetch-bench: $(( (SECONDS - T_START) / 60 )) min $(( (SECONDS - T_START) % 60 )) s"
