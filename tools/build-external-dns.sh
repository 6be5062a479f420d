#!/usr/bin/env bash
# Build the real external-dns from its Go module (sigs.k8s.io/external-dns, pinned in tools/external-dns).
#
# Why: the cutover tests run two real external-dns instances (source and target owner ids) with the
# rfc2136 provider against a local authoritative DNS server, the stand-in for Scaleway DNS.
#
# v0.23.0 needs Go >= 1.27: the approved toolchain go1.27.3 comes from the Go module proxy (about 76 MB,
# once per machine), for this build only. Three of its pins are not served by the proxy (civogo v0.7.3 and
# two openshift pseudo-versions): tools/external-dns/go.mod replaces them with the nearest served
# versions; the rfc2136 provider and the Kubernetes sources we use do not touch them.
# external-dns has no build tags to leave providers out, so every provider is compiled.
set -euo pipefail
# shellcheck source=tools/gotool.sh
source "$(dirname "${BASH_SOURCE[0]}")/gotool.sh"
export GOTOOLCHAIN=go1.27.3
version=$(awk '$1 == "sigs.k8s.io/external-dns" {print $2; exit}' "$ROOT/tools/external-dns/go.mod")
build_go_tool external-dns sigs.k8s.io/external-dns \
  "-X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$version"
