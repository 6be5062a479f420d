#!/usr/bin/env bash
# System packages the tests use for real (never mocked).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
# Debian's promtool (built without Kubernetes discovery): the data phase must recognise that build
[ -x /usr/bin/promtool ] || need+=(prometheus)
# Ansible role tests: real containers (podman + runc) on an image built offline with debootstrap
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# The cutover's authoritative DNS server (RFC 2136 updates and zone transfers signed with TSIG)
[ -x /usr/sbin/knotd ] || need+=(knot)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# Backup role tests: restic (copied into the container) and nsenter (the S3 server in its network namespace)
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v go >/dev/null 2>&1 || { echo "Go >= 1.25.8 is needed to build the test tools (sops, promtool, tofu, traefik; external-dns fetches the approved go1.27.3 toolchain itself)"; exit 1; }
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
