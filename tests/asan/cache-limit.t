#!/usr/bin/env bash
# tests/cache-limit.t against skiffd built with ASan+UBSan (build-asan/skiffd):
# the evictor's thread, its walks and its punches under readers run sanitized.
SKIFF_SANITIZED=1 exec bash "$(dirname "$0")/../cache-limit.t"
