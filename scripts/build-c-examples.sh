#!/usr/bin/env bash
# Builds the C example projections (examples/c/<name>/projection.c) with the
# C SDK (sdk/c) into components at target/guests/c/<name>.wasm.
#
# Tools, installed when missing:
# - clang, lld, wasi-libc and clang's wasm32 runtime from Debian (apt-get;
#   needs root): about 20 s;
# - wit-bindgen-cli 0.63.0 from crates.io (`cargo install`, into
#   $CARGO_HOME/bin so that later runs on the machine reuse it), with its C
#   generator only (no registry ships it prebuilt): about 5 min
#   on 2 shared cores (293 s measured) where all its generators took about 7 min; skipped when that
#   version is on PATH, in $CARGO_HOME/bin or in target/tools/cargo/bin;
# - jco 1.35.0 from npm, the lock file scripts/js-tools shares with
#   scripts/build-js-examples.sh (into target/tools/js, skipped when that
#   script already installed it).
#
# Idempotent: a module is rebuilt only when its inputs (the example, the SDK,
# the WIT contract, the tool versions) changed.
#
#   ./scripts/build-c-examples.sh                 # all examples
#   ./scripts/build-c-examples.sh order-totals
#   ./scripts/build-c-examples.sh --test          # and run the native tests:
#       the SDK's JSON tests, each example's tests against
#       examples/events, and the `projector new --lang c` template
#   FORCE=1 ./scripts/build-c-examples.sh         # rebuild even if unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

WIT_BINDGEN_VERSION=0.63.0
out_dir="$root/target/guests/c"
tools="$root/target/tools"
run_tests=
names=()
for arg in "$@"; do
    case "$arg" in
        --test) run_tests=1 ;;
        *) names+=("$arg") ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }
elapsed() { awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $1 }"; }

# 1. clang for wasm32-wasi, from Debian.
clang_rt_ok() {
    local dir
    for dir in /usr/lib/llvm-*/lib/clang/*/lib/wasi; do
        [ -f "$dir/libclang_rt.builtins-wasm32.a" ] && return 0
    done
    return 1
}
if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null ||
    [ ! -f /usr/include/wasm32-wasi/stdlib.h ] || ! clang_rt_ok; then
    start=$(date +%s.%N)
    log "installing clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (apt-get)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs root to apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
    log "apt-get install took $(elapsed "$start") s"
fi

# 2. wit-bindgen-cli, pinned.
has_wit_bindgen() { "$1" --version 2>/dev/null | grep -q "^wit-bindgen-cli $WIT_BINDGEN_VERSION\b"; }
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
WIT_BINDGEN=
for candidate in "$(command -v wit-bindgen || true)" "$cargo_bin/wit-bindgen" "$tools/cargo/bin/wit-bindgen"; do
    if [ -n "$candidate" ] && has_wit_bindgen "$candidate"; then
        WIT_BINDGEN="$candidate"
        break
    fi
done
if [ -z "$WIT_BINDGEN" ]; then
    start=$(date +%s.%N)
    log "installing wit-bindgen-cli $WIT_BINDGEN_VERSION (cargo install, C generator only)"
    # `async` is a default feature without dependencies: kept, so the
    # generated C is what a default install generates. A lint wrapper set
    # for the workspace (.ci/run) must not lint this crate.
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
        cargo install --locked --quiet --no-default-features --features c,async \
        "wit-bindgen-cli@$WIT_BINDGEN_VERSION"
    WIT_BINDGEN="$cargo_bin/wit-bindgen"
    has_wit_bindgen "$WIT_BINDGEN" || { echo "wit-bindgen $WIT_BINDGEN_VERSION not found after install" >&2; exit 1; }
    log "cargo install wit-bindgen-cli took $(elapsed "$start") s"
fi
# The tests (runtime/tests/author_tools.rs) take the wit-bindgen this
# script vetted from one known place, wherever it was found.
if [ "$WIT_BINDGEN" != "$tools/cargo/bin/wit-bindgen" ]; then
    mkdir -p "$tools/cargo/bin"
    ln -sf "$WIT_BINDGEN" "$tools/cargo/bin/wit-bindgen"
fi

# 3. jco, from the same lock file as scripts/build-js-examples.sh.
js="$tools/js"
lock_sum="$(sha256sum "$root/scripts/js-tools/package.json" "$root/scripts/js-tools/package-lock.json" | sha256sum | cut -c1-64)"
if [ "$(cat "$js/.installed" 2>/dev/null || true)" != "$lock_sum" ] || [ ! -d "$js/node_modules" ]; then
    start=$(date +%s.%N)
    log "installing jco (npm ci of scripts/js-tools) into ${js#"$root"/}"
    command -v npm >/dev/null || { echo "npm is required (Node 20 or newer)" >&2; exit 1; }
    mkdir -p "$js"
    cp scripts/js-tools/package.json scripts/js-tools/package-lock.json "$js/"
    (cd "$js" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$js/.installed"
    log "npm ci took $(elapsed "$start") s"
fi
JCO="$js/node_modules/.bin/jco"
export WIT_BINDGEN JCO

# 4. The examples.
if [ "${#names[@]}" -eq 0 ]; then
    for dir in examples/c/*/; do
        [ -f "$dir/projection.c" ] && names+=("$(basename "$dir")")
    done
fi

# What a build reads: the example (tests excluded), the SDK, the WIT, the tools.
sources() {
    find "examples/c/$1" sdk/c/include sdk/c/src sdk/c/build-component.sh wit -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.wit' -o -name '*.sh' \) ! -name 'test*.c' |
        LC_ALL=C sort
}

mkdir -p "$out_dir"
for name in "${names[@]}"; do
    dir="examples/c/$name"
    [ -f "$dir/projection.c" ] || { echo "no $dir/projection.c" >&2; exit 1; }
    wasm="$out_dir/$name.wasm"
    stamp="$out_dir/$name.inputs"
    digest="$( {
        echo "wit-bindgen $WIT_BINDGEN_VERSION $lock_sum"
        clang --version | head -1
        sources "$name" | xargs sha256sum
    } | sha256sum | cut -d' ' -f1)"
    if [ -z "${FORCE:-}" ] && [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        echo "$wasm (up to date, $(stat -c %s "$wasm") bytes)"
        continue
    fi
    start=$(date +%s.%N)
    sdk/c/build-component.sh "$wasm.tmp" "$dir/projection.c"
    mv "$wasm.tmp" "$wasm"
    echo "$digest" >"$stamp"
    echo "$wasm ($(stat -c %s "$wasm") bytes, built in $(elapsed "$start") s)"
done

[ -n "$run_tests" ] || exit 0

# 5. Native tests, with the host's C compiler and the SDK's native backend.
cc="${CC:-cc}"
test_dir="$root/target/c-test"
mkdir -p "$test_dir"
cflags=(-std=c11 -O1 -g -Wall -Wextra -Werror -Isdk/c/include -Isdk/c/src)
sdk_native=(sdk/c/src/json.c sdk/c/src/projector.c sdk/c/src/native.c)

log "sdk/c JSON tests"
"$cc" "${cflags[@]}" sdk/c/tests/test_json.c sdk/c/src/json.c -o "$test_dir/test_json"
"$test_dir/test_json"

for name in "${names[@]}"; do
    dir="examples/c/$name"
    [ -f "$dir/test.c" ] || continue
    log "$dir tests"
    "$cc" "${cflags[@]}" "$dir"/*.c "${sdk_native[@]}" -o "$test_dir/test_$name"
    case "$name" in
        order-totals) events=orders ;;
        account-balances) events=accounts ;;
        *) events="$name" ;;
    esac
    # Warnings the projection logs go to stderr; keep the output short.
    "$test_dir/test_$name" "examples/events/$events.jsonl" "examples/events/$events.expected.json" \
        2>"$test_dir/test_$name.log" || { cat "$test_dir/test_$name.log" >&2; exit 1; }
done

# The template, as `projector new NAME --lang c` lays it out: the SDK (less
# the template) in sdk/, the WIT in wit/, {{name}} replaced.
log "sdk/c/template, built as a new project"
project="$test_dir/template-project"
rm -rf "$project"
mkdir -p "$project/sdk" "$project/wit"
cp -r sdk/c/template/. "$project/"
(cd sdk/c && tar cf - --exclude=./template .) | (cd "$project/sdk" && tar xf -)
cp wit/*.wit "$project/wit/"
grep -rl '{{name}}' "$project" | xargs sed -i 's/{{name}}/my-counter/g'
start=$(date +%s.%N)
(cd "$project" && ./build.sh)
[ -f "$project/build/my-counter.wasm" ] || { echo "the template built no build/my-counter.wasm" >&2; exit 1; }
echo "$project/build/my-counter.wasm ($(stat -c %s "$project/build/my-counter.wasm") bytes, built in $(elapsed "$start") s)"
(cd "$project" && CC="$cc" ./test.sh)
