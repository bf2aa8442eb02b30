#!/usr/bin/env bash
# Traces, prefetch lists and prefetch through skiffd's fanotify frontend:
# a trace recorded while a program runs, fed back as the prefetch list of
# a rebuilt image, makes the next run fetch nothing on demand; a whole-
# image prefetch leaves every blob complete and unwatched; an image is
# pre-warmed before it is mounted; on-demand reads go first.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl missing (scripts/setup.sh installs it)"
command -v jq >/dev/null || skip_all "jq missing (scripts/setup.sh installs it)"
PY=/usr/bin/python3
PYLIB=/usr/lib/python3.11
[ -x "$PY" ] && [ -d "$PYLIB/json" ] || skip_all "no $PY with $PYLIB (scripts/setup.sh installs python3)"
need_fanotify_skiffd

# the program: Python importing modules from the image (its stdlib)
SRC=$T/src
mkdir -p "$SRC"
cp -a "$PYLIB/." "$SRC/"
rm -rf "$SRC/site-packages" "$SRC/dist-packages" "$SRC/test"
prog() { # prog MNT: prints where json came from
	timeout 120 "$PY" -I -S -c "import sys; sys.path[:0] = ['$1']
import json, email.parser, http.client, xml.dom.minidom, decimal, argparse
print(json.__file__)"
}
MNT=$T/mnt
t_ok "build the image (python stdlib, 256K chunks)" \
	"$SKIFF" build -q --chunk-size 256K "$SRC" "$T/store:plain" || done_testing
size=$("$SKIFF" inspect --json "$T/store:plain" | jq '.blobs[0].stored_size')

# 1. a trace of the program's reads
t_ok "skiffd starts" start_skiffd --frontend fanotify --readahead 0 || done_testing
t_ok "mount" skiff_mount "$T/store:plain" "$MNT" || done_testing
t_ok "trace start" "$SKIFF" trace start "$MNT"
t_fails "a second trace start is refused" "$SKIFF" trace start "$MNT"
t_is "the program runs from the image" "$(prog "$MNT")" "$MNT/json/__init__.py"
t_ok "trace stop -o FILE" "$SKIFF" trace stop -o "$T/trace" "$MNT"
t_grep "the trace has its header" "^# skiff trace v1" "$T/trace"
t_grep "... and names json's files with their chunks" $'^/json/.*\t0$' "$T/trace"
t_grep "... and email's" '^/email/' "$T/trace"
ntrace=$(grep -vc '^#' "$T/trace")
nfiles=$(find "$SRC" -type f | wc -l)
t_ok "... $ntrace files of $nfiles: only what was read" test "$ntrace" -lt "$((nfiles / 4))" -a "$ntrace" -gt 5
t_fails "trace stop without a trace is refused" "$SKIFF" trace stop "$MNT"
t_ok "umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd

# 2. the trace as the prefetch list of a rebuilt image
t_ok "build with --prefetch-list TRACE" \
	"$SKIFF" build -q --chunk-size 256K --prefetch-list "$T/trace" "$SRC" "$T/store:pf"
"$SKIFF" inspect --json "$T/store:pf" >"$T/inspect.json"
t_is "skiff inspect shows the list" "$(jq '.prefetch | length' "$T/inspect.json")" "$ntrace"
t_is "... in trace order" "$(jq -r '.prefetch[0]' "$T/inspect.json")" \
	"$(grep -v '^#' "$T/trace" | head -n1 | cut -f1)"
"$SKIFF" inspect "$T/store:pf" >"$T/inspect.txt"
t_grep "... also in text" "^prefetch: *$ntrace files" "$T/inspect.txt"
t_ok "the rebuilt image equals the source" "$SKIFF" check "$T/store:pf"

# 3. mount with a cold cache: the list is fetched in the background; then
#    the program runs without a single on-demand fetch
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify --readahead 0 || done_testing
t_ok "mount the rebuilt image" skiff_mount "$T/store:pf" "$MNT" || done_testing
t_ok "skiff prefetch MNT waits for the list" "$SKIFF" prefetch --json "$MNT"
cp "$T/.out" "$T/pf.json"
t_is "... done" "$(jq -r .state "$T/pf.json")" done
pfb=$(metric skiff_prefetch_bytes_total)
t_ok "prefetch fetched $pfb bytes (/metrics), under 10% of the $size stored" \
	test "$pfb" -gt 0 -a "$((pfb * 10))" -lt "$size"
m0=$(metric skiff_read_misses_total)
w0=$(metric skiff_read_waits_total)
f0=$(metric skiff_fetched_chunks_total)
sync; echo 3 >/proc/sys/vm/drop_caches
t_is "the program runs" "$(prog "$MNT")" "$MNT/json/__init__.py"
t_is "... with no read that fetched or waited" "$(metric skiff_read_misses_total)" "$m0"
t_is "... no waits" "$(metric skiff_read_waits_total)" "$w0"
t_is "... no chunk fetched" "$(metric skiff_fetched_chunks_total)" "$f0"
t_ok "... and prefetch hits counted" test "$(metric skiff_prefetch_hits_total)" -gt 0
"$SKIFF" status --json >"$T/status.json"
t_is "skiff status --json has the prefetch" \
	"$(jq -r '.images[0].prefetch.state' "$T/status.json")" done
t_ok "... and its counters" test "$(jq '.images[0].counters.prefetch.hits' "$T/status.json")" -gt 0

# 4. prefetch --all: every blob complete, marks gone, reads raise no event
t_ok "skiff prefetch --all" "$SKIFF" prefetch --all "$MNT"
t_grep "... says what it did" "prefetch of .* done" "$T/.out"
"$SKIFF" status --json >"$T/status.json"
t_is "every chunk ready" "$(jq '[.images[0].blobs[] | .ready_chunks == .chunks] | all' "$T/status.json")" true
t_is "the blob is no longer watched" "$(jq '.images[0].blobs[0].watched' "$T/status.json")" false
cf=$(jq -r '.images[0].blobs[0].cache_file' "$T/status.json")
t_ok "skiff export-cache writes the reference cache file" \
	"$SKIFF" export-cache "$T/store:pf" "$T/export"
blob=$(jq -r '.images[0].blobs[0].id' "$T/status.json")
t_ok "the cache file equals it byte for byte (every chunk verified)" \
	cmp "$cf" "$(ls "$T/export/"*"$blob"* | head -n1)"
e0=$(metric skiff_events_total)
sync; echo 3 >/proc/sys/vm/drop_caches
t_ok "the whole tree reads right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "... without a single event" "$(metric skiff_events_total)" "$e0"
t_ok "umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd

# 5. pre-warm before mount: skiff prefetch IMAGE registers and fills
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify || done_testing
t_ok "skiff prefetch --all IMAGE (not mounted)" "$SKIFF" prefetch --all "$T/store:plain"
t_is "every blob complete" \
	"$("$SKIFF" status --json | jq '[.images[0].blobs[] | .ready_chunks == .chunks] | all')" true
t_ok "mount it" skiff_mount "$T/store:plain" "$MNT"
f0=$(metric skiff_fetched_chunks_total)
t_ok "the tree reads right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_is "... with nothing fetched" "$(metric skiff_fetched_chunks_total)" "$f0"
t_fails "an image without a list and no --all is refused" "$SKIFF" prefetch "$MNT"
t_grep "... saying why" "no prefetch list" "$T/.out"
t_ok "umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd

# 6. on-demand first: one 1 MB/s link shared by every backend read; a read
#    during a whole-image prefetch takes little more than alone
rm -rf "$T/cache" "$T/work"
export SKIFF_TEST_FETCH_BPS=$((1 << 20))
t_ok "skiffd starts with a slow store" start_skiffd --frontend fanotify --readahead 0 --ahead 0 || done_testing
t_ok "mount" skiff_mount "$T/store:plain" "$MNT"
# a program reading files one after another, each a miss
reads() { local f; for f in "$@"; do cat "$MNT/$f" >/dev/null || return 1; done; }
t0=$(date +%s.%N)
reads _pydecimal.py typing.py tarfile.py doctest.py _pyio.py zipfile.py \
	subprocess.py locale.py enum.py pickle.py ast.py dataclasses.py
alone=$(echo "$(date +%s.%N) - $t0" | bc)
t_ok "queue a whole-image prefetch" "$SKIFF" prefetch --all --no-wait "$MNT"
sleep 0.5
p0=$(metric skiff_prefetch_bytes_total)
t0=$(date +%s.%N)
reads turtle.py inspect.py pydoc.py argparse.py pickletools.py datetime.py \
	difflib.py mailbox.py ipaddress.py pdb.py optparse.py threading.py
during=$(echo "$(date +%s.%N) - $t0" | bc)
p1=$(metric skiff_prefetch_bytes_total)
diag "cold read alone ${alone}s, during a prefetch ${during}s; the prefetch fetched $((p1 - p0)) bytes meanwhile"
# the prefetch threads finish the ranges they are in (one 1 MiB range of
# the cache file each), then start nothing while the reads go on (the
# gaps between two reads are shorter than the 20 ms it waits): so while
# the reads ran it fetched at most two ranges. Without the yield it takes
# its share of the link for as long as the reads last (about 4 MB; they
# then took 6.5 s instead of 1). Bytes, not seconds: a busy machine
# changes the times, not what was fetched.
t_ok "... the prefetch fetched at most its two ranges in progress meanwhile" \
	test $((p1 - p0)) -le $((2 << 20))
t_ok "the files read right" cmp "$MNT/pdb.py" "$SRC/pdb.py"
state=$("$SKIFF" status --json | jq -r '.images[0].prefetch.state')
t_ok "the prefetch is still going ($state)" test "$state" = running -o "$state" = queued
t_ok "umount cancels it" skiff_umount "$MNT"
t_grep "... logged" "prefetch of .* cancelled" "$T/skiffd.log"
t_ok "skiffd stops cleanly" stop_skiffd
unset SKIFF_TEST_FETCH_BPS
done_testing
