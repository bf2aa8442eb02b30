# shellcheck shell=bash
# containerd for the tests: Debian's containerd and runc with a root, state
# directory, socket and configuration of the test's own (in $T/ctd), and
# skiff-snapshotter as its "skiff" proxy snapshotter (in $T/sn). Everything
# is stopped, and every container, mount and shim is gone, when the test
# exits. Source after lib.sh and netlib.sh.

SNAPSHOTTER=${SNAPSHOTTER:-$ROOT/build/skiff-snapshotter}
CTD_SOCK=$T/ctd/ctd.sock
SN_SOCK=$T/sn.sock
CRI_SOCK=$T/cri.sock
CTR=(ctr --address "$CTD_SOCK" --namespace skiff-test)
CTR_K8S=(ctr --address "$CTD_SOCK" --namespace k8s.io)
CRIPULL=${CRIPULL:-$ROOT/build/cripull}
CTD_PID=
SN_PID=

# need_containerd: root and the programs, or the whole test is skipped
need_containerd() {
	local c
	need_root
	for c in containerd ctr runc containerd-shim-runc-v2; do
		command -v "$c" >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
	done
	[ -x "$SNAPSHOTTER" ] || skip_all "$SNAPSHOTTER not built (make)"
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
		skip_all "no overlayfs in this kernel"
}

# start_snapshotter [ARGS]: skiff-snapshotter serving $SN_SOCK with its
# root in $T/sn, mounting through skiffd at $SKIFF_SOCKET, and CRI's image
# service on $CRI_SOCK in front of containerd's (as kubelet's image
# endpoint); log $T/sn.log. Sets SN_PID; fails when it does not say it
# serves within 30 s.
start_snapshotter() {
	local n
	n=$(grep -c "serving on" "$T/sn.log" 2>/dev/null)
	"$SNAPSHOTTER" --root "$T/sn" --address "$SN_SOCK" --skiff "$SKIFF" \
		--skiffd-socket "$SKIFF_SOCKET" --cri-image-service "$CRI_SOCK" --cri-address "$CTD_SOCK" \
		--hosts-dir "$T/certs.d" "$@" >>"$T/sn.log" 2>&1 &
	SN_PID=$!
	for _ in $(seq 1 300); do
		[ "$(grep -c "serving on" "$T/sn.log")" -gt "${n:-0}" ] && return 0
		kill -0 "$SN_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 5 "$T/sn.log" | sed 's/^/#   /'
	return 1
}

stop_snapshotter() {
	[ -n "$SN_PID" ] || return 0
	kill -TERM "$SN_PID" 2>/dev/null
	ends "$SN_PID" 30
	local st=$?
	SN_PID=
	return "$st"
}

# start_containerd: containerd with the skiff proxy snapshotter, and the
# CRI plugin configured as a Kubernetes node would have it for skiff
# (snapshotter "skiff", snapshot annotations on, registry hosts from
# $T/certs.d); log $T/ctd.log. Sets CTD_PID; fails when it does not
# answer within 30 s.
start_containerd() {
	mkdir -p "$T/ctd" "$T/ctd/cni/conf" "$T/ctd/cni/bin"
	cat >"$T/ctd/config.toml" <<EOF
version = 2
root = "$T/ctd/root"
state = "$T/ctd/state"
[plugins."io.containerd.grpc.v1.cri"]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "skiff"
    disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$T/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$T/ctd/cni/conf"
    bin_dir = "$T/ctd/cni/bin"
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[debug]
  address = "$T/ctd/debug.sock"
[proxy_plugins]
  [proxy_plugins.skiff]
    type = "snapshot"
    address = "$SN_SOCK"
EOF
	containerd --config "$T/ctd/config.toml" >>"$T/ctd.log" 2>&1 &
	CTD_PID=$!
	for _ in $(seq 1 300); do
		"${CTR[@]}" version >/dev/null 2>&1 && return 0
		kill -0 "$CTD_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 5 "$T/ctd.log" | sed 's/^/#   /'
	return 1
}

# ctd_tasks: the running tasks of the test's namespace, one per line
ctd_tasks() {
	"${CTR[@]}" tasks ls -q 2>/dev/null
}

# ctd_erofs_mounts: how many EROFS mounts the snapshotter has
ctd_erofs_mounts() {
	awk -v d="$T/sn/" '$3 == "erofs" && index($2, d) == 1' /proc/mounts | wc -l
}

_c_cleanup() {
	local t m ns
	if [ -n "$CTD_PID" ]; then
		for ns in skiff-test k8s.io; do
			for t in $(ctr --address "$CTD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
				ctr --address "$CTD_SOCK" -n "$ns" tasks kill -s KILL "$t" >/dev/null 2>&1
				sleep 0.2
				ctr --address "$CTD_SOCK" -n "$ns" tasks rm -f "$t" >/dev/null 2>&1
			done
			for t in $(ctr --address "$CTD_SOCK" -n "$ns" containers ls -q 2>/dev/null); do
				ctr --address "$CTD_SOCK" -n "$ns" containers rm "$t" >/dev/null 2>&1
			done
		done
		kill -TERM "$CTD_PID" 2>/dev/null
		ends "$CTD_PID" 20 || kill -KILL "$CTD_PID" 2>/dev/null
	fi
	pkill -KILL -f "containerd-shim-runc-v2 .*-address $CTD_SOCK" 2>/dev/null
	[ -n "$SN_PID" ] && kill -TERM "$SN_PID" 2>/dev/null && ends "$SN_PID" 10
	# containers' roots first, then what skiff mounted
	for m in $(awk -v d="$T/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
		case $m in
		"$T"/sn/snapshots/*/fs) "$SKIFF" umount "$m" >/dev/null 2>&1 || umount -l "$m" ;;
		*) umount -l "$m" 2>/dev/null ;;
		esac
	done
}
trap '_c_cleanup; _n_cleanup; _t_cleanup' EXIT
