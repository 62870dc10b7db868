#!/usr/bin/env bash
# Installs moto's S3-compatible server (PyPI `moto[server]`) into a venv
# under target/tools, for the tests of the shared snapshot store against a
# real S3 API over HTTP. Prints the path of its `moto_server` command.
set -euo pipefail
cd "$(dirname "$0")/.."

version="5.2.5"
dir="target/tools/moto-$version"
bin="$dir/bin/moto_server"
if [ ! -x "$bin" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$version" >&2
fi
echo "$PWD/$bin"
