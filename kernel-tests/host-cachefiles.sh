#!/usr/bin/env bash
# host-cachefiles.sh DIR: the host half of guest-cachefiles.sh (run by
# tap-guest.sh --host before the guest boots). Builds the edge-case tree
# with 64K chunks into the OCI layout DIR/www/layout, tag `a`, which nginx
# inside the guest serves from its 9p view of this machine. The tree is
# reproducible (scripts/gen-edge-tree.sh), so the guest compares the
# served image with the tree it generates itself, and checks that its own
# build of that tree has the same manifest digest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SKIFF=${SKIFF:-$ROOT/build/skiff}
dir=${1:?usage: $0 DIR}

"$ROOT/scripts/gen-edge-tree.sh" "$dir/src"
"$SKIFF" build -q --chunk-size 64K "$dir/src" "$dir/www/layout:a"
# only the layout goes to the guest (the tree holds a 5 GiB sparse file)
rm -rf "$dir/src"
