#!/bin/sh
# Writes a `go build -overlay` file that makes the Go runtime's monotonic
# clock never read 0, and prints its path:
#
#   overlay="$(sdk/tools/clock-overlay.sh go OUT_DIR)"
#   GOOS=wasip1 GOARCH=wasm go build -overlay "$overlay" -buildmode=c-shared ...
#
# Why: the Projector host freezes the guest's clocks at 0 for determinism,
# and Go's runtime aborts at start-up when its monotonic clock reads 0
# (runtime/proc.go: throw("nanotime returning zero")), so the module cannot
# even be instantiated. The overlay adds 1 ns to every monotonic reading in
# runtime/os_wasip1.go (nanotime1); the clock stays frozen, at 1 ns. Nothing
# else changes. Harmless on a host whose frozen clock is not 0, where it is
# no longer needed; PROJECTOR_GO_CLOCK_PATCH=0 skips it (prints nothing).
set -eu
go="${1:?usage: clock-overlay.sh GO OUT_DIR}"
out="${2:?usage: clock-overlay.sh GO OUT_DIR}"
[ "${PROJECTOR_GO_CLOCK_PATCH:-1}" = 0 ] && exit 0
goroot="$(GOTOOLCHAIN=local "$go" env GOROOT)"
src="$goroot/src/runtime/os_wasip1.go"
[ -f "$src" ] || { echo "clock-overlay: $src not found" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
sed '/^func nanotime1() int64 {$/,/^}$/ s|^\treturn int64(time)$|\treturn int64(time) + 1 // never 0: Projector freezes clocks at 0|' \
    "$src" >"$out/os_wasip1.go.tmp"
if [ "$(grep -c 'never 0: Projector freezes clocks at 0' "$out/os_wasip1.go.tmp")" != 1 ]; then
    echo "clock-overlay: nanotime1 in $src does not look as expected (Go $("$go" env GOVERSION));" \
        "set PROJECTOR_GO_CLOCK_PATCH=0 if the host's frozen clock is not 0" >&2
    exit 1
fi
mv "$out/os_wasip1.go.tmp" "$out/os_wasip1.go"
printf '{"Replace":{"%s":"%s"}}\n' "$src" "$out/os_wasip1.go" >"$out/overlay.json"
echo "$out/overlay.json"
