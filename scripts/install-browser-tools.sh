#!/usr/bin/env bash
# Installs what the dashboard test (runtime/tests/dashboard.rs) drives:
#
# - Debian's `chromium` package (apt; as root), unless `chromium` is on PATH
#   or PROJECTOR_CHROMIUM names a browser binary;
# - playwright-core (pinned in scripts/browser-tools/package-lock.json) with
#   `npm ci` into target/tools/browser, again only when the lock file changes.
#   Playwright's own browser download is never used.
#
# Needs Node >= 20 and npm; reaches only Debian's archive and the npm registry.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/target/tools/browser"

log() { printf '==> %s\n' "$*" >&2; }

if [ -n "${PROJECTOR_CHROMIUM:-}" ]; then
    [ -x "$PROJECTOR_CHROMIUM" ] || { echo "PROJECTOR_CHROMIUM=$PROJECTOR_CHROMIUM is not an executable" >&2; exit 1; }
elif ! command -v chromium >/dev/null; then
    log "installing chromium (apt)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "chromium is missing: run 'sudo apt-get install chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

command -v node >/dev/null || { echo "node is required (Node 20 or newer)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }

mkdir -p "$TOOLS"
LOCK_SUM="$(sha256sum "$ROOT/scripts/browser-tools/package.json" "$ROOT/scripts/browser-tools/package-lock.json" | sha256sum | cut -c1-64)"
if [ "$(cat "$TOOLS/.installed" 2>/dev/null || true)" != "$LOCK_SUM" ] || [ ! -d "$TOOLS/node_modules/playwright-core" ]; then
    log "installing playwright-core into ${TOOLS#"$ROOT"/}"
    cp "$ROOT/scripts/browser-tools/package.json" "$ROOT/scripts/browser-tools/package-lock.json" "$TOOLS/"
    # --ignore-scripts: no postinstall may fetch a browser.
    (cd "$TOOLS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$LOCK_SUM" >"$TOOLS/.installed"
fi
