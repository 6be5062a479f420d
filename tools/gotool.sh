#!/usr/bin/env bash
# Shared by tools/build-external-dns.sh and tools/build-traefik.sh: build one upstream main package from
# its pinned tools module (tools/<name>/go.mod + go.sum, no Go source) into .cache/tools/bin, once.
#
# Incremental: the stamp .cache/tools/bin/.<name>.stamp holds a key over everything the binary depends
# on (go.mod, go.sum, toolchain, flags) and the binary's sha256; a matching stamp means nothing to do.
# The build is nice'd (the machine is shared) and timed with /usr/bin/time -v into .cache/tools/logs/.
#
# Usage (sourced): build_go_tool <name> <main package> <ldflags> [go build flags…]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/.cache/tools/bin"
LOG_DIR="$ROOT/.cache/tools/logs"

build_go_tool() {
  local name=$1 pkg=$2 ldflags=$3
  shift 3
  local mod="$ROOT/tools/$name" out="$BIN_DIR/$name" stamp="$BIN_DIR/.$name.stamp" key start
  command -v go >/dev/null || { echo "build-$name: Go is not installed (see scripts/install-system-deps.sh)" >&2; exit 1; }
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false -mod=readonly"
  key=$({ echo "$name $pkg $ldflags $* $(go -C "$mod" env GOVERSION)"; cat "$mod/go.mod" "$mod/go.sum"; } |
    sha256sum | cut -d' ' -f1)
  if [[ -x $out && -f $stamp && $(head -n1 "$stamp") == "key $key" ]] &&
    (cd "$BIN_DIR" && tail -n +2 "$stamp" | sha256sum --quiet -c - >/dev/null 2>&1); then
    echo "build-$name: up to date ($out)" >&2
    return 0
  fi
  mkdir -p "$BIN_DIR" "$LOG_DIR"
  start=$SECONDS
  echo "build-$name: building $pkg from tools/$name (first time only)…" >&2
  local timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -v -o "$LOG_DIR/$name.time")
  nice -n 10 "${timer[@]}" go -C "$mod" build -trimpath -ldflags "-s -w $ldflags" "$@" -o "$out.tmp" "$pkg"
  mv -f "$out.tmp" "$out"
  { echo "key $key"; (cd "$BIN_DIR" && sha256sum "$name"); } >"$stamp"
  echo "build-$name: built in $((SECONDS - start)) s -> $out" >&2
}
