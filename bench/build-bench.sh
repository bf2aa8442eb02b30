#!/usr/bin/env bash
# skiff build benchmark: times `skiff build` against mkfs.erofs (chunked,
# with a separate blob device) on a >= 1 GiB tree of real files copied
# from /usr, with the page cache warm, and prints a table plus the goals.
#
# It reports; it does not assert: it exits 0 whether or not the goals are
# met, and non-zero only when something fails.
#
# Environment:
#   SKIFF_BENCH_TREE   input tree (default /var/tmp/skiff-bench/tree). Made
#                      from /usr on first use and kept; an existing
#                      directory is used as it is.
#   SKIFF_BENCH_OUT    scratch directory for outputs, on the same disk
#                      (default /var/tmp/skiff-bench/out); emptied at exit.
#   SKIFF_BENCH_RUNS   timed runs per configuration, median taken (default 3)
#   SKIFF_BENCH_EXTRA  1: also time skiff with -j 1 (single thread)
#   SKIFF_BENCH_QUIET_WAIT  seconds, in all, that runs may wait for other
#                      load to drop under 10% of the CPUs (at most 15 s
#                      before any one run; default 120; 0: never wait)
#   SKIFF_BENCH_NICE   run the timed commands under `nice -n N` (e.g. -10
#                      on a shared box; slows everyone else meanwhile)
#   SKIFF              skiff binary (default build/skiff of this repo)
#   MKFS_EROFS         mkfs.erofs binary (default from PATH)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

SKIFF=${SKIFF:-$repo/build/skiff}
MKFS_EROFS=${MKFS_EROFS:-mkfs.erofs}
TREE=${SKIFF_BENCH_TREE:-/var/tmp/skiff-bench/tree}
TREE=${TREE%/}
OUTBASE=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/out}
RUNS=${SKIFF_BENCH_RUNS:-3}
EXTRA=${SKIFF_BENCH_EXTRA:-0}
QUIET_WAIT=${SKIFF_BENCH_QUIET_WAIT:-120}
NICE=${SKIFF_BENCH_NICE:-}
CHUNK=1048576

# tree size bounds, bytes of regular-file data
GIB=$((1024 * 1024 * 1024))
TREE_MIN=$GIB				# hard minimum
TREE_TARGET=$((GIB * 11 / 10))		# stop adding directories here
TREE_MAX=$((GIB * 3 / 2))		# never grow past this

die() { echo "build-bench: $*" >&2; exit 1; }
note() { echo "build-bench: $*" >&2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "SKIFF_BENCH_QUIET_WAIT must be a number of seconds"
[[ -z $NICE || $NICE =~ ^-?[0-9]+$ ]] || die "SKIFF_BENCH_NICE must be a niceness"
[ -x "$SKIFF" ] || die "$SKIFF not found: run 'make build/skiff' first"
command -v "$MKFS_EROFS" >/dev/null || die "mkfs.erofs not found (apt-get install erofs-utils)"
for t in awk find sort cp du df sync; do
	command -v "$t" >/dev/null || die "$t not found"
done
# OUTPUT blob sizes come from the OCI manifest, read with core-Perl JSON::PP
perl -MJSON::PP -e1 2>/dev/null || die "perl with JSON::PP is needed"

# --- the input tree --------------------------------------------------------

# bytes of regular-file data under $1 (apparent size)
data_bytes() {
	find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'
}

make_tree() {
	local partial="$TREE.partial" total=0 d sz
	# directories tried in order; each is taken whole or skipped
	local candidates=(
		/usr/share /usr/bin /usr/lib/python3.11 /usr/lib/python3
		/usr/include /usr/lib/gcc /usr/sbin /usr/libexec
		/usr/lib/x86_64-linux-gnu /usr/lib/jvm /usr/lib/llvm-14
	)

	rm -rf "$partial"
	mkdir -p "$partial"
	note "creating input tree $TREE from /usr (once; kept for later runs)"
	for d in "${candidates[@]}" /usr/lib/python3.*; do
		[ -d "$d" ] && [ ! -L "$d" ] || continue
		[ -e "$partial$d" ] && continue
		[ "$total" -ge "$TREE_TARGET" ] && break
		sz=$(data_bytes "$d")
		[ $((total + sz)) -le "$TREE_MAX" ] || continue
		mkdir -p "$partial$(dirname "$d")"
		cp -a "$d" "$partial$d"
		total=$((total + sz))
		note "  copied $d ($((sz / 1048576)) MiB, total $((total / 1048576)) MiB)"
	done
	[ "$total" -ge "$TREE_MIN" ] ||
		die "could only gather $((total / 1048576)) MiB from /usr (need >= 1 GiB); set SKIFF_BENCH_TREE"
	mv "$partial" "$TREE"
	date -u +%FT%TZ >"$TREE.stamp"
}

if [ -d "$TREE" ]; then
	[ -e "$TREE.stamp" ] || note "using existing tree $TREE as it is"
else
	mkdir -p "$(dirname "$TREE")"
	avail=$(df -B1 --output=avail "$(dirname "$TREE")" | tail -1)
	[ "$avail" -ge $((TREE_MAX + GIB)) ] ||
		die "not enough space under $(dirname "$TREE") for the tree"
	make_tree
fi

TREE_BYTES=$(data_bytes "$TREE")
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_INODES=$(find "$TREE" | wc -l)
[ "$TREE_BYTES" -ge "$TREE_MIN" ] ||
	note "warning: tree has only $((TREE_BYTES / 1048576)) MiB of file data (< 1 GiB)"

# --- scratch output --------------------------------------------------------

mkdir -p "$OUTBASE"
avail=$(df -B1 --output=avail "$OUTBASE" | tail -1)
[ "$avail" -ge $((TREE_BYTES + TREE_BYTES / 4 + 268435456)) ] ||
	die "not enough space in $OUTBASE for one output image"
WORK=$(mktemp -d "$OUTBASE/run.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# time a snapshot of the binary, so a rebuild during the run changes nothing
SKIFF_SRC=$SKIFF
cp "$SKIFF" "$WORK/skiff"
SKIFF=$WORK/skiff
SKIFF_ID="$(sha256sum "$SKIFF" | cut -c1-12), built $(date -u -r "$SKIFF_SRC" +'%F %TZ')"

# --- configurations --------------------------------------------------------
# name | command run with OUT replaced by the output path | how to size it

names=() cmds=() kinds=()
add() { names+=("$1"); kinds+=("$2"); cmds+=("$3"); }

add "mkfs.erofs chunked" erofs \
	"\"\$MKFS_EROFS\" --quiet --chunksize=$CHUNK --blobdev=\"\$OUT/blob.img\" \"\$OUT/boot.img\" \"\$TREE\""
add "skiff --compress none" skiff "\"\$SKIFF\" build --compress none -q \"\$TREE\" \"\$OUT\""
add "skiff zstd -l 3" skiff "\"\$SKIFF\" build -q \"\$TREE\" \"\$OUT\""
add "skiff zstd -l 1" skiff "\"\$SKIFF\" build -q -l 1 \"\$TREE\" \"\$OUT\""
if [ "$EXTRA" = 1 ]; then
	add "skiff none -j 1" skiff "\"\$SKIFF\" build --compress none -j 1 -q \"\$TREE\" \"\$OUT\""
	add "skiff zstd -l 3 -j 1" skiff "\"\$SKIFF\" build -j 1 -q \"\$TREE\" \"\$OUT\""
fi

# bytes of the image in $2 made by kind $1: bootstrap + data blob
out_bytes() {
	case $1 in
	erofs)
		echo $(($(stat -c %s "$2/boot.img") + $(stat -c %s "$2/blob.img")))
		;;
	skiff)
		# the layers of the (only) manifest: the blob and the bootstrap
		perl -MJSON::PP -e '
			my $d = shift;
			sub rd { local $/; open(my $f, "<", $_[0]) or die "$_[0]: $!"; decode_json(<$f>) }
			my $idx = rd("$d/index.json");
			my ($alg, $hex) = split /:/, $idx->{manifests}[0]{digest};
			my $m = rd("$d/blobs/$alg/$hex");
			my $s = 0; $s += $_->{size} for @{$m->{layers}};
			print "$s\n";' "$2"
		;;
	esac
}

# busy CPU seconds of the whole machine so far (steal included)
HZ=$(getconf CLK_TCK)
busy_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat; }

# wait until the machine is idle, since on a shared box other jobs inflate
# wall times: at most 15 s, and at most what is left of QUIET_WAIT in all.
# 0 when quiet, 1 when it gave up
wait_left=$QUIET_WAIT
wait_quiet() {
	local start=$SECONDS limit a b rc=1
	limit=$((wait_left < 15 ? wait_left : 15))
	while :; do
		a=$(busy_cpu)
		sleep 1
		b=$(busy_cpu)
		if awk -v a="$a" -v b="$b" -v n="$NCPU" 'BEGIN { exit !((b - a) / n < 0.10) }'; then
			rc=0
			break
		fi
		[ $((SECONDS - start)) -lt "$limit" ] || break
	done
	wait_left=$((wait_left - (SECONDS - start)))
	[ "$wait_left" -gt 0 ] || wait_left=0
	return $rc
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- warm the page cache ---------------------------------------------------

note "warming the page cache over $TREE"
# (tar to /dev/null would skip reading file data, so pipe it)
tar -C "$TREE" -cf - . | cat >/dev/null

# --- measure ---------------------------------------------------------------

TIMEFORMAT='%3R %3U %3S'
NICE_CMD=
[ -z "$NICE" ] || NICE_CMD="nice -n $NICE "
NCPU=$(nproc)
busy_runs=0
declare -A wall wmin user sys size noise
for i in "${!names[@]}"; do
	note "timing ${names[$i]} ($RUNS runs)"
	walls=() users=() syss=() noise[$i]=0
	for ((r = 1; r <= RUNS; r++)); do
		OUT="$WORK/out"
		rm -rf "$OUT"
		[ "${kinds[$i]}" = erofs ] && mkdir -p "$OUT"
		sync
		if [ "$wait_left" -gt 0 ] && ! wait_quiet; then
			busy_runs=$((busy_runs + 1))
		fi
		b0=$(busy_cpu)
		if ! t=$( { time eval "$NICE_CMD${cmds[$i]}" >"$WORK/log" 2>&1; } 2>&1 ); then
			cat "$WORK/log" >&2
			die "${names[$i]} failed"
		fi
		b1=$(busy_cpu)
		read -r tw tu ts <<<"$t"
		walls+=("$tw") users+=("$tu") syss+=("$ts")
		# share of the machine that other processes (and the kernel's
		# writeback threads) kept busy during the run; the worst run counts
		noise[$i]=$(awk -v b="$(awk -v a="$b0" -v z="$b1" 'BEGIN { print z - a }')" \
			-v u="$tu" -v s="$ts" -v w="$tw" -v n="$NCPU" -v m="${noise[$i]}" \
			'BEGIN { x = (b - u - s) / (w * n); if (x < 0) x = 0; printf "%.3f\n", (x > m) ? x : m }')
		size[$i]=$(out_bytes "${kinds[$i]}" "$OUT")
		rm -rf "$OUT"
	done
	wall[$i]=$(printf '%s\n' "${walls[@]}" | median)
	wmin[$i]=$(printf '%s\n' "${walls[@]}" | sort -g | head -1)
	user[$i]=$(printf '%s\n' "${users[@]}" | median)
	sys[$i]=$(printf '%s\n' "${syss[@]}" | median)
	note "  wall ${walls[*]}"
done
sync

# --- report ----------------------------------------------------------------

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
echo "skiff build benchmark"
echo "  machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, kernel $(uname -r)"
# mkfs.erofs 1.5 has no --version; it prints its version before building
erofs_ver=$(dpkg-query -W -f='${Version}' erofs-utils 2>/dev/null || echo unknown)
echo "  mkfs.erofs: $(command -v "$MKFS_EROFS") (erofs-utils $erofs_ver)"
echo "  skiff: $SKIFF_SRC ($SKIFF_ID)"
echo "  tree: $TREE, $TREE_INODES inodes, $TREE_FILES files," \
	"$TREE_BYTES bytes ($(awk -v b="$TREE_BYTES" 'BEGIN { printf "%.2f", b / 2^30 }') GiB)"
echo "  chunk size 1 MiB; page cache warm; median of $RUNS runs;" \
	"MB = 10^6 bytes; speed = mkfs.erofs time / this time${NICE:+; nice $NICE}"
echo
fmt='%-22s %7s %7s %7s %7s %6s %8s %6s %10s %6s\n'
printf "$fmt" config "wall s" "min s" "user s" "sys s" "MB/s" "MB/CPUs" speed "output MiB" out/in
printf "$fmt" ---------------------- ------- ------- ------- ------- ------ -------- ------ ---------- ------
noisy=()
for i in "${!names[@]}"; do
	awk -v n="${names[$i]}" -v w="${wall[$i]}" -v m="${wmin[$i]}" -v u="${user[$i]}" \
	    -v s="${sys[$i]}" -v b="$TREE_BYTES" -v w0="${wall[0]}" -v o="${size[$i]}" \
	    -v f="$fmt" 'BEGIN {
		if (w <= 0) w = 0.001
		printf f, n, sprintf("%.2f", w), sprintf("%.2f", m), sprintf("%.2f", u),
			sprintf("%.2f", s), sprintf("%.0f", b / 1e6 / w),
			sprintf("%.0f", b / 1e6 / (u + s > 0 ? u + s : 0.001)),
			sprintf("%.2f", w0 / w), sprintf("%.1f", o / 1048576),
			sprintf("%.3f", o / b)
	}'
	if awk -v x="${noise[$i]}" 'BEGIN { exit !(x > 0.10) }'; then
		noisy+=("${names[$i]}: $(awk -v x="${noise[$i]}" 'BEGIN { printf "%.0f%%", 100 * x }')")
	fi
done
echo "(wall s: median; min s: fastest run; user/sys: medians; MB/s: from the median wall;"
echo " MB/CPUs: per CPU second, user + sys, i.e. the work done, whatever the load)"
if [ "$busy_runs" -gt 0 ]; then
	echo "note: $busy_runs run(s) started on a busy machine after waiting for quiet;" \
		"wall times are unreliable (see the min column and the loads below)"
fi
if [ ${#noisy[@]} -gt 0 ]; then
	echo "note: other CPU load during some runs (share of all CPUs, worst run;" \
		"includes the kernel writing back the output): ${noisy[*]}"
fi
echo

goal() {	# description, awk condition over w0 w b
	local desc=$1 cond=$2 w=$3 verdict
	if awk -v w0="${wall[0]}" -v w="$w" -v b="$TREE_BYTES" "BEGIN { if (w <= 0) w = 0.001; exit !($cond) }"; then
		verdict=MET
	else
		verdict="NOT MET"
	fi
	printf '  %-68s %s%s\n' "$desc" "$verdict" "$busy_tag"
}
busy_tag=
if [ "$busy_runs" -gt 0 ] || [ ${#noisy[@]} -gt 0 ]; then
	busy_tag=" (busy machine: unreliable)"
fi
echo "goals:"
goal "uncompressed build at least as fast as mkfs.erofs (ratio >= 1.0)" \
	"w0 / w >= 1.0" "${wall[1]}"
goal "zstd build >= 200 MB/s" "b / 1e6 / w >= 200" "${wall[2]}"
exit 0
