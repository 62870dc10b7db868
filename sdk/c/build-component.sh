#!/usr/bin/env bash
# Builds a C projection into a Projector component:
#
#   build-component.sh OUT.wasm SOURCE.c [SOURCE.c ...] [-- EXTRA CLANG FLAGS]
#
# 1. `wit-bindgen c` generates the bindings of wit/projection.wit (a build
#    output, in a temporary folder);
# 2. clang compiles the sources with this SDK and wasi-libc into a core
#    module (wasm32-wasi, reactor);
# 3. `jco new --wasi-reactor` wraps it into a component with the WASI
#    preview1 reactor adapter.
#
# Tools, from the environment or these defaults:
#   CLANG=clang               Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
#   WASI_SYSROOT=/usr         where wasi-libc's include/wasm32-wasi and lib/wasm32-wasi are
#   WIT_BINDGEN=wit-bindgen   cargo install --locked wit-bindgen-cli@0.63.0
#   JCO=jco                   npm install @bytecodealliance/jco@1.35.0
#   PROJECTOR_WIT             the WIT folder; default: the first of ../wit (a
#                             project made by `projector new`) and ../../wit
#                             (the Projector repository) next to this SDK
#   CFLAGS=-O2
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLANG="${CLANG:-clang}"
WASI_SYSROOT="${WASI_SYSROOT:-/usr}"
WIT_BINDGEN="${WIT_BINDGEN:-wit-bindgen}"
JCO="${JCO:-jco}"
CFLAGS="${CFLAGS:--O2}"
if [ -z "${PROJECTOR_WIT:-}" ]; then
    for dir in "$sdk/../wit" "$sdk/../../wit"; do
        if [ -f "$dir/projection.wit" ]; then
            PROJECTOR_WIT="$(cd "$dir" && pwd)"
            break
        fi
    done
fi
[ -n "${PROJECTOR_WIT:-}" ] || { echo "no wit/projection.wit found: set PROJECTOR_WIT" >&2; exit 1; }

[ "$#" -ge 2 ] || { echo "usage: $0 OUT.wasm SOURCE.c... [-- CLANG FLAGS]" >&2; exit 2; }
out="$1"
shift
sources=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    sources+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
extra=("$@")

for tool in "$CLANG" "$WIT_BINDGEN" "$JCO"; do
    command -v "$tool" >/dev/null || { echo "$tool not found (see the comment at the top of $0)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# wit-bindgen names each file it writes on stderr: show that only on failure.
if ! "$WIT_BINDGEN" c "$PROJECTOR_WIT" --world projection --out-dir "$work/gen" >"$work/wit-bindgen.log" 2>&1; then
    cat "$work/wit-bindgen.log" >&2
    exit 1
fi
# shellcheck disable=SC2086 # CFLAGS is a list of flags
"$CLANG" --target=wasm32-wasi --sysroot="$WASI_SYSROOT" -mexec-model=reactor \
    -std=c11 $CFLAGS -Wall -Wextra -Wno-unused-parameter \
    -I"$sdk/include" -I"$sdk/src" -I"$work/gen" \
    "${sources[@]}" \
    "$sdk/src/json.c" "$sdk/src/projector.c" "$sdk/src/wasm.c" \
    "$work/gen/projection.c" "$work/gen/projection_component_type.o" \
    -Wl,--strip-debug ${extra[@]+"${extra[@]}"} \
    -o "$work/core.wasm"
mkdir -p "$(dirname "$out")"
"$JCO" new "$work/core.wasm" --wasi-reactor -o "$work/component.wasm" >/dev/null
mv "$work/component.wasm" "$out"
