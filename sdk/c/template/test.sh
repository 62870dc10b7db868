#!/usr/bin/env bash
# Runs the unit tests (test.c) natively, with the host's C compiler
# (CC, default cc) and the SDK's in-memory backend.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
"${CC:-cc}" -std=c11 -g -Wall -Wextra -Isdk/include -Isdk/src \
    projection.c test.c sdk/src/json.c sdk/src/projector.c sdk/src/native.c \
    -o build/test
./build/test
