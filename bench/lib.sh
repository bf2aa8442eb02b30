# bench/lib.sh: helpers the benchmarks share (sourced, not run).
# Needs SKIFFD set by the script; skiffd's scratch goes under a directory
# the caller names.

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/nginx-conf.sh"

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

# median of the numbers on stdin (the lower middle one for an even count)
bench_median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# busy CPU seconds of the whole machine so far (steal included)
bench_busy_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat; }

# CPU seconds a process (all its threads) has used so far
bench_proc_cpu() { awk -v hz="$HZ" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }

# bench_wait_quiet [SECONDS]: waits until other load is under a tenth of
# the machine, at most SECONDS (default 15); 0 when quiet, 1 when it gave up
bench_wait_quiet() {
	local limit=${1:-15} start=$SECONDS a b
	while :; do
		a=$(bench_busy_cpu)
		sleep 1
		b=$(bench_busy_cpu)
		awk -v a="$a" -v b="$b" -v n="$NCPU" 'BEGIN { exit !((b - a) / n < 0.10) }' && return 0
		[ $((SECONDS - start)) -lt "$limit" ] || return 1
	done
}

bench_drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# bench_start_skiffd DIR [SKIFFD OPTIONS...]: starts skiffd with the
# fanotify frontend, cache, state and socket under DIR (emptied first;
# DIR/sock is the socket, DIR/skiffd.log the log), and waits for it to
# say it is ready. Sets BENCH_SKIFFD_PID; env vars set for the call
# (SKIFF_TEST_FETCH_BPS=...) reach skiffd. BENCH_SKIFFD_WRAP, when set,
# is a command skiffd runs under (build/fdsup: the test supervisor that
# plays systemd); BENCH_SKIFFD_PID is then the wrapper's.
bench_start_skiffd() {
	local dir=$1 line=
	shift
	rm -rf "$dir/cache" "$dir/work" "$dir/ready"
	mkdir -p "$dir"
	mkfifo "$dir/ready"
	${BENCH_SKIFFD_WRAP:-} "$SKIFFD" --frontend fanotify --cache-dir "$dir/cache" --work-dir "$dir/work" \
		--socket "$dir/sock" --ready-fd 3 "$@" 3>"$dir/ready" 2>>"$dir/skiffd.log" &
	BENCH_SKIFFD_PID=$!
	read -r -t 30 line <"$dir/ready" || true
	rm -f "$dir/ready"
	[ "$line" = READY ] || { echo "skiffd did not start: $(tail -n 3 "$dir/skiffd.log")" >&2; return 1; }
}

# the process that serves (skiffd's holder forks it): whose CPU counts
bench_skiffd_server() { pgrep -P "$BENCH_SKIFFD_PID" | head -n 1; }

# skiffd refuses SIGTERM while a lazy mount is up: a bench that left one
# (it failed half-way) gets it killed after 30 s
bench_stop_skiffd() {
	local i
	[ -n "${BENCH_SKIFFD_PID:-}" ] || return 0
	kill "$BENCH_SKIFFD_PID" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$BENCH_SKIFFD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$BENCH_SKIFFD_PID" 2>/dev/null; then
		echo "skiffd refused to stop (a lazy mount is up): killing it" >&2
		pkill -KILL -P "$BENCH_SKIFFD_PID" 2>/dev/null || true
		kill -KILL "$BENCH_SKIFFD_PID" 2>/dev/null || true
	fi
	wait "$BENCH_SKIFFD_PID" 2>/dev/null || true
	BENCH_SKIFFD_PID=
}

# bench_metric SOCKET NAME: a counter summed over its labels
bench_metric() {
	curl -s --unix-socket "$1" http://skiffd/metrics |
		awk -v n="$2" 'index($1, n "{") == 1 || $1 == n { s += $2 } END { print s + 0 }'
}

# bench_nginx_conf DIR WEBROOT PORT: DIR/nginx.conf serving WEBROOT on
# 127.0.0.1:PORT, no access log (scripts/nginx-conf.sh)
bench_nginx_conf() { nginx_conf "$1" "$3" "access_log off;" "root $2;"; }
