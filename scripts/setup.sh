#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking
# skiff need. Idempotent and quiet when everything is present.
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config libzstd-dev libssl-dev libjansson-dev
	liburing-dev libcurl4-openssl-dev zlib1g-dev libsystemd-dev
	# fuzzing and sanitizers
	clang libclang-rt-14-dev
	# tests: TAP runner, image judge, test-tree tools
	perl erofs-utils attr acl libcap2-bin openssl util-linux e2fsprogs
	zstd skopeo jq curl bc procps
	# network backend tests: web server, registry, test servers (python3)
	nginx docker-registry apache2-utils python3 python3-jwt python3-cryptography
	# skiff convert tests: layered OCI images from a Debian root filesystem, tar
	debootstrap umoci tar gzip
	# containerd's remote snapshotter (Go, from Debian's Go packages) and
	# its tests: containerd, runc
	golang-go golang-github-containerd-containerd-dev golang-google-grpc-dev
	containerd runc
	# containerd bench: a link capped by tc in a network namespace
	iproute2
	# kernel tests: QEMU guest and its Linux 6.1 kernel (kernel-tests/)
	qemu-system-x86 busybox-static cpio linux-source-6.1 bc flex bison libelf-dev xz-utils
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: missing packages: ${missing[*]}; run as root to install" >&2
	exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# servers (nginx, docker-registry) are started by the tests on 127.0.0.1
# only: keep their packages from starting system services on install
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# a stale package list makes apt fail to find packages: refresh once
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
