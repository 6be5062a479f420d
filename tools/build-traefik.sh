#!/usr/bin/env bash
# Build the real Traefik from its Go module (github.com/traefik/traefik/v3, pinned in tools/traefik).
#
# Why: the cutover tests run Traefik with its kubernetesIngressNGINX provider against the sandbox target
# and read its API to prove the routers and middlewares phase 80 promised.
#
# Pinned at v3.6.12, not 3.7.x: every 3.7 release replaces github.com/traefik/traefik/dynamic/ext with a
# folder of its own repository (./pkg/config/dynamic/ext), a nested module the module zip leaves out and
# the proxy does not serve, so 3.7 cannot be built from its module without copying its source.
# Traefik has no build tags to leave providers or plugins out; the whole binary is compiled.
set -euo pipefail
# shellcheck source=tools/gotool.sh
source "$(dirname "${BASH_SOURCE[0]}")/gotool.sh"
export GOTOOLCHAIN=local
version=$(awk '$1 == "github.com/traefik/traefik/v3" {print $2; exit}' "$ROOT/tools/traefik/go.mod")
build_go_tool traefik github.com/traefik/traefik/v3/cmd/traefik \
  "-X github.com/traefik/traefik/v3/pkg/version.Version=${version#v}"
