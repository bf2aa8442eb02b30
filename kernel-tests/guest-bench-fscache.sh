#!/usr/bin/env bash
# guest-bench-fscache.sh: runs INSIDE the QEMU test guest
# (kernel-tests/run-guest.sh; bench/fscache-bench.sh boots it) and prints
# a table: how fast a tree reads through skiffd's cachefiles frontend
# against the kernel's own speed on the same image.
#
#   loop cold      the exported cache files (skiff export-cache) on the ext4
#                  disk, attached with losetup -r and mounted with
#                  mount -t erofs -o ro,device=...; fresh mount, page cache
#                  dropped. The baseline: no loader at all.
#   fscache cold   skiffd started fresh with an empty cache dir, the image
#                  mounted by fsid, page cache dropped: every chunk is
#                  fetched from the local store (on the same ext4 disk),
#                  decompressed, verified and written to the kernel's
#                  cache files while the reader waits.
#   loop warm      the loop mount unmounted and mounted again, caches
#                  dropped (the same work as loop cold: the warm baseline).
#   fscache warm   the fscache mount unmounted and mounted again by the same
#                  fsid, caches dropped: the cachefiles cache files hold
#                  everything, so no READ may reach skiffd.
#
# A read is `find MNT -type f -print0 | xargs -0 cat >/dev/null` (GNU tar
# skips file data when writing to /dev/null, so no tar). Each mode runs
# RUNS times, interleaved, and the median counts.
#
# Environment:
#   SKIFF_BENCH_STORE  IMAGE (OCI layout DIR:TAG) built beforehand, e.g. on
#                      the host; copied to the ext4 disk first. Without it
#                      the image is built here from SKIFF_BENCH_TREE.
#   SKIFF_BENCH_TREE   tree to build from (default /usr/share/doc)
#   SKIFF_BENCH_RUNS   runs per mode, median taken (default 3)
#   SKIFF_BENCH_TRACE  1 (default when strace exists): one more, untimed,
#                      cold pass with skiffd under strace, for the sizes of
#                      the READ requests the kernel sends
#   SKIFF_BENCH_PERF   1 (default when perf exists): one more, untimed, cold
#                      pass under `perf record -a`: where the CPU time goes
#   SKIFF_BENCH_LOOP_DIO  1 (default): also time a loop mount with
#                      losetup --direct-io=on (no page cache under the loop
#                      device, like cachefiles' direct I/O): "loop-dio"
#   SKIFF_BENCH_MERGE_LIMITS  merge limits (skiffd --merge-limit) for one
#                      extra timed cold run each, e.g. "1M 16M" (default none)
#
# Exits 0 when every measurement ran (goals met or not), non-zero on errors.
. "$(dirname "$0")/../tests/lib.sh"

[ "${SKIFF_GUEST:-}" = 1 ] ||
	skip_all "runs inside the test guest: kernel-tests/run-guest.sh $0"
need_root
[ -c /dev/cachefiles ] || skip_all "no /dev/cachefiles in this kernel"

RUNS=${SKIFF_BENCH_RUNS:-3}
TREE=${SKIFF_BENCH_TREE:-/usr/share/doc}
STORE_IN=${SKIFF_BENCH_STORE:-}
TRACE=${SKIFF_BENCH_TRACE:-auto}
PERF=${SKIFF_BENCH_PERF:-auto}
LOOP_DIO=${SKIFF_BENCH_LOOP_DIO:-1}
MERGE_LIMITS=${SKIFF_BENCH_MERGE_LIMITS:-}
BASE=/var/cache/skiff/bench	# ext4: cachefiles needs it, and tmpfs is RAM
HZ=$(getconf CLK_TCK)

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
if [ "$TRACE" = auto ]; then
	TRACE=0
	command -v strace >/dev/null && command -v perl >/dev/null && TRACE=1
fi
if [ "$PERF" = auto ]; then
	PERF=0
	command -v perf >/dev/null && PERF=1
fi
for t in losetup mount umount curl find xargs cat; do
	command -v "$t" >/dev/null || die "$t missing"
done
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "no $SKIFF or $SKIFFD (run make)"

rm -rf "$BASE"
mkdir -p "$BASE"

# --- the image, on the ext4 disk -------------------------------------------
t0=$SECONDS
if [ -n "$STORE_IN" ]; then
	dir=${STORE_IN%:*}
	tag=${STORE_IN##*:}
	[ "$dir" != "$STORE_IN" ] && [ -n "$tag" ] || die "SKIFF_BENCH_STORE wants DIR:TAG"
	[ -f "$dir/index.json" ] || die "$dir is not an OCI layout"
	cp -r "$dir" "$BASE/store" || die "cannot copy $dir"
	IMG=$BASE/store:$tag
	say "image $STORE_IN copied to the ext4 disk ($((SECONDS - t0)) s)"
else
	[ -d "$TREE" ] || die "no tree $TREE"
	"$SKIFF" build -q "$TREE" "$BASE/store:bench" || die "skiff build $TREE failed"
	IMG=$BASE/store:bench
	say "image built from $TREE in the guest ($((SECONDS - t0)) s)"
fi
INFO=$("$SKIFF" inspect --json "$IMG") || die "skiff inspect $IMG failed"
# (jq is there on the test host, but do without it)
json_num() { sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" <<<"$INFO" | head -n 1; }
STORED=$(json_num stored_size)
CHUNKS=$(json_num chunks)

# The export decodes, verifies and writes every chunk in one pass with no
# kernel round trips: a yardstick for the loader's own work (timed with
# the store's page cache dropped, like a cold read).
EXP=$BASE/export
mkdir -p "$EXP"
sync
echo 3 >/proc/sys/vm/drop_caches
EXPORT_T=$( { TIMEFORMAT='%3R %3U %3S'; time "$SKIFF" export-cache "$IMG" "$EXP" >"$T/blob_ids"; } 2>&1) ||
	die "skiff export-cache failed: $EXPORT_T"
BLOB_IDS=$(cat "$T/blob_ids")
EXPORT_T=$(tail -n 1 <<<"$EXPORT_T")
say "cache files exported to the ext4 disk ($EXPORT_T: real user sys s)"
sync
# SHA-256 speed of this CPU (TCG emulates the SIMD code, no SHA-NI)
SHA_MBS=$(openssl speed -evp sha256 -bytes 16384 -seconds 1 2>/dev/null |
	awk '$1 == "sha256" { v = $2; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')

# --- helpers ---------------------------------------------------------------

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

LOOPS=()
loop_attach() { # [LOSETUP_ARGS...]
	local id loop
	LOOPS=()
	for id in $BLOB_IDS; do
		loop=$(losetup -f --show -r "$@" "$EXP/$id") || return 1
		_t_loops+=("$loop")
		LOOPS+=("$loop")
	done
}
loop_detach() {
	local l
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	LOOPS=()
}
loop_mount() { # MNT
	local opts=ro l
	for l in "${LOOPS[@]}"; do opts="$opts,device=$l"; done
	mkdir -p "$1"
	mount -t erofs -o "$opts" "$EXP/bootstrap" "$1" || return 1
	_t_mounts+=("$1")
}
loop_umount() { umount_image "$1"; }

# every regular file read once, to /dev/null
read_tree() {
	find "$1" -type f -print0 | xargs -0 -r cat >/dev/null
}

# skiffd's CPU seconds so far (all threads)
skiffd_cpu() {
	[ -n "$SKIFFD_PID" ] || { echo 0; return; }
	awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / hz }' \
		"/proc/$SKIFFD_PID/stat"
}

# busy CPU seconds of the guest so far, divided by its CPU count
NCPU=$(nproc)
busy_cpu() {
	awk -v hz="$HZ" -v n="$NCPU" '$1 == "cpu" { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz / n; exit }' /proc/stat
}

METRICS=(skiff_events_total skiff_reads_total skiff_read_bytes_total
	skiff_backend_fetches_total skiff_fetched_chunks_total
	skiff_fetched_bytes_total skiff_cache_write_bytes_total
	skiff_read_waits_total skiff_events_failed_total)
snap_metrics() { # -> space-separated values in METRICS order
	local all m v out=()
	all=$(curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics) || return 1
	for m in "${METRICS[@]}"; do
		v=$(awk -v n="$m" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }' <<<"$all")
		out+=("$v")
	done
	echo "${out[*]}"
}

# timed_read MODE MNT: drops caches, reads the tree, and appends a line
#   MODE wall user sys skiffd_cpu d(metric)...
# to $T/results (metric deltas 0 when skiffd is not running)
timed_read() {
	local mode=$1 mnt=$2 m0="" m1="" c0 c1 b0 b1 tm st
	drop_caches
	[ -n "$SKIFFD_PID" ] && { m0=$(snap_metrics) || return 1; }
	c0=$(skiffd_cpu)
	b0=$(busy_cpu)
	st=0
	{
		TIMEFORMAT='%3R %3U %3S'
		time read_tree "$mnt" 2>"$T/read.err"
	} 2>"$T/time" || st=$?
	b1=$(busy_cpu)
	c1=$(skiffd_cpu)
	[ -n "$SKIFFD_PID" ] && { m1=$(snap_metrics) || return 1; }
	if [ "$st" -ne 0 ] || [ -s "$T/read.err" ]; then
		say "$mode: the read failed (exit $st):"
		head -n 5 "$T/read.err" >&2
		return 1
	fi
	tm=$(tail -n 1 "$T/time")
	awk -v mode="$mode" -v t="$tm" -v c0="$c0" -v c1="$c1" -v a="$m0" -v b="$m1" \
		-v b0="$b0" -v b1="$b1" -v n="${#METRICS[@]}" 'BEGIN {
		line = mode " " t " " sprintf("%.3f", c1 - c0)
		na = split(a, x, " "); split(b, y, " ")
		for (i = 1; i <= n; i++) line = line " " ((na ? y[i] - x[i] : 0))
		print line " " sprintf("%.3f", b1 - b0)
	}' >>"$T/results"
	say "$(tail -n 1 "$T/results" | awk '{ printf "%-22s %8.2f s (reader user %.2f sys %.2f, skiffd cpu %.2f, READs %d)", $1, $2, $3, $4, $5, $6 }')"
}

# fresh skiffd with an empty cache dir; ARGS go to skiffd
CF_N=0
fresh_skiffd() {
	CF_N=$((CF_N + 1))
	export SKIFF_TEST_CACHE=$BASE/cf$CF_N
	rm -rf "$SKIFF_TEST_CACHE" "$T/work"
	start_skiffd --frontend cachefiles "$@"
}
end_skiffd() {
	stop_skiffd
	rm -rf "$SKIFF_TEST_CACHE" "$T/work"
}

: >"$T/results"
LMNT=$T/loop
FMNT=$T/fscache

# the data size: what every read covers
loop_attach || die "losetup failed"
loop_mount "$LMNT" || die "loop mount failed"
BYTES=$(find "$LMNT" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }')
FILES=$(find "$LMNT" -type f | wc -l)
loop_umount "$LMNT"
loop_detach

# --- the timed runs, interleaved -------------------------------------------
for ((r = 1; r <= RUNS; r++)); do
	say "run $r of $RUNS"
	loop_attach || die "losetup failed"
	loop_mount "$LMNT" || die "loop mount failed"
	timed_read "loop-cold" "$LMNT" || die "loop cold read failed"
	loop_umount "$LMNT" || die "loop umount failed"
	loop_mount "$LMNT" || die "loop mount failed"
	timed_read "loop-warm" "$LMNT" || die "loop warm read failed"
	loop_umount "$LMNT" || die "loop umount failed"
	loop_detach
	if [ "$LOOP_DIO" = 1 ]; then
		loop_attach --direct-io=on || die "losetup --direct-io=on failed"
		loop_mount "$LMNT" || die "loop mount failed"
		timed_read "loop-dio" "$LMNT" || die "loop-dio read failed"
		loop_umount "$LMNT" || die "loop umount failed"
		loop_detach
	fi

	fresh_skiffd || die "skiffd did not start"
	skiff_mount "$IMG" "$FMNT" --id "bench$r" || die "skiff mount failed"
	timed_read "fscache-cold" "$FMNT" || die "fscache cold read failed"
	skiff_umount "$FMNT" || die "skiff umount failed"
	skiff_mount "$IMG" "$FMNT" --id "bench$r" || die "skiff mount (again) failed"
	timed_read "fscache-warm" "$FMNT" || die "fscache warm read failed"
	skiff_umount "$FMNT" || die "skiff umount failed"
	end_skiffd
done

# --- extra cold runs with other merge limits --------------------------------
for ml in $MERGE_LIMITS; do
	say "cold run with --merge-limit $ml"
	fresh_skiffd --merge-limit "$ml" || die "skiffd --merge-limit $ml did not start"
	skiff_mount "$IMG" "$FMNT" --id "bench-ml$ml" || die "skiff mount failed"
	timed_read "fscache-cold-ml$ml" "$FMNT" || die "fscache cold read failed"
	skiff_umount "$FMNT"
	end_skiffd
done

# --- untimed: the READ requests' sizes, from strace -------------------------
# skiffd's reads of /dev/cachefiles are the kernel's messages: struct
# cachefiles_msg { u32 msg_id, opcode, len, object_id } then, for READ
# (opcode 2), struct cachefiles_read { u64 off, len }.
HIST=
if [ "$TRACE" = 1 ]; then
	say "traced cold pass (untimed): READ sizes"
	if fresh_skiffd && skiff_mount "$IMG" "$FMNT" --id bench-trace; then
		# attached (-p), so that SIGTERM detaches strace cleanly; the
		# guest kernel has no seccomp, so every syscall stops: slow
		strace -f -qq -e trace=read -xx -s 64 -o "$T/strace.log" -p "$SKIFFD_PID" &
		spid=$!
		for ((i = 0; i < 100; i++)); do
			awk '/^TracerPid:/ { exit !($2 != 0) }' "/proc/$SKIFFD_PID/status" && break
			sleep 0.1
		done
		sleep 1	# (every thread)
		drop_caches
		timeout 900 bash -c 'find "$1" -type f -print0 | xargs -0 -r cat >/dev/null' \
			sh "$FMNT" 2>/dev/null || say "traced read failed"
		kill -TERM "$spid"
		wait "$spid" 2>/dev/null
		skiff_umount "$FMNT"
		HIST=$(perl -ne '
			next unless /read\(\d+, "((?:\\x[0-9a-f]{2})+)", \d+\) = 32$/;
			my $b = pack("H*", join("", $1 =~ /\\x([0-9a-f]{2})/g));
			my ($id, $op, $len, $obj, $off, $rlen) = unpack("V4 Q< Q<", $b);
			next unless $op == 2 && $len == 32;
			$n++; $sum += $rlen;
			my $k = $rlen >= 1 << 20 ? ">=1M" : $rlen > 128 << 10 ? "(128K,1M)" :
				$rlen == 128 << 10 ? "128K" : $rlen > 16 << 10 ? "(16K,128K)" :
				$rlen > 4 << 10 ? "(4K,16K]" : "<=4K";
			$h{$k}++;
			END {
				printf "READ requests traced: %d, mean %.1f KiB; by size:", $n, $n ? $sum / $n / 1024 : 0;
				printf " %s %d", $_, $h{$_} // 0 for ("<=4K", "(4K,16K]", "(16K,128K)", "128K", "(128K,1M)", ">=1M");
				print "\n";
			}' "$T/strace.log")
	else
		say "traced pass could not start"
	fi
	end_skiffd
fi

# --- untimed: a CPU profile of a cold read (perf, cpu-clock samples) --------
PROFILE=
if [ "$PERF" = 1 ]; then
	say "profiled cold pass (untimed)"
	if fresh_skiffd && skiff_mount "$IMG" "$FMNT" --id bench-perf; then
		drop_caches
		if HOME=$T perf record -q -N -a -e cpu-clock -F 499 -o "$T/perf.data" -- \
			sh -c 'find "$1" -type f -print0 | xargs -0 -r cat >/dev/null' sh "$FMNT" \
			>"$T/perf.out" 2>&1; then
			PROFILE=$(
				echo "cold fscache read, CPU samples by process and object (the guest kernel"
				echo "has no kallsyms: its samples are one [kernel.kallsyms] line per process):"
				HOME=$T perf report -i "$T/perf.data" --stdio -q --sort comm,dso 2>/dev/null |
					awk 'NF && $1 + 0 >= 0.5' | head -n 14
				echo "... skiffd's named symbols (of all samples; the stripped libraries'"
				echo "internal functions show as addresses and are left out):"
				HOME=$T perf report -i "$T/perf.data" --stdio -q --comms skiffd \
					--sort dso,sym 2>/dev/null | awk 'NF && $1 + 0 >= 0.15 && !/ 0x[0-9a-f]+$/' | head -n 15
			)
		else
			say "perf record failed: $(tail -n 3 "$T/perf.out")"
		fi
		skiff_umount "$FMNT"
	else
		say "profiled pass could not start"
	fi
	end_skiffd
fi

# --- the table --------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$T/results"; }
med() { col "$1" "$2" | median; }

echo
echo "skiff fscache read benchmark (in the QEMU/TCG guest)"
echo "  guest: Linux $(uname -r), $(nproc) vCPUs, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
echo "  image: $IMG: $FILES files, $BYTES bytes of file data; $CHUNKS chunks" \
	"(1 MiB, zstd), $STORED bytes stored"
echo "  read: find | xargs cat >/dev/null; page cache dropped before each;" \
	"median of $RUNS; MB = 10^6 bytes"
echo "  ratio = loop time / this time (1.00 = the kernel's own speed)"
echo "  yardsticks: skiff export-cache (every chunk read, decoded, verified and"
echo "  written in one pass, store not cached) $(awk '{ printf "%.2f s (user %.2f, sys %.2f)", $1, $2, $3 }' <<<"$EXPORT_T");"
echo "  SHA-256 in this guest ${SHA_MBS:-?} MB/s (openssl, 16 KiB blocks)"
echo
fmt='%-20s %8s %6s %6s %5s %5s %8s %8s %6s %7s %8s\n'
printf "$fmt" mode "median s" "min s" "MB/s" ratio "busy" "reader s" "skiffd s" READs "fetch MB" "KiB/READ"
printf "$fmt" -------------------- -------- ------ ------ ----- ----- -------- -------- ------ ------- --------
row() { # MODE BASELINE_MODE
	local m=$1 w base
	w=$(med "$m" 2)
	[ -n "$w" ] || return 0
	base=$(med "$2" 2)
	awk -v m="$m" -v w="$w" -v mn="$(col "$m" 2 | sort -g | head -n 1)" \
	    -v b="$base" -v by="$BYTES" -v rd="$(awk -v m="$m" '$1 == m { print $3 + $4 }' "$T/results" | median)" \
	    -v sk="$(med "$m" 5)" -v ev="$(med "$m" 6)" -v rb="$(med "$m" 8)" -v fills="$(med "$m" 7)" \
	    -v fb="$(med "$m" 11)" -v isf="$([[ $m == fscache* ]] && echo 1 || echo 0)" \
	    -v busy="$(med "$m" 15)" -v f="$fmt" 'BEGIN {
		if (w <= 0) w = 0.001
		kib = "-"
		if (isf && fills > 0) kib = sprintf("%.1f", rb / fills / 1024)
		printf(f, m, sprintf("%.2f", w), sprintf("%.2f", mn), sprintf("%.1f", by / 1e6 / w),
			sprintf("%.2f", b / w), sprintf("%.0f%%", 100 * busy / w), sprintf("%.2f", rd),
			isf ? sprintf("%.2f", sk) : "-", isf ? ev : "-",
			isf ? sprintf("%.1f", fb / 1e6) : "-", kib)
	}'
}
row loop-cold loop-cold
row fscache-cold loop-cold
row loop-warm loop-warm
row fscache-warm loop-warm
row loop-dio loop-cold
for ml in $MERGE_LIMITS; do row "fscache-cold-ml$ml" loop-cold; done
echo "(busy: share of the guest's CPU time busy during the read, the rest is waiting for I/O;"
echo " reader s: user+sys CPU of find/xargs/cat; skiffd s: skiffd's CPU during the read;"
echo " READs: kernel requests reaching skiffd during the read; KiB/READ: bytes asked per"
echo " blob READ; fetched MB: stored bytes read from the store; all medians)"
echo
for m in fscache-cold $(for ml in $MERGE_LIMITS; do echo "fscache-cold-ml$ml"; done); do
	[ -n "$(col "$m" 1)" ] || continue
	awk -v m="$m" -v ch="$CHUNKS" '$1 == m {
		n++; ev += $6; fills += $7; fe += $9; fc += $10; fb += $11; wb += $12; wt += $13; cpu += $5
	} END {
		printf "%s, mean per run: %d READs (%d on blobs, %d waited for a fetch in flight),", m, ev / n, fills / n, wt / n
		printf " %d backend fetches for %d chunks (of %d), %.1f MB fetched, %.1f MB written to cache files;", fe / n, fc / n, ch, fb / n / 1e6, wb / n / 1e6
		printf " skiffd CPU %.2f s = %.1f ms per READ, %.1f ms per chunk\n", cpu / n, ev ? 1000 * cpu / ev : 0, fc ? 1000 * cpu / fc : 0
	}' "$T/results"
done
warm_events=$(awk '$1 == "fscache-warm" { s += $6 } END { print s + 0 }' "$T/results")
echo "fscache-warm: skiff_events_total grew by $warm_events over $RUNS warm reads (want 0)"
[ -n "$HIST" ] && echo "$HIST"
[ -n "$PROFILE" ] && { echo; echo "$PROFILE"; }
echo
goal() { # DESC MODE BASELINE MIN_RATIO
	local verdict
	if awk -v a="$(med "$3" 2)" -v b="$(med "$2" 2)" -v g="$4" 'BEGIN { exit !(b > 0 && a / b >= g) }'; then
		verdict=MET
	else
		verdict="NOT MET"
	fi
	printf '  %-62s %s\n' "$1 ($(awk -v a="$(med "$3" 2)" -v b="$(med "$2" 2)" 'BEGIN { printf "%.2f", a / b }'))" "$verdict"
}
echo "goals:"
goal "warm fscache read >= 0.9 of loop" fscache-warm loop-warm 0.9
goal "cold fscache read >= 0.5 of loop (local store)" fscache-cold loop-cold 0.5
awk -v a="$(med loop-dio 2)" -v b="$(med fscache-warm 2)" 'BEGIN {
	if (a > 0 && b > 0)
		printf "  (for reference: warm fscache against loop-dio, both direct I/O under EROFS: %.2f)\n", a / b
}'
if [ "$warm_events" -ne 0 ]; then
	echo "  warm fscache reads reached skiffd ($warm_events READs): the kernel's cache was not used" \
		"                NOT MET"
fi
echo
echo "raw results (mode wall user sys skiffd_cpu ${METRICS[*]} busy_cpu):"
sed 's/^/  /' "$T/results"
exit 0
