#!/usr/bin/env bash
# Installs Quix Streams (a Kafka Streams-like Python library with RocksDB
# state), the peer scenario B of projector-bench measures against, into a
# venv under target/tools/quix, pinned with all its dependencies in
# scripts/quix/requirements.txt. Reinstalls only when that file changes.
# Prints the venv's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/target/tools/quix"
REQUIREMENTS="$ROOT/scripts/quix/requirements.txt"

SUM="$(sha256sum "$REQUIREMENTS" | cut -c1-64)"
if [ "$(cat "$VENV/.installed" 2>/dev/null || true)" != "$SUM" ] || [ ! -x "$VENV/bin/python" ]; then
    echo "==> installing quixstreams into ${VENV#"$ROOT"/}" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >&2
    echo "$SUM" >"$VENV/.installed"
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("quixstreams", m.version("quixstreams"))' >&2
echo "$VENV/bin/python"
