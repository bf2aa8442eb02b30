#!/usr/bin/env bash
# containerd-bench.sh: `pull + run` of a Debian python image until the
# program (python3 -c 'import json') exits, through containerd (Debian's
# 1.6 and runc), the image in docker-registry on 127.0.0.1:
#
#   overlayfs      the baseline: `ctr pull` (download and unpack the
#                  ordinary OCI image), then `ctr run`
#   skiff lazy     `skiff-snapshotter pull` of the skiff image (nothing
#                  downloaded but the manifest, config and bootstrap),
#                  then `ctr run --snapshotter skiff`: what the program
#                  reads is fetched when it reads it
#   skiff list     the same image converted with a prefetch list that
#                  `skiff trace` recorded of the program: skiffd fetches
#                  the listed chunks from the mount on, while the pull
#                  and the container go on
#
# over two links: loopback, and loopback capped at SKIFF_BENCH_MBIT Mbit/s
# (default 100; a tbf qdisc). Everything runs in a network namespace of
# its own that the bench makes (its loopback is the link; the capped one
# slows nothing else on the machine), gone when the bench exits. Each run
# starts with a new containerd root, an empty skiff cache and dropped page
# caches; the median of SKIFF_BENCH_RUNS runs (default 3) counts. Bytes
# are those that crossed the link from the start of the pull (requests and
# answers, TLS included): until the program ended, and in all, once the
# link was quiet for a second after it (prefetch and read-ahead still
# running then count; the goal is on these). Prints a table of
# ratios against overlayfs on the same link, and the goals. Exits non-zero
# only on errors.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "containerd-bench: $*" >&2; exit 1; }
note() { echo "containerd-bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root"

# into a network namespace of our own, once
if [ "${SKIFF_BENCH_IN_NETNS:-}" != 1 ]; then
	exec unshare --net env SKIFF_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up || die "no loopback in the new network namespace"

RUNS=${SKIFF_BENCH_RUNS:-3}
MBIT=${SKIFF_BENCH_MBIT:-100}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_RUNS must be a positive integer"
[[ $MBIT =~ ^[1-9][0-9]*$ ]] || die "SKIFF_BENCH_MBIT must be a positive integer"
mkdir -p /var/tmp/skiff-bench
export TMPDIR=/var/tmp/skiff-bench	# the harness's scratch ($T) goes there
# the test harness's servers, skiffd, containerd and snapshotter helpers
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/netlib.sh"
. "$ROOT/tests/ctdlib.sh"
. "$ROOT/bench/lib.sh"
for c in containerd ctr runc docker-registry skopeo umoci jq tc openssl; do
	command -v "$c" >/dev/null || die "$c missing (scripts/setup.sh installs it)"
done
[ -x "$SKIFF" ] && [ -x "$SKIFFD" ] && [ -x "$SNAPSHOTTER" ] || die "build first (make)"

PROG=(python3 -c 'import json; print(json.dumps({"ok": 1}))')
WANT='{"ok": 1}'

note "a Debian root filesystem with python3 (debootstrap once, then cached)"
rootfs=$(SKIFF_ROOTFS_INCLUDE=python3 "$ROOT/scripts/test-rootfs.sh") || die "no root filesystem"
[ -x "$rootfs/usr/bin/python3" ] || die "no python3 in $rootfs"

note "the ordinary OCI image (umoci, one gzip layer)"
umoci init --layout "$T/oci" && umoci new --image "$T/oci:base" &&
	umoci unpack --image "$T/oci:base" "$T/b" >/dev/null &&
	cp -a "$rootfs/." "$T/b/rootfs/" &&
	umoci repack --image "$T/oci:py" "$T/b" || die "umoci failed"
rm -rf "$T/b"

make_ca "$T/ca" || die "no test CA"
port=$(free_port)
start_registry reg "$port" "$T/ca" "" || die "docker-registry did not start"
K=127.0.0.1:$port
mkdir -p "$T/certs" "$T/certs.d/$K"
cp "$T/ca/ca.crt" "$T/certs/"
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$K" "$K" "$T/ca/ca.crt" \
	>"$T/certs.d/$K/hosts.toml"
printf '{"backend": {"ca_file": "%s"}}\n' "$T/ca/ca.crt" >"$T/skiffd.json"

skopeo --insecure-policy copy -q --dest-cert-dir "$T/certs" "oci:$T/oci:py" "docker://$K/py:oci" ||
	die "skopeo copy failed"
note "skiff convert into the registry"
"$SKIFF" convert -q --ca-file "$T/ca/ca.crt" "docker://$K/py:oci" "docker://$K/py:lazy" ||
	die "skiff convert failed"

# the compressed bytes of an image's layers, as its manifest says
layer_bytes() {
	curl -sf --cacert "$T/ca/ca.crt" -H "Accept: application/vnd.oci.image.manifest.v1+json" \
		"https://$K/v2/py/manifests/$1" | jq '[.layers[].size] | add'
}

# a fresh node: skiffd with an empty cache, the snapshotter, containerd
# with a new root; page caches dropped
node_up() {
	rm -rf "$T/ctd" "$T/sn" "$T/cache" "$T/work"
	start_skiffd --frontend fanotify --config "$T/skiffd.json" || die "skiffd did not start"
	start_snapshotter || die "skiff-snapshotter did not start"
	start_containerd || die "containerd did not start"
	bench_drop_caches
}
node_down() {
	_c_cleanup
	CTD_PID=
	SN_PID=
	stop_skiffd || die "skiffd did not stop"
}

note "recording a trace of the program (lazy mount, cold cache)"
node_up
mkdir -p "$T/mnt"
"$SKIFF" mount "docker://$K/py:lazy" "$T/mnt" >/dev/null || die "skiff mount failed"
"$SKIFF" trace start "$T/mnt" >/dev/null || die "skiff trace start failed"
[ "$(chroot "$T/mnt" "${PROG[@]}")" = "$WANT" ] || die "the program failed in the image"
"$SKIFF" trace stop -o "$T/trace" "$T/mnt" 2>/dev/null || die "skiff trace stop failed"
"$SKIFF" umount "$T/mnt" >/dev/null || die "skiff umount failed"
node_down
note "trace: $(grep -vc '^#' "$T/trace") files; converting again with it as the prefetch list"
"$SKIFF" convert -q --ca-file "$T/ca/ca.crt" --prefetch-list "$T/trace" \
	"docker://$K/py:oci" "docker://$K/py:list" || die "skiff convert --prefetch-list failed"

# this namespace's loopback (/sys shows the namespace that mounted it)
link_bytes() { awk '$1 == "lo:" { print $10 }' /proc/net/dev; }
now() { date +%s.%N; }

# waits until the link has been quiet for a second (60 s at most)
link_quiet() {
	local a b i
	a=$(link_bytes)
	for ((i = 0; i < 60; i++)); do
		sleep 1
		b=$(link_bytes)
		[ "$a" = "$b" ] && return 0
		a=$b
	done
}

# one pull + run: prints "seconds bytes_at_exit bytes_in_all"
run_mode() {
	local mode=$1 t0 t1 b0 b1 out
	node_up
	b0=$(link_bytes)
	t0=$(now)
	case $mode in
	overlayfs)
		"${CTR[@]}" images pull --hosts-dir "$T/certs.d" "$K/py:oci" >/dev/null ||
			die "ctr pull failed"
		out=$("${CTR[@]}" run --rm "$K/py:oci" b1 "${PROG[@]}" 2>&1) ;;
	lazy | list)
		"$SNAPSHOTTER" pull --address "$CTD_SOCK" --namespace skiff-test --hosts-dir "$T/certs.d" \
			"$K/py:$mode" >/dev/null || die "skiff-snapshotter pull failed"
		out=$("${CTR[@]}" run --rm --snapshotter skiff "$K/py:$mode" b1 "${PROG[@]}" 2>&1) ;;
	esac
	t1=$(now)
	b1=$(link_bytes)
	[ "$out" = "$WANT" ] || die "$mode: the program printed '$out'"
	link_quiet
	echo "$(echo "$t1 - $t0" | bc) $((b1 - b0)) $(($(link_bytes) - b0))"
	node_down
}

modes=(overlayfs lazy list)
declare -A secs bytes all label
label=([overlayfs]="overlayfs" [lazy]="skiff lazy" [list]="skiff list")
oci=$(layer_bytes oci)
skiffsize=$(layer_bytes lazy)
for link in loopback capped; do
	if [ "$link" = capped ]; then
		# lo's MTU is 64 KiB: the bucket holds a few packets
		tc qdisc add dev lo root tbf rate "${MBIT}mbit" burst 256kb latency 200ms ||
			die "tc could not cap the loopback"
	fi
	for ((r = 1; r <= RUNS; r++)); do
		for m in "${modes[@]}"; do
			run_mode "$m" >"$T/result"
			read -r s b a <"$T/result"
			secs[$link.$m]+="$s "
			bytes[$link.$m]+="$b "
			all[$link.$m]+="$a "
			note "$link, run $r, ${label[$m]}: ${s}s, $b bytes at exit, $a in all"
		done
	done
done
tc qdisc del dev lo root 2>/dev/null

med() { tr ' ' '\n' <<<"$1" | grep . | bench_median; }
printf '\ncontainerd-bench: pull + run of python3 -c "import json" (Debian 12 + python3),\n'
printf 'containerd %s, median of %s runs; the OCI image %s compressed bytes,\n' \
	"$(containerd --version | awk '{ print $3 }')" "$RUNS" "$oci"
printf 'the skiff image %s (blobs and bootstrap, zstd)\n\n' "$skiffsize"
printf '%-10s %-11s %9s %9s %14s %14s %9s\n' link mode seconds speedup "bytes at exit" "bytes in all" "of image"
printf '%-10s %-11s %9s %9s %14s %14s %9s\n' ---------- ----------- --------- --------- -------------- -------------- ---------
for link in loopback capped; do
	base=$(med "${secs[$link.overlayfs]}")
	name=$link
	[ "$link" = capped ] && name="${MBIT} Mbit/s"
	for m in "${modes[@]}"; do
		s=$(med "${secs[$link.$m]}")
		b=$(med "${bytes[$link.$m]}")
		a=$(med "${all[$link.$m]}")
		printf '%-10s %-11s %9.2f %8.1fx %14s %14s %8.1f%%\n' "$name" "${label[$m]}" "$s" \
			"$(echo "$base / $s" | bc -l)" "$b" "$a" "$(echo "100 * $a / $oci" | bc -l)"
	done
done
speed=$(echo "$(med "${secs[capped.overlayfs]}") / $(med "${secs[capped.list]}")" | bc -l)
share=$(echo "100 * $(med "${all[capped.list]}") / $oci" | bc -l)
printf '\ngoals (%s Mbit/s, with the prefetch list):\n' "$MBIT"
printf '  at least 5x faster than overlayfs (%.1fx)  %s\n' "$speed" \
	"$([ "$(echo "$speed >= 5" | bc)" = 1 ] && echo MET || echo 'NOT met')"
printf '  at most 10%% of the image fetched (%.1f%%)  %s\n' "$share" \
	"$([ "$(echo "$share <= 10" | bc)" = 1 ] && echo MET || echo 'NOT met')"
