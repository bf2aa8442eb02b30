#!/usr/bin/env bash
# File-aware read-ahead, over HTTP (nginx on 127.0.0.1), fanotify, the
# default 1 MiB chunks and skiffd's defaults: a miss fetches what the
# kernel asked for, rounded to chunks, plus the rest of its file when
# that is small, never the files stored after it, unless the reader goes
# through files in their stored order. Counted by why bytes came
# (skiff_fetched_{demand,readahead_file,readahead_across}_bytes_total)
# and by what was fetched ahead and never read (status unread_bytes).
#  1. 1000 of 2000 small files read whole in a random order: exactly
#     their chunks are fetched, nothing across files;
#  2. a few pages of a large file touched (no kernel read-ahead): only
#     the chunks covering them;
#  3. from an empty cache, 1500 files read in stored order: read ahead
#     across files in few requests, what was fetched and never read
#     bounded by one read-ahead.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_net_tools nginx curl jq
need_fanotify_skiffd

SRC=$T/src
t_ok "generate 2000 small files and a 24 MiB one" python3 - "$SRC" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(16)
os.makedirs(os.path.join(root, "many"))
words = [b"lorem", b"ipsum", b"skiff", b"chunk", b"file", b"read", b"ahead", b"\n"]
for i in range(2000):
    size = rnd.randint(1024, 48 * 1024)
    if i % 2:
        data = rnd.randbytes(size)
    else:
        data = b" ".join(rnd.choice(words) for _ in range(size // 5))[:size]
        data += b"#%d" % i	# no two alike: no chunk shared
    with open(os.path.join(root, "many", "f%04d" % i), "wb") as f:
        f.write(data)
with open(os.path.join(root, "big"), "wb") as f:
    f.write(rnd.randbytes(24 << 20))
PY
t_ok "build it into a layout under the web root (1 MiB chunks)" \
	"$SKIFF" build -q "$SRC" "$T/www/layout:a" || done_testing
port=$(free_port)
t_ok "nginx serves it on 127.0.0.1:$port" start_nginx web "$port" "root $T/www;" || done_testing
URL=http://127.0.0.1:$port/layout
t_ok "skiffd starts (defaults: 1M read-ahead, no windows)" \
	start_skiffd --frontend fanotify || done_testing
MNT=$T/mnt
t_ok "skiff mount" skiff_mount "$URL#a" "$MNT" || done_testing

# python reads and compares; prints "files chunks" or "wrong NAME"
readfiles() {
	python3 - "$SRC" "$MNT" "$@" <<'PY'
import os, sys
src, mnt, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for n in names:
    want = open(os.path.join(src, n), "rb").read()
    got = open(os.path.join(mnt, n), "rb").read()
    if got != want:
        print("wrong", n)
        sys.exit(1)
print(len(names))
PY
}

# 1. random order: f0000..f1999 are stored in that order, one chunk each
mapfile -t picked < <(python3 -c '
import random
r = random.Random(7)
for i in r.sample(range(2000), 1000): print("many/f%04d" % i)')
t_is "1000 of the 2000 files, in a random order, read right" "$(readfiles "${picked[@]}")" 1000
t_is "... fetching their 1000 chunks, not one of another file" \
	"$(metric skiff_fetched_chunks_total)" 1000
t_is "... in 1000 backend reads" "$(metric skiff_backend_fetches_total)" 1000
t_is "... all asked for" "$(metric skiff_fetched_demand_bytes_total)" \
	"$(metric skiff_fetched_bytes_total)"
t_is "... nothing read ahead across files" \
	"$(metric skiff_fetched_readahead_across_bytes_total)" 0

# 2. a few pages of the 24 MiB file, the kernel's read-ahead off
f0=$(metric skiff_fetched_chunks_total)
r0=$(metric skiff_backend_fetches_total)
t_ok "three pages of the large file read right (POSIX_FADV_RANDOM)" python3 - "$SRC/big" "$MNT/big" <<'PY'
import os, sys
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
os.posix_fadvise(b, 0, 0, os.POSIX_FADV_RANDOM)
for off in (5 << 20, (11 << 20) + 12345, 20 << 20):
    off &= ~4095
    if os.pread(a, 4096, off) != os.pread(b, 4096, off):
        sys.exit(1)
PY
t_is "... fetching only the three chunks covering them" \
	"$(($(metric skiff_fetched_chunks_total) - f0))" 3
t_is "... in three backend reads" "$(($(metric skiff_backend_fetches_total) - r0))" 3
t_is "... nothing read ahead in the file" \
	"$(metric skiff_fetched_readahead_file_bytes_total)" 0
t_is "... all asked for" "$(metric skiff_fetched_demand_bytes_total)" \
	"$(metric skiff_fetched_bytes_total)"
id=$("$SKIFF" status --json | jq -r '.images[0].id')
unread() { "$SKIFF" status --json | jq ".images[] | select(.id == \"$id\") | .counters.unread_bytes"; }
t_is "nothing fetched ahead is unread" "$(unread)" 0

# 3. from an empty cache, f0000..f1499 in stored order: a stream
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd
rm -rf "$T/cache" "$T/work"
t_ok "skiffd starts on an empty cache" start_skiffd --frontend fanotify || done_testing
t_ok "skiff mount" skiff_mount "$URL#a" "$MNT" || done_testing
id=$("$SKIFF" status --json | jq -r '.images[0].id')
mapfile -t rest < <(for i in $(seq 0 1499); do printf 'many/f%04d\n' "$i"; done)
t_is "files f0000 to f1499, in stored order, read right" \
	"$(readfiles "${rest[@]}")" 1500
reads=$(metric skiff_backend_fetches_total)
t_ok "... in few backend reads ($reads)" test "$((reads * 8))" -lt 1500
rax=$(metric skiff_fetched_readahead_across_bytes_total)
t_ok "... reading ahead across files ($rax bytes)" test "$rax" -gt 0
u=$(unread)
t_ok "what was read ahead and never read is at most one read-ahead ($u bytes)" \
	test "$u" -ge 0 -a "$u" -le $((1 << 20))
t_is "the counts add up to what was fetched" \
	"$(($(metric skiff_fetched_demand_bytes_total) + $(metric skiff_fetched_readahead_file_bytes_total) + rax))" \
	"$(metric skiff_fetched_bytes_total)"
t_is "no errors" "$(metric skiff_fetch_errors_total)" 0
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "skiffd stops" stop_skiffd
done_testing
