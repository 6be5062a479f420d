#!/usr/bin/env bash
# Build the real `sops` CLI from the pinned tools module (tools/sops/go.mod + go.sum).
#
# Why: the SOPS-compatibility tests of k3smig_lib/core/sealing.py must prove that a file we seal
# decrypts with the real sops, and that a file sops encrypts decrypts with our code. sops is not
# packaged in the registries we can reach, so it is built from its Go module, pinned by go.sum.
#
# Idempotent: does nothing when .cache/tools/bin/sops already reports the pinned version.
# Usage: tools/build-sops.sh            (from anywhere; output in <repo>/.cache/tools/bin/sops)
#        K3SMIG_SOPS_FORCE=1 tools/build-sops.sh   to rebuild anyway
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module_dir="$repo/tools/sops"
bin_dir="$repo/.cache/tools/bin"
out="$bin_dir/sops"

# The pinned version is whatever go.mod requires: one source of truth.
version="$(awk '$1 == "github.com/getsops/sops/v3" {print $2}' "$module_dir/go.mod")"
if [[ -z "$version" ]]; then
  echo "build-sops: no github.com/getsops/sops/v3 requirement in $module_dir/go.mod" >&2
  exit 1
fi
want="sops ${version#v}"

if [[ -x "$out" && -z "${K3SMIG_SOPS_FORCE:-}" ]]; then
  have="$("$out" --disable-version-check --version 2>/dev/null | head -n 1 || true)"
  if [[ "$have" == "$want"* ]]; then
    echo "build-sops: $out is already $want, nothing to do"
    exit 0
  fi
  echo "build-sops: $out reports '${have:-nothing}', rebuilding $want"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-sops: the Go toolchain is missing (go >= 1.25 is needed to build sops $version)" >&2
  exit 1
fi

mkdir -p "$bin_dir"
start=$(date +%s)
cd "$module_dir"
# -mod=readonly: go.mod/go.sum are the pin, a build must never rewrite them.
nice -n 10 go build -mod=readonly -trimpath \
  -ldflags "-s -w" \
  -o "$out.tmp" github.com/getsops/sops/v3/cmd/sops
mv "$out.tmp" "$out"
echo "build-sops: built $("$out" --disable-version-check --version | head -n 1) in $(( $(date +%s) - start ))s -> $out"
