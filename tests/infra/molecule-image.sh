#!/usr/bin/env bash
# Build the Debian 12 image the Molecule scenarios converge on, from Debian packages only (no
# container registry): debootstrap a minbase root file system and import it into podman.
# Idempotent: an existing image is kept. Needs root, podman, runc and debootstrap.
set -euo pipefail
IMAGE="${K3SMIG_MOLECULE_IMAGE:-localhost/k3smig-host:bookworm}"
MIRROR="${K3SMIG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"

if podman image exists "$IMAGE"; then
  echo "molecule-image: $IMAGE present" >&2
  exit 0
fi
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase \
  --include=python3,python3-apt,python3-venv,systemd,sudo,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR" >&2
tar -C "$ROOTFS" -c . | podman import --change 'CMD ["sleep", "infinity"]' - "$IMAGE" >&2
echo "molecule-image: built $IMAGE" >&2
