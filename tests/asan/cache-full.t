#!/usr/bin/env bash
# tests/cache-full.t against skiffd built with ASan+UBSan
# (build-asan/skiffd): fills failing for lack of room, readers waiting on
# them and the episode's bookkeeping run sanitized.
SKIFF_SANITIZED=1 exec bash "$(dirname "$0")/../cache-full.t"
