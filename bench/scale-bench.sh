#!/usr/bin/env bash
# scale-bench.sh: skiffd at scale (issue 14), fanotify frontend, this host.
#
#   many images   SKIFF_BENCH_IMAGES (default 1000) distinct small images
#                 (one tree, a file that differs per image) in one local
#                 store, registered one after another through the control
#                 API (POST /v1/images without a mount point: registration
#                 alone, no mount): time per registration (median, p99),
#                 the serving process's memory before and after (VmRSS,
#                 RssAnon/RssFile from /proc/PID/status, Rss/Pss/Pss_Anon/
#                 Pss_File from smaps_rollup: file-backed means the mapped
#                 bootstraps, anon the heap); `skiff status --json`,
#                 GET /v1/state, GET /v1/images and /metrics with every
#                 image registered
#                 (SKIFF_BENCH_CALLS calls each, default 20); then
#                 SKIFF_BENCH_MOUNTS (default 32) of them mounted (EROFS
#                 file-backed, fanotify) and read cold by SKIFF_BENCH_READERS
#                 (default 8) concurrent readers: peak memory under that
#                 load (VmHWM, reset before it) and after it; the time of
#                 `skiff mount` of a registered image
#
#   many chunks   one image of SKIFF_BENCH_CHUNKS (default 1048576) distinct
#                 4 KiB chunks (a file whose every 4 KiB block holds its
#                 number: nothing dedupes, everything compresses), registered
#                 in a fresh skiffd: (memory after - memory before) / chunks,
#                 the registration's time and peak memory; then the same
#                 registration again while other images are mounted, with
#                 a cold read of one of them every 150 ms: how long those
#                 reads wait
#
# Prints a table of the measurements against the goals of issue 14, the
# machine's other load during the timed phases, and exits non-zero only
# on errors. The images are built once into SKIFF_BENCH_DATA (default
# /var/tmp/skiff-bench/scale) and reused while the on-disk format (the
# headers of format/) is unchanged; skiffd's cache, state and the mounts
# live in SKIFF_BENCH_OUT (default /var/tmp/skiff-bench/scale-run), removed
# on exit, failures included.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=$ROOT/build/skiff
SKIFFD=$ROOT/build/skiffd
NIMG=${SKIFF_BENCH_IMAGES:-1000}
NCHUNK=${SKIFF_BENCH_CHUNKS:-1048576}
CALLS=${SKIFF_BENCH_CALLS:-20}
MOUNTS=${SKIFF_BENCH_MOUNTS:-32}
READERS=${SKIFF_BENCH_READERS:-8}
DATA=${SKIFF_BENCH_DATA:-/var/tmp/skiff-bench/scale}
OUT=${SKIFF_BENCH_OUT:-/var/tmp/skiff-bench/scale-run}
. "$ROOT/bench/lib.sh"

die() { echo "scale-bench: $*" >&2; exit 1; }
note() { echo "scale-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] || die "build first (make)"
for v in NIMG NCHUNK CALLS MOUNTS READERS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[ "$MOUNTS" -le "$NIMG" ] || MOUNTS=$NIMG
[ "$READERS" -le "$MOUNTS" ] || READERS=$MOUNTS

D=$OUT/d			# skiffd's cache, state, socket, log
SOCK=$D/sock
STORE=$DATA/small/store
BIG=$DATA/big/store
export SKIFF_SOCKET=$SOCK
BENCH_T0=$SECONDS

cleanup() {
	local m
	for m in "$OUT"/mnt/*; do
		mountpoint -q "$m" 2>/dev/null || continue
		"$SKIFF" umount "$m" >/dev/null 2>&1 || umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	bench_stop_skiffd
	jobs -p | xargs -r kill 2>/dev/null || true
	rm -rf "$OUT" "$DATA/big/tree"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# skiffd keeps a cache file (and its record) open per blob: a node runs it
# with systemd's LimitNOFILE=1048576 (systemd/skiffd.service.in)
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the images, built once ------------------------------------------------

# the on-disk format the cached images were built with
fmt_key=$(cat "$ROOT"/format/*.h | sha256sum | cut -c1-16)

# a small tree: 4 directories of 10 text files, 1 to 20 KiB, ~400 KiB
make_tree() {
	local t=$1
	rm -rf "$t"
	mkdir -p "$t"
	awk -v t="$t" 'BEGIN {
		for (d = 0; d < 4; d++) {
			system("mkdir -p " t "/d" d)
			for (f = 0; f < 10; f++) {
				p = t "/d" d "/f" f ".txt"; n = 1024 * (1 + (d * 10 + f) % 20)
				s = 0
				for (l = 0; s < n; l++) {
					line = sprintf("dir %d file %d line %d: %x %x %x\n", d, f, l, l * 7919, l * 104729, l * 1299709)
					printf "%s", line > p; s += length(line)
				}
				close(p)
			}
		}
	}'
}

small_ready() {
	[ "$(cat "$DATA/small/built" 2>/dev/null)" = "$fmt_key $NIMG" ] ||
		{ [ "$(cut -d' ' -f1 "$DATA/small/built" 2>/dev/null)" = "$fmt_key" ] &&
		  [ "$(cut -d' ' -f2 "$DATA/small/built")" -ge "$NIMG" ]; }
}
if ! small_ready; then
	note "building $NIMG small images into $STORE (once)"
	rm -rf "$DATA/small"
	mkdir -p "$DATA/small"
	make_tree "$DATA/small/tree"
	t0=$SECONDS
	for ((i = 0; i < NIMG; i++)); do
		printf 'image %d\n' "$i" >"$DATA/small/tree/id"
		"$SKIFF" build -q "$DATA/small/tree" "$STORE:img-$i" || die "building image $i failed"
		[ $((i % 200)) -ne 199 ] || note "  $((i + 1)) of $NIMG"
	done
	echo "$fmt_key $NIMG" >"$DATA/small/built"
	note "  built in $((SECONDS - t0)) s"
fi
small_files=$(find "$DATA/small/tree" -type f | wc -l)
small_bytes=$(find "$DATA/small/tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

if [ "$(cat "$DATA/big/built" 2>/dev/null)" != "$fmt_key $NCHUNK" ]; then
	note "building the image of $NCHUNK 4 KiB chunks into $BIG (once; needs $((NCHUNK / 256)) MiB of scratch)"
	rm -rf "$DATA/big"
	mkdir -p "$DATA/big/tree"
	# every 4 KiB block: its number, 512 times (distinct, compressible)
	perl -e 'my $n = shift; for (my $i = 0; $i < $n; $i++) { print pack("Q<", $i) x 512 }' \
		"$NCHUNK" >"$DATA/big/tree/blocks" || die "writing the chunk file failed"
	t0=$SECONDS
	"$SKIFF" build -q --chunk-size 4K "$DATA/big/tree" "$BIG:big" || die "building the chunk image failed"
	rm -rf "$DATA/big/tree"
	echo "$fmt_key $NCHUNK" >"$DATA/big/built"
	note "  built in $((SECONDS - t0)) s"
fi
big_chunks=$("$SKIFF" inspect --json "$BIG:big" | jq '[.blobs[].chunks] | add')
big_stored=$("$SKIFF" inspect --json "$BIG:big" | jq '[.blobs[].stored_size] | add')
big_bs=$("$SKIFF" inspect --json "$BIG:big" | jq '.bootstrap_size // 0')

# --- helpers ---------------------------------------------------------------

now_ms() { echo "$(($(date +%s%N) / 1000))" | awk '{ printf "%.3f\n", $1 / 1000 }'; }
# pct Q: the Q-quantile (nearest rank) of the numbers on stdin
pct() { sort -g | awk -v q="$1" '{ v[NR] = $1 } END { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; print v[i] }'; }
# reg_batch FROM TO: a curl config registering img-FROM .. img-(TO-1), one
# connection, each call's status and seconds on a line
reg_batch() {
	local i
	for ((i = $1; i < $2; i++)); do
		[ "$i" -eq "$1" ] || echo next
		printf 'unix-socket = "%s"\nurl = "http://skiffd/v1/images"\nrequest = POST\n' "$SOCK"
		printf 'header = "Content-Type: application/json"\n'
		printf 'data = "{\\"ref\\":\\"%s:img-%d\\"}"\n' "$STORE" "$i"
		printf 'output = /dev/null\nsilent\nwrite-out = "%%{http_code} %%{time_total}\\n"\n'
	done
}
api_ms() { # METHOD PATH [BODY]: prints the call's milliseconds; dies unless 2xx
	local out code t
	out=$(curl -s -o "$OUT/resp" -w '%{http_code} %{time_total}' --unix-socket "$SOCK" \
		-X "$1" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} "http://skiffd$2") ||
		die "$1 $2: curl failed"
	read -r code t <<<"$out"
	[ "${code:0:1}" = 2 ] || die "$1 $2: HTTP $code: $(head -c 300 "$OUT/resp")"
	awk -v t="$t" 'BEGIN { printf "%.3f\n", t * 1000 }'
}
# mem PID: "VmRSS RssAnon RssFile Rss Pss Pss_Anon Pss_File VmHWM" in KiB
mem() {
	local s r
	s=$(awk '/^(VmRSS|RssAnon|RssFile|VmHWM):/ { v[$1] = $2 }
		END { print v["VmRSS:"] + 0, v["RssAnon:"] + 0, v["RssFile:"] + 0, v["VmHWM:"] + 0 }' "/proc/$1/status")
	r=$(awk '/^(Rss|Pss|Pss_Anon|Pss_File):/ { v[$1] = $2 }
		END { print v["Rss:"] + 0, v["Pss:"] + 0, v["Pss_Anon:"] + 0, v["Pss_File:"] + 0 }' "/proc/$1/smaps_rollup")
	# shellcheck disable=SC2086
	set -- $s $r
	echo "$1 $2 $3 $5 $6 $7 $8 $4"
}
field() { # N "mem line": the Nth number
	echo "$2" | awk -v n="$1" '{ print $n }'
}
# resets VmHWM (peak RSS) of a process; 1 when the kernel cannot
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; }
settle() { sleep 2; }

# other CPU load during a timed phase: the machine's busy CPU time minus
# this script's (its reaped children: curl, skiff) and skiffd's
busy=0 worst_other=0 loads=()
own_cpu() {
	local s=0 p
	s=$(awk -v hz="$HZ" '{ printf "%.3f", ($14 + $15 + $16 + $17) / hz }' "/proc/$$/stat")
	for p in ${BENCH_SKIFFD_PID:-} $(pgrep -P "${BENCH_SKIFFD_PID:-0}" 2>/dev/null); do
		[ -r "/proc/$p/stat" ] && s=$(echo "$s + $(bench_proc_cpu "$p")" | bc)
	done
	echo "$s"
}
phase_begin() {
	bench_wait_quiet 15 || { busy=$((busy + 1)); note "  the machine is busy: measuring anyway"; }
	ph_t=$(date +%s.%N) ph_b=$(bench_busy_cpu) ph_o=$(own_cpu)
}
phase_end() {
	local x
	x=$(awk -v t0="$ph_t" -v t1="$(date +%s.%N)" -v b0="$ph_b" -v b1="$(bench_busy_cpu)" \
		-v o0="$ph_o" -v o1="$(own_cpu)" -v n="$NCPU" \
		'BEGIN { x = ((b1 - b0) - (o1 - o0)) / ((t1 - t0) * n); printf "%.3f", x < 0 ? 0 : x }')
	loads+=("$1 $(awk -v x="$x" 'BEGIN { printf "%.0f%%", 100 * x }')")
	! awk -v x="$x" -v m="$worst_other" 'BEGIN { exit !(x > m) }' || worst_other=$x
}

start() {
	bench_start_skiffd "$D" || die "skiffd did not start"
	srv=$(bench_skiffd_server)
	[ -n "$srv" ] || die "no serving process under skiffd's holder"
}

rm -rf "$OUT"
mkdir -p "$OUT/mnt"

# --- many images -----------------------------------------------------------

note "registering $NIMG images (no mount)"
start
settle
m_idle0=$(mem "$srv")
h_idle0=$(mem "$BENCH_SKIFFD_PID")
reset_peak "$srv" || true
phase_begin
r0=$(date +%s.%N)
c0=$(bench_proc_cpu "$srv")
: >"$OUT/reg"
# in quarters: skiffd's CPU per registration in each
q=$(((NIMG + 3) / 4)) qcpu=()
for ((i = 0; i < NIMG; i += q)); do
	j=$((i + q < NIMG ? i + q : NIMG))
	reg_batch "$i" "$j" >"$OUT/reg.cfg"
	a=$(bench_proc_cpu "$srv")
	curl -K "$OUT/reg.cfg" >>"$OUT/reg" || die "curl failed registering images $i.."
	qcpu+=("$(awk -v a="$a" -v b="$(bench_proc_cpu "$srv")" -v n=$((j - i)) 'BEGIN { printf "%.1f", (b - a) * 1000 / n }')")
	[ "$j" -ge "$NIMG" ] || note "  $j of $NIMG"
done
c1=$(bench_proc_cpu "$srv")
r1=$(date +%s.%N)
phase_end "registration of $NIMG images"
bad=$(awk '$1 !~ /^2/ { print NR - 1; exit }' "$OUT/reg")
# the same call again says why (registering is idempotent)
[ -z "$bad" ] || { api_ms POST /v1/images "{\"ref\":\"$STORE:img-$bad\"}" >/dev/null
	die "registering img-$bad failed: HTTP $(sed -n "$((bad + 1))p" "$OUT/reg")"; }
[ "$(wc -l <"$OUT/reg")" -eq "$NIMG" ] || die "curl answered $(wc -l <"$OUT/reg") of $NIMG registrations"
awk '{ printf "%.3f\n", $2 * 1000 }' "$OUT/reg" >"$OUT/reg_ms"
reg_cpu=$(awk -v a="$c0" -v b="$c1" -v n="$NIMG" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')
n=$(curl -s --unix-socket "$SOCK" http://skiffd/v1/state | jq .images)
[ "$n" = "$NIMG" ] || die "skiffd counts $n images, not $NIMG"
reg_p50=$(pct 0.5 <"$OUT/reg_ms")
reg_p99=$(pct 0.99 <"$OUT/reg_ms")
reg_max=$(pct 1 <"$OUT/reg_ms")
reg_wall=$(awk -v a="$r0" -v b="$r1" -v n="$NIMG" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')
dec=$((NIMG >= 10 ? NIMG / 10 : 1))
reg_first=$(head -n "$dec" "$OUT/reg_ms" | pct 0.5)
reg_last=$(tail -n "$dec" "$OUT/reg_ms" | pct 0.5)
state_kib=$(($(stat -c %s "$D/work/images.json") / 1024))
settle
m_reg_peak=$(field 8 "$(mem "$srv")")
m_idle1=$(mem "$srv")
h_idle1=$(mem "$BENCH_SKIFFD_PID")
fds=$(find "/proc/$srv/fd" -mindepth 1 -maxdepth 1 | wc -l)
maps=$(wc -l <"/proc/$srv/maps")

note "status and metrics with $NIMG images ($CALLS calls each)"
phase_begin
: >"$OUT/st_ms"; : >"$OUT/sa_ms"; : >"$OUT/im_ms"; : >"$OUT/me_ms"
for ((i = 0; i < CALLS; i++)); do
	api_ms GET /v1/state >>"$OUT/sa_ms"
	a=$(now_ms)
	"$SKIFF" status --json >"$OUT/status.json" || die "skiff status --json failed"
	b=$(now_ms)
	echo "$b - $a" | bc >>"$OUT/st_ms"
	api_ms GET /v1/images >>"$OUT/im_ms"
	api_ms GET /metrics >>"$OUT/me_ms"
done
phase_end "status and /metrics calls"
[ "$(jq '.images | length' "$OUT/status.json")" = "$NIMG" ] || die "skiff status --json lists no $NIMG images"
st_kib=$(($(stat -c %s "$OUT/status.json") / 1024))
curl -s --unix-socket "$SOCK" http://skiffd/metrics >"$OUT/metrics"
me_kib=$(($(stat -c %s "$OUT/metrics") / 1024))
me_lines=$(wc -l <"$OUT/metrics")
m_status=$(mem "$srv")

note "mounting $MOUNTS of them, $READERS readers reading them cold"
: >"$OUT/mnt_ms"
for ((k = 0; k < MOUNTS; k++)); do
	mkdir -p "$OUT/mnt/$k"
	a=$(now_ms)
	"$SKIFF" mount "$STORE:img-$k" "$OUT/mnt/$k" >/dev/null || die "mounting img-$k failed"
	b=$(now_ms)
	echo "$b - $a" | bc >>"$OUT/mnt_ms"
done
n=$(curl -s --unix-socket "$SOCK" http://skiffd/v1/state | jq .images)
[ "$n" = "$NIMG" ] || die "after the mounts skiffd counts $n images, not $NIMG"
mnt_p50=$(pct 0.5 <"$OUT/mnt_ms")
mnt_p99=$(pct 0.99 <"$OUT/mnt_ms")
settle
m_mounted=$(mem "$srv")
peak_ok=1
reset_peak "$srv" || peak_ok=0
bench_drop_caches
ev0=$(bench_metric "$SOCK" skiff_events_total)
fc0=$(bench_metric "$SOCK" skiff_fetched_chunks_total)
# a sampler too, for kernels without clear_refs 5
( while v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$srv/status" 2>/dev/null); do
	echo "$v"
	sleep 0.02
done >"$OUT/sampled" ) &
sampler=$!
l0=$(date +%s.%N)
pids=()
for ((r = 0; r < READERS; r++)); do
	( for ((k = r; k < MOUNTS; k += READERS)); do
		[ "$(cat "$OUT/mnt/$k/id")" = "image $k" ] || { echo "img-$k: wrong id file" >&2; exit 1; }
		find "$OUT/mnt/$k" -type f -print0 | xargs -0 cat >/dev/null || exit 1
	done ) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a reader failed"; done
l1=$(date +%s.%N)
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
load_s=$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.2f", b - a }')
ev=$(($(bench_metric "$SOCK" skiff_events_total) - ev0))
fc=$(($(bench_metric "$SOCK" skiff_fetched_chunks_total) - fc0))
m_load=$(mem "$srv")
sampled=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$OUT/sampled" 2>/dev/null || echo 0)
if [ "$peak_ok" = 1 ]; then load_peak=$(field 8 "$m_load"); else load_peak=$sampled; fi
[ "$sampled" -le "$load_peak" ] || load_peak=$sampled
settle
m_after=$(mem "$srv")
for ((k = 0; k < MOUNTS; k++)); do
	"$SKIFF" umount "$OUT/mnt/$k" >/dev/null || die "unmounting $OUT/mnt/$k failed"
done
bench_stop_skiffd

# --- many chunks -----------------------------------------------------------

note "registering the image of $big_chunks chunks in a fresh skiffd"
start
settle
m_big0=$(mem "$srv")
reset_peak "$srv" || true
phase_begin
c0=$(bench_proc_cpu "$srv")
big_ms=$(api_ms POST /v1/images "{\"ref\":\"$BIG:big\"}")
big_cpu=$(awk -v a="$c0" -v b="$(bench_proc_cpu "$srv")" 'BEGIN { printf "%.2f", b - a }')
phase_end "registration of $big_chunks chunks"
big_peak=$(field 8 "$(mem "$srv")")
settle
m_big1=$(mem "$srv")
big_table_kib=$(( $(find "$D/cache/tables" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }') / 1024 ))
id=$(curl -s --unix-socket "$SOCK" http://skiffd/v1/images | jq -r '.images[0].id')
api_ms DELETE "/v1/images/$id" >/dev/null
settle
m_big2=$(mem "$srv")

# the same registration again (its table now kept) while PROBES other
# images are mounted: a cold read of one of them every 150 ms, each the
# first of its image (a read fetches a whole small blob), as long as the
# registration runs: how long it holds up everybody else's reads
note "cold reads of other mounted images during that registration"
PROBES=24
[ "$PROBES" -le "$NIMG" ] || PROBES=$NIMG
for ((k = 0; k < PROBES; k++)); do
	mkdir -p "$OUT/mnt/p$k"
	"$SKIFF" mount "$STORE:img-$k" "$OUT/mnt/p$k" >/dev/null || die "mounting img-$k failed"
done
: >"$OUT/probe_ms"
( api_ms POST /v1/images "{\"ref\":\"$BIG:big\"}" >"$OUT/big2_ms" ) &
regp=$!
for ((k = 0; k < PROBES; k++)); do
	sleep 0.15
	kill -0 "$regp" 2>/dev/null || break
	a=$(now_ms)
	cat "$OUT/mnt/p$k/d1/f3.txt" >/dev/null || die "a probe read failed"
	b=$(now_ms)
	echo "$b - $a" | bc >>"$OUT/probe_ms"
done
wait "$regp" || die "registering the chunk image again failed"
big2_ms=$(cat "$OUT/big2_ms")
nprobe=$(wc -l <"$OUT/probe_ms")
[ "$nprobe" -gt 0 ] || echo - >"$OUT/probe_ms"
for ((k = 0; k < PROBES; k++)); do
	"$SKIFF" umount "$OUT/mnt/p$k" >/dev/null || die "unmounting $OUT/mnt/p$k failed"
done
bench_stop_skiffd

# --- report ----------------------------------------------------------------

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_chunk() { awk -v a="$1" -v b="$2" -v n="$big_chunks" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }'; }
per_img() { awk -v a="$1" -v b="$2" -v n="$NIMG" 'BEGIN { printf "%.1f", (b - a) / n }'; }
tag=
[ "$busy" -eq 0 ] && awk -v x="$worst_other" 'BEGIN { exit !(x <= 0.10) }' || tag=" (busy)"
verdict() { if awk "BEGIN { exit !($1) }"; then echo "MET"; else echo "NOT MET"; fi; }
vt() { echo "$(verdict "$1")$tag"; }	# a time verdict: machine load matters

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "skiff scale benchmark (skiffd, fanotify frontend)"
echo "  machine: $(nproc) CPUs, ${cpu:-unknown CPU}, kernel $(uname -r)"
echo "  images: $NIMG distinct, $small_files files / $((small_bytes / 1024)) KiB each (default chunks), one local store;" \
	"registered through POST /v1/images without a mount point"
echo "  chunk image: $big_chunks chunks of 4 KiB, $((big_stored / 1048576)) MiB stored, bootstrap $((big_bs / 1024)) KiB"
echo "  memory: skiffd's serving process (KiB; /proc/PID/status and smaps_rollup); times in ms"
echo
fmt='%-52s %12s %10s %s\n'
printf "$fmt" measurement measured goal verdict
printf "$fmt" ---------------------------------------------------- ------------ ---------- -------
printf "$fmt" "registration of one of $NIMG images, median (ms)" "$reg_p50" "< 10" "$(vt "$reg_p50 < 10")"
printf "$fmt" "registration of one of $NIMG images, p99 (ms)" "$reg_p99" "< 10" "$(vt "$reg_p99 < 10")"
printf "$fmt" "  skiffd CPU per registration (ms)" "$reg_cpu" "-" "-"
printf "$fmt" "skiffd RSS idle with $NIMG images, serving (MiB)" "$(mib "$(field 1 "$m_idle1")")" "< 50" \
	"$(verdict "$(field 1 "$m_idle1") < 50 * 1024")"
printf "$fmt" "  holder + serving process, Pss (MiB)" \
	"$(mib "$(($(field 5 "$m_idle1") + $(field 5 "$h_idle1")))")" "< 50" \
	"$(verdict "$(field 5 "$m_idle1") + $(field 5 "$h_idle1") < 50 * 1024")"
printf "$fmt" "skiffd RSS peak, $READERS readers on $MOUNTS mounts (MiB)" "$(mib "$load_peak")" "< 50" \
	"$(verdict "$load_peak < 50 * 1024")"
printf "$fmt" "memory per chunk, $big_chunks-chunk image (B/chunk)" \
	"$(per_chunk "$(field 1 "$m_big0")" "$(field 1 "$m_big1")")" "< 64" \
	"$(verdict "$(per_chunk "$(field 1 "$m_big0")" "$(field 1 "$m_big1")") < 64")"
printf "$fmt" "registration of the $big_chunks-chunk image (ms)" "$big_ms" "-" "-"
printf "$fmt" "  cold read of another image meanwhile, max (ms)" "$(pct 1 <"$OUT/probe_ms")" "-" "-"
printf "$fmt" "skiff status --json, $NIMG images, median/p99 (ms)" \
	"$(pct 0.5 <"$OUT/st_ms")/$(pct 0.99 <"$OUT/st_ms")" "-" "-"
printf "$fmt" "GET /v1/state, $NIMG images, median/p99 (ms)" \
	"$(pct 0.5 <"$OUT/sa_ms")/$(pct 0.99 <"$OUT/sa_ms")" "-" "-"
printf "$fmt" "GET /v1/images, $NIMG images, median/p99 (ms)" \
	"$(pct 0.5 <"$OUT/im_ms")/$(pct 0.99 <"$OUT/im_ms")" "-" "-"
printf "$fmt" "GET /metrics, $NIMG images, median/p99 (ms)" \
	"$(pct 0.5 <"$OUT/me_ms")/$(pct 0.99 <"$OUT/me_ms")" "-" "-"
printf "$fmt" "skiff mount of a registered image, median/p99 (ms)" "$mnt_p50/$mnt_p99" "-" "-"
echo
echo "registration: max $reg_max ms; median of the first $dec $reg_first ms, of the last $dec $reg_last ms;" \
	"$reg_wall ms per image wall; images.json $state_kib KiB, the store's index.json" \
	"$(($(stat -c %s "$STORE/index.json") / 1024)) KiB"
echo "skiffd CPU per registration, by quarter of the $NIMG: $(IFS=/; echo "${qcpu[*]}") ms"
echo "registration of $big_chunks chunks: $big_ms ms, skiffd CPU $big_cpu s; again, table kept: $big2_ms ms," \
	"during which $nprobe cold reads of other mounted images took median $(pct 0.5 <"$OUT/probe_ms")," \
	"max $(pct 1 <"$OUT/probe_ms") ms"
echo "responses: status --json $st_kib KiB, /metrics $me_kib KiB ($me_lines lines)"
echo "load: $READERS readers, $MOUNTS mounts read cold in $load_s s: $ev events, $fc chunks fetched;" \
	"peak $(if [ "$peak_ok" = 1 ]; then echo "VmHWM after clear_refs"; else echo "sampled every 20 ms"; fi)"
echo "serving process: $fds fds, $maps mappings with $NIMG images"
echo
mfmt='%-40s %8s %8s %8s %8s %8s %8s %8s\n'
printf "$mfmt" "memory (KiB)" VmRSS RssAnon RssFile Rss Pss Pss_Anon Pss_File
row() { local v; read -ra v <<<"$2"; printf "$mfmt" "$1" "${v[@]:0:7}"; }
row "serving, started, no images" "$m_idle0"
row "serving, $NIMG images registered" "$m_idle1"
row "serving, after status/metrics calls" "$m_status"
row "serving, $MOUNTS of them mounted" "$m_mounted"
row "serving, right after the readers" "$m_load"
row "serving, 2 s later" "$m_after"
row "holder, started" "$h_idle0"
row "holder, $NIMG images registered" "$h_idle1"
row "serving (fresh), no images" "$m_big0"
row "serving, $big_chunks-chunk image" "$m_big1"
row "serving, that image unregistered" "$m_big2"
echo
echo "per image ($NIMG): VmRSS $(per_img "$(field 1 "$m_idle0")" "$(field 1 "$m_idle1")") KiB," \
	"RssAnon $(per_img "$(field 2 "$m_idle0")" "$(field 2 "$m_idle1")") KiB," \
	"RssFile $(per_img "$(field 3 "$m_idle0")" "$(field 3 "$m_idle1")") KiB;" \
	"peak while registering $(mib "$m_reg_peak") MiB"
echo "per chunk ($big_chunks): VmRSS $(per_chunk "$(field 1 "$m_big0")" "$(field 1 "$m_big1")") B," \
	"RssAnon $(per_chunk "$(field 2 "$m_big0")" "$(field 2 "$m_big1")") B," \
	"RssFile $(per_chunk "$(field 3 "$m_big0")" "$(field 3 "$m_big1")") B;" \
	"peak while registering $(mib "$big_peak") MiB; chunk table kept on disk $((big_table_kib / 1024)) MiB"
echo
printf -v l '%s, ' "${loads[@]}"
echo "machine: other CPU load (share of $NCPU CPUs) during ${l%, }"
if [ -n "$tag" ]; then
	echo "note: the machine was busy ($busy timed phase(s) started after waiting 15 s for quiet," \
		"other load up to $(awk -v x="$worst_other" 'BEGIN { printf "%.0f%%", 100 * x }')):" \
		"the times tagged (busy) are unreliable; skiffd's CPU per call is not"
fi
echo "bench took $((SECONDS - BENCH_T0)) s"
