#!/usr/bin/env bash
# tests/gc.t against skiffd built with ASan+UBSan (build-asan/skiffd): the
# cache directory walk, the in-use names and the removals run sanitized.
SKIFF_SANITIZED=1 exec bash "$(dirname "$0")/../gc.t"
