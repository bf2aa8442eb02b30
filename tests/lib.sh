# shellcheck shell=bash
# TAP helpers for skiff's shell tests. Source it from a test run by
# `prove --exec bash` from the repository root. Every test runs in its own
# scratch directory ($T), and everything it mounted or attached is undone
# on exit, also when the test fails half way.
set -uo pipefail

ROOT=${SKIFF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SKIFF=${SKIFF:-$ROOT/build/skiff}
TREECMP=${TREECMP:-$ROOT/build/treecmp}
READCHECK=${READCHECK:-$ROOT/build/readcheck}
FDSUP=${FDSUP:-$ROOT/build/fdsup}
GEN_TREE=$ROOT/scripts/gen-edge-tree.sh

_t_n=0
_t_failed=0
_t_planned=
_t_mounts=()
_t_loops=()

T=$(mktemp -d "${TMPDIR:-/var/tmp}/skiff-test.XXXXXX")

_t_cleanup() {
	local i
	# mounts first: a killed daemon would leave readers of them stuck
	for ((i = ${#_t_mounts[@]} - 1; i >= 0; i--)); do
		umount "${_t_mounts[i]}" 2>/dev/null || umount -l "${_t_mounts[i]}" 2>/dev/null
	done
	for i in "${_t_loops[@]}"; do
		losetup -d "$i" 2>/dev/null
	done
	declare -F _t_stop_daemon_on_exit >/dev/null && _t_stop_daemon_on_exit
	rm -rf "$T"
}
trap _t_cleanup EXIT

plan() { echo "1..$1"; _t_planned=$1; }

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

diag() { sed 's/^/# /' <<<"$*"; }

_t_result() {
	local status=$1 desc=$2
	_t_n=$((_t_n + 1))
	if [ "$status" -eq 0 ]; then
		echo "ok $_t_n - $desc"
	else
		echo "not ok $_t_n - $desc"
		_t_failed=$((_t_failed + 1))
	fi
	return "$status"
}

# t_ok DESC CMD...: passes when CMD exits 0; shows its output otherwise.
t_ok() {
	local desc=$1 st
	shift
	"$@" >"$T/.out" 2>&1
	st=$?
	_t_result "$st" "$desc" || { diag "command: $*"; diag "exit $st"; tail -n 20 "$T/.out" | sed 's/^/#   /'; }
	return "$st"
}

# _t_run_fails CMD...: runs CMD, its output in $T/.out; returns 0 when it
# failed the way a program reports an error (exit status 1 to 128), else
# 1 with the reason in _t_why: success, or death by a signal (status
# 128 + N), which is a crash, never the failure a test expects.
_t_run_fails() {
	local st
	"$@" >"$T/.out" 2>&1
	st=$?
	if [ "$st" -eq 0 ]; then
		_t_why="command unexpectedly succeeded: $*"
		return 1
	fi
	if [ "$st" -gt 128 ]; then
		_t_why="command died by signal $((st - 128)): $*"
		return 1
	fi
	# a hang that timeout(1) ended is not the failure a test expects
	if [ "$1" = timeout ] && [ "$st" -eq 124 ]; then
		_t_why="command did not end in time (a hang): $*"
		return 1
	fi
	return 0
}

# t_fails DESC CMD...: passes when CMD exits with an error status (1 to
# 128; a death by signal fails the test, and so does `timeout N CMD`
# ending a hang, status 124). Its output is kept in $T/.out
# for further checks (t_grep).
t_fails() {
	local desc=$1
	shift
	if _t_run_fails "$@"; then
		_t_result 0 "$desc"
	else
		_t_result 1 "$desc"
		diag "$_t_why"
		tail -n 20 "$T/.out" | sed 's/^/#   /'
		return 1
	fi
}

# t_fails_msg DESC PATTERN CMD...: t_fails, and CMD's output (stdout and
# stderr) has a line matching the extended regex PATTERN: the error
# message says why.
t_fails_msg() {
	local desc=$1 pat=$2
	shift 2
	if ! _t_run_fails "$@"; then
		_t_result 1 "$desc"
		diag "$_t_why"
		tail -n 20 "$T/.out" | sed 's/^/#   /'
		return 1
	fi
	if ! grep -qE -- "$pat" "$T/.out"; then
		_t_result 1 "$desc"
		diag "failed as expected, but no line matches /$pat/ in:"
		head -n 20 "$T/.out" | sed 's/^/#   /'
		return 1
	fi
	_t_result 0 "$desc"
}

# t_is DESC GOT WANT
t_is() {
	if [ "$2" = "$3" ]; then
		_t_result 0 "$1"
	else
		_t_result 1 "$1"
		diag "got:  $2"
		diag "want: $3"
		return 1
	fi
}

# t_grep DESC PATTERN FILE: passes when FILE has a line matching PATTERN.
t_grep() {
	if grep -qE -- "$2" "$3"; then
		_t_result 0 "$1"
	else
		_t_result 1 "$1"
		diag "no line matches /$2/ in:"
		head -n 20 "$3" | sed 's/^/#   /'
		return 1
	fi
}

# t_no_grep DESC PATTERN FILE: passes when FILE exists and no line of it
# matches PATTERN.
t_no_grep() {
	if [ ! -r "$3" ]; then
		_t_result 1 "$1"
		diag "$3: cannot be read"
		return 1
	fi
	if grep -E -- "$2" "$3" >"$T/.nogrep"; then
		_t_result 1 "$1"
		diag "lines match /$2/:"
		head -n 20 "$T/.nogrep" | sed 's/^/#   /'
		return 1
	fi
	_t_result 0 "$1"
}

t_skip() { _t_n=$((_t_n + 1)); echo "ok $_t_n # SKIP $*"; }

# sanitizer_clean: no ASan/UBSan/LSan report from any skiffd of the test
sanitizer_clean() {
	local f bad=0
	for f in "$T"/sanitizer.*; do
		[ -e "$f" ] || continue
		bad=1
		diag "$f:"
		head -n 40 "$f" | sed 's/^/#   /'
	done
	# a report that went to standard error instead (a serving process
	# a holder started, whose sanitizer could not open its log file)
	if [ -e "$T/skiffd.log" ] &&
		grep -qE "runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer" "$T/skiffd.log"; then
		bad=1
		diag "$T/skiffd.log:"
		grep -m 1 -A 20 -E "runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer" "$T/skiffd.log" |
			sed 's/^/#   /'
	fi
	return "$bad"
}

done_testing() {
	if [ "${SKIFF_SANITIZED:-0}" = 1 ]; then
		# reports of a daemon still running come at its exit (leaks)
		stop_skiffd
		_t_result "$(sanitizer_clean >&2; echo $?)" "skiffd (ASan+UBSan) reported nothing"
	fi
	[ -n "$_t_planned" ] || echo "1..$_t_n"
	[ "$_t_failed" -eq 0 ]
	exit $?
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip_all "needs root (mount, loop devices, xattrs)"
}

# EROFS with extra devices on the host kernel
need_erofs() {
	need_root
	modprobe erofs 2>/dev/null
	grep -qw erofs /proc/filesystems || skip_all "kernel has no EROFS"
	command -v losetup >/dev/null || skip_all "losetup missing"
}

# mount_image IMAGE MNT: exports the cache files and mounts them with the
# host kernel through loop devices (no daemon involved).
mount_image() {
	local image=$1 mnt=$2 exp ids id loop opts=ro
	exp=$(mktemp -d "$T/exp.XXXXXX")
	ids=$("$SKIFF" export-cache "$image" "$exp") || return 1
	for id in $ids; do
		loop=$(losetup -f --show -r "$exp/$id") || return 1
		_t_loops+=("$loop")
		opts="$opts,device=$loop"
	done
	mkdir -p "$mnt"
	mount -t erofs -o "$opts" "$exp/bootstrap" "$mnt" || return 1
	_t_mounts+=("$mnt")
	MOUNT_EXPORT=$exp
}

umount_image() {
	local mnt=$1 i
	umount "$mnt" || return 1
	for i in "${!_t_mounts[@]}"; do
		[ "${_t_mounts[i]}" = "$mnt" ] && unset '_t_mounts[i]'
	done
	_t_mounts=("${_t_mounts[@]}")
	return 0
}

# flip FILE OFFSET: inverts one byte in place
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# remanifest LAYOUT MAN SED: edits manifest MAN (hex) of LAYOUT with the
# sed expression SED and points the index at its new digest
remanifest() {
	local l=$1 man=$2 nman
	sed "$3" "$l/blobs/sha256/$man" >"$l/man.tmp"
	nman=$(sha256sum "$l/man.tmp" | cut -d' ' -f1)
	rm "$l/blobs/sha256/$man"
	mv "$l/man.tmp" "$l/blobs/sha256/$nman"
	sed -i "s/$man/$nman/" "$l/index.json"
}

# resign_bootstrap LAYOUT BS MAN: after bootstrap BS (hex) of LAYOUT
# changed, names it by its new digest in manifest MAN and the index, so
# that only the bootstrap's structure is left to judge
resign_bootstrap() {
	local l=$1 nbs
	nbs=$(sha256sum "$l/blobs/sha256/$2" | cut -d' ' -f1)
	mv "$l/blobs/sha256/$2" "$l/blobs/sha256/$nbs"
	remanifest "$l" "$3" "s/$2/$nbs/"
}

# cache_name IMAGE [N]: the name skiffd gives its cache file (and record)
# of blob N (default 0) of IMAGE: "<blob id>.<chunk table digest>"
cache_name() {
	"$SKIFF" inspect --json "$1" | jq -r --argjson n "${2:-0}" '.blobs[$n] | .id + "." + .table_digest'
}

# table_digest IMAGE [N]: where skiffd keeps blob N's chunk table
# (cache_dir/tables/<digest>)
table_digest() {
	"$SKIFF" inspect --json "$1" | jq -r --argjson n "${2:-0}" '.blobs[$n].table_digest'
}

# Manifest digest of an image: what reproducibility is judged by.
manifest_of() {
	"$SKIFF" inspect --json "$1" | sed -n 's/.*"manifest": "\([0-9a-f]*\)".*/\1/p'
}

# SKIFF_SANITIZED=1 (tests/asan/*.t): skiffd built with ASan+UBSan, whose
# reports go to $T/sanitizer.* and fail the test in done_testing
if [ "${SKIFF_SANITIZED:-0}" = 1 ]; then
	SKIFFD=${SKIFFD:-$ROOT/build-asan/skiffd}
else
	SKIFFD=${SKIFFD:-$ROOT/build/skiffd}
fi
SKIFFD_PID=

# start_skiffd [ARGS...]: runs skiffd with its cache (or
# $SKIFF_TEST_CACHE), state and socket in $T and returns once it says it
# is ready (--ready-fd), or fails when it exits first. Its log is
# $T/skiffd.log. SKIFFD_WRAP, when set, is a command skiffd runs under
# ("$FDSUP --": the test supervisor; SKIFFD_PID is then the wrapper's).
start_skiffd() {
	local line
	rm -f "$T/ready"
	mkfifo "$T/ready"
	export SKIFF_SOCKET=$T/skiffd.sock
	ASAN_OPTIONS=${SKIFF_ASAN_OPTIONS:-log_path=$T/sanitizer:abort_on_error=1:detect_leaks=1} \
	UBSAN_OPTIONS=${SKIFF_UBSAN_OPTIONS:-log_path=$T/sanitizer:print_stacktrace=1:halt_on_error=1} \
	${SKIFFD_WRAP:-} "$SKIFFD" --cache-dir "${SKIFF_TEST_CACHE:-$T/cache}" --work-dir "$T/work" --socket "$SKIFF_SOCKET" \
		--ready-fd 3 "$@" 3>"$T/ready" >>"$T/skiffd.log" 2>&1 &
	SKIFFD_PID=$!
	# the read ends with READY, or with EOF when skiffd dies first
	read -r -t 30 line <"$T/ready" || true
	[ "$line" = READY ] || { diag "skiffd did not start:"; tail -n 5 "$T/skiffd.log" | sed 's/^/#   /'; return 1; }
}

# stop_skiffd: SIGTERM, and skiffd's exit status (0 when it stopped
# cleanly). skiffd refuses while a lazy fanotify mount is up: then, after
# 30 s, it says why, kills it and fails.
stop_skiffd() {
	local st=0
	[ -n "$SKIFFD_PID" ] || return 0
	kill -TERM "$SKIFFD_PID" 2>/dev/null
	ends "$SKIFFD_PID" 30 || st=$?
	if [ "$st" = 124 ]; then
		diag "skiffd did not stop on SIGTERM:"
		grep "not stopping" "$T/skiffd.log" | tail -n 1 | sed 's/^/#   /'
		pkill -KILL -P "$SKIFFD_PID" 2>/dev/null
		kill -KILL "$SKIFFD_PID" 2>/dev/null
		wait "$SKIFFD_PID" 2>/dev/null
	fi
	SKIFFD_PID=
	return "$st"
}

# need_fanotify_skiffd: skips the whole test, with skiffd's reason, when
# this kernel (or the cache's filesystem) has no fanotify pre-content
# events; fails it, showing skiffd's log, when skiffd does not start for
# another reason. Leaves no daemon, cache, state or log behind.
need_fanotify_skiffd() {
	if ! start_skiffd --frontend fanotify >/dev/null; then
		grep -q "pre-content" "$T/skiffd.log" && skip_all "$(grep -m1 "pre-content" "$T/skiffd.log")"
		echo "1..1"
		echo "not ok 1 - skiffd starts with the fanotify frontend"
		sed 's/^/# /' "$T/skiffd.log"
		exit 1
	fi
	stop_skiffd
	rm -rf "$T/cache" "$T/work" "$T/skiffd.log"
}

# force_stop_skiffd: skiff stop --force (a restart with lazy mounts up,
# which a plain stop refuses), and skiffd's exit status
force_stop_skiffd() {
	local st=0
	[ -n "$SKIFFD_PID" ] || return 0
	"$SKIFF" stop --force >/dev/null || return 1
	ends "$SKIFFD_PID" 30 || st=$?
	SKIFFD_PID=
	return "$st"
}

# ends PID SECONDS: PID's exit status once it ends, 124 if it runs longer
ends() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1"; return; }
		sleep 0.1
	done
	return 124
}

# reaped PID [SECONDS]: like ends (default 60 s), but a PID still running
# then is killed and reaped, so that no reader outlives its test
reaped() {
	local st=0
	ends "$1" "${2:-60}" || st=$?
	if [ "$st" = 124 ] && kill -0 "$1" 2>/dev/null; then
		kill "$1" 2>/dev/null
		wait "$1" 2>/dev/null
	fi
	return "$st"
}

# metric_above NAME N: waits (10 s at most) until counter NAME exceeds N;
# 0 once it does, 1 if it never did
metric_above() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(metric "$1")" -gt "$2" ] 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# logged PATTERN SECONDS: waits until $T/skiffd.log has a line matching
# PATTERN (grep -E); 0 once it does, 1 if it never did
logged() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -qE -- "$1" "$T/skiffd.log" && return 0
		sleep 0.1
	done
	return 1
}

# logged_before FIRST THEN SECONDS: waits (up to SECONDS) for a line
# matching THEN, and checks that a line matching FIRST came before it.
# For what one process says in order (systemd's notify socket keeps a
# sender's order): no time limit decides the outcome, only the order.
logged_before() {
	local a b
	logged "$2" "$3" || { diag "never logged: $2"; return 1; }
	b=$(grep -nE -m1 -- "$2" "$T/skiffd.log" | cut -d: -f1)
	a=$(grep -nE -m1 -- "$1" "$T/skiffd.log" | cut -d: -f1)
	[ -n "$a" ] && [ "$a" -lt "$b" ] && return 0
	diag "not logged before line $b ($2): $1"
	sed -n "1,${b}p" "$T/skiffd.log" | tail -n 8 | sed 's/^/#   /' >&2
	return 1
}

# gone PID: PID has exited (a zombie that is not ours to reap counts)
gone() {
	! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# server_pid: the serving process skiffd's status names (fails while no
# server answers)
server_pid() {
	"$SKIFF" status --json 2>/dev/null | jq -er '.pid' 2>/dev/null
}

# holder_pid: the holder skiffd's status names (fails while no server
# answers)
holder_pid() {
	"$SKIFF" status --json 2>/dev/null | jq -er '.holder_pid' 2>/dev/null
}

# _kill_loop KILLS PAUSE_MS WHO: SIGKILLs the process WHO_pid names KILLS
# times, each after a random pause of up to PAUSE_MS once the one before
# was replaced; fails, saying which, when no new one answers within 60 s.
_kill_loop() {
	local kills=$1 pause=$2 who=$3 i pid new t0
	for ((i = 1; i <= kills; i++)); do
		pid=$("${who}_pid") || { diag "$who kill $i: no server answers"; return 1; }
		sleep "$(printf '%d.%03d' 0 $((RANDOM % pause)))"
		kill -KILL "$pid" 2>/dev/null
		t0=$SECONDS
		until new=$("${who}_pid") && [ "$new" != "$pid" ]; do
			[ $((SECONDS - t0)) -lt 60 ] || { diag "$who kill $i: no new $who after 60 s"; return 1; }
			sleep 0.05
		done
	done
}

# kill_holders KILLS: SIGKILLs skiffd's holder KILLS times (each replaced
# by the test supervisor, fdsup, from its fd store) as _kill_loop does,
# pauses of up to 400 ms.
kill_holders() { _kill_loop "$1" 400 holder; }

# kill_servers KILLS [MAX_PAUSE_MS]: SIGKILLs skiffd's serving process
# KILLS times (each replaced by the holder) as _kill_loop does, pauses of
# up to MAX_PAUSE_MS (default 400).
kill_servers() { _kill_loop "$1" "${2:-400}" server; }

# upgrade_servers N [BINARY [BINARY2]]: skiff daemon upgrade N times (to
# BINARY, alternating with BINARY2 when given, or to what skiffd runs
# from), each after a random pause of up to 400 ms; fails, saying which,
# when one does not complete
upgrade_servers() {
	local n=$1 i bin
	shift
	for ((i = 1; i <= n; i++)); do
		bin=${1:-}
		[ $((i % 2)) = 0 ] && [ -n "${2:-}" ] && bin=$2
		sleep "$(printf '%d.%03d' 0 $((RANDOM % 400)))"
		"$SKIFF" daemon upgrade ${bin:+--binary "$bin"} >>"$T/upgrades.log" 2>&1 ||
			{ diag "upgrade $i: $(tail -n 1 "$T/upgrades.log")"; return 1; }
	done
}

# random_images SRC MIB: images a and b ($T/store:a, :b, 64K chunks) of
# four random files of MIB MiB each, made in SRC/a and SRC/b; READ_FILES
# names the eight files (under_readers reads them)
random_images() {
	local src=$1 mib=$2 img i
	READ_FILES=()
	for img in a b; do
		mkdir -p "$src/$img"
		for i in 1 2 3 4; do
			head -c $((mib * 1024 * 1024)) /dev/urandom >"$src/$img/f$i"
			READ_FILES+=("$img/f$i")
		done
		t_ok "build image $img (64K chunks)" \
			"$SKIFF" build -q --chunk-size 64K "$src/$img" "$T/store:$img" || return
	done
}

# mount_random_images [ID_PREFIX]: mounts random_images' a and b at
# $T/mnt/a and $T/mnt/b (ids ID_PREFIXa, ID_PREFIXb when given)
mount_random_images() {
	local img
	for img in a b; do
		t_ok "mount image $img" skiff_mount "$T/store:$img" "$T/mnt/$img" \
			${1:+--id "$1$img"} || return
	done
}

# under_readers MNT SRC CMD [ARGS...]: readcheck's 8 readers go through
# READ_FILES (paths under MNT, compared with SRC) while CMD runs; the
# readers stop after their pass that ends after CMD. Fails unless CMD
# succeeded and every byte read right, none failed or hung (120 s: a
# read whose fetch every kill interrupts waits for the storm to pass);
# readcheck's figures are in $T/readers.out. READCHECK_FLAGS adds flags
# (-e: an EIO is retried and counted, not failed).
under_readers() {
	local mnt=$1 src=$2 rc st=0 cs=0
	shift 2
	rm -f "$T/readers.stop"
	"$READCHECK" -r 8 -d 120 ${READCHECK_FLAGS:-} -u "$T/readers.stop" "$mnt" "$src" "${READ_FILES[@]}" \
		>"$T/readers.out" 2>"$T/readers.err" &
	rc=$!
	"$@" || cs=$?
	touch "$T/readers.stop"
	reaped "$rc" 600 || st=$?
	[ "$cs" = 0 ] && [ "$st" = 0 ] || diag "$(head -n 5 "$T/readers.err")"
	[ "$cs" = 0 ] && [ "$st" = 0 ]
}

# metric NAME: a counter from skiffd's /metrics
metric() {
	curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics |
		awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print "missing" }'
}

_t_stop_daemon_on_exit() {
	local p g
	if [ -n "$SKIFFD_PID" ]; then
		# a supervisor (fdsup) runs skiffd in a process group of its
		# own, with servers that would adopt the group
		for p in $(pgrep -P "$SKIFFD_PID"); do
			g=$(ps -o pgid= -p "$p" | tr -d ' ')
			[ -n "$g" ] && [ "$g" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] &&
				kill -KILL -- -"$g" 2>/dev/null
		done
		# the holder's serving child would outlive it on purpose
		pkill -KILL -P "$SKIFFD_PID" 2>/dev/null
		kill -KILL "$SKIFFD_PID" 2>/dev/null
		wait "$SKIFFD_PID" 2>/dev/null
	fi
}

# skiff_mount IMAGE MNT [ARGS...]: lazy mount through skiffd, undone on exit
skiff_mount() {
	local img=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$SKIFF" mount "$@" "$img" "$mnt" >/dev/null || return 1
	_t_mounts+=("$mnt")
}

skiff_umount() {
	local mnt=$1 i
	"$SKIFF" umount "$mnt" >/dev/null || return 1
	for i in "${!_t_mounts[@]}"; do
		[ "${_t_mounts[i]}" = "$mnt" ] && unset '_t_mounts[i]'
	done
	_t_mounts=("${_t_mounts[@]}")
}

# concurrent_readers N MNT SRC FILE...: N readers at once, reader i
# comparing FILE[i mod count] under MNT with SRC; prints how many failed
# (each failure as a diagnostic), none may take over 300 s.
concurrent_readers() {
	local n=$1 mnt=$2 src=$3 i f bad=0 pids=()
	shift 3
	local files=("$@")
	for ((i = 0; i < n; i++)); do
		f=${files[i % ${#files[@]}]}
		timeout 300 cmp "$mnt/$f" "$src/$f" >"$T/reader.$i" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[i]}" || { bad=$((bad + 1)); diag "reader $i: $(cat "$T/reader.$i")" >&2; }
	done
	echo "$bad"
}
