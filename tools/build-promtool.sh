#!/usr/bin/env bash
# Build upstream promtool from its Go module into .cache/tools/bin (cached; a warm run takes no time).
# Debian's prometheus package builds promtool without the Kubernetes service discovery, so it rejects
# ordinary in-cluster configs (`kubernetes_sd_configs`); the upstream build checks them for real.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v0.316.0   # github.com/prometheus/prometheus module version (Prometheus 3.x)
BIN=.cache/tools/bin
STAMP="$BIN/.promtool-$VERSION"
if [ -x "$BIN/promtool" ] && [ -f "$STAMP" ]; then
  echo "promtool $VERSION: cached"; exit 0
fi
mkdir -p "$BIN"
echo "building promtool $VERSION from its Go module (first time only)…"
GOBIN="$PWD/$BIN" CGO_ENABLED=0 GOFLAGS=-trimpath nice -n 10 go install -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$VERSION"
touch "$STAMP"
"$BIN/promtool" --version | head -1
