#!/usr/bin/env bash
# Build OpenTofu and the Scaleway Terraform provider from their Go modules (docs/sandbox.md, "OpenTofu offline") and
# lay out the offline filesystem mirror the infra tests init against.
#
# Incremental: a binary already in the cache at the pinned version is kept, so the second run takes
# about a second. Versions come from tools/tofu/go.mod and tools/scaleway-provider/go.mod (one tools
# module per tool: they must not share minimal version selection).
#
# Output (all under .cache/infra/, git-ignored):
#   bin/tofu-<version>, bin/tofu -> tofu-<version>
#   bin/terraform-provider-scaleway_v<version>
#   mirror/<registry-host>/scaleway/scaleway/<version>/linux_amd64/terraform-provider-scaleway_v<version>
#   tofurc            CLI config: filesystem mirror only, no direct {} block, so init is fully offline
#   env.sh            `source` it to get PATH and TF_CLI_CONFIG_FILE
#   logs/*.time       /usr/bin/time -v output of each cold build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${K3SMIG_INFRA_CACHE:-$ROOT/.cache/infra}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
MIRROR="$CACHE/mirror"
mkdir -p "$BIN" "$LOGS" "$MIRROR"

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:--mod=mod}"

module_version() {  # module_version <tools dir> <module path>
  go list -C "$ROOT/tools/$1" -m -f '{{.Version}}' "$2"
}

timed() {  # timed <log name> <command…>: nice'd (the machine is shared), timed when /usr/bin/time exists
  local name="$1"; shift
  local start=$SECONDS
  if [ -x /usr/bin/time ]; then
    nice -n 10 /usr/bin/time -v -o "$LOGS/$name.time" "$@"
  else
    nice -n 10 "$@"
  fi
  echo "build-infra: $name built in $((SECONDS - start)) s" >&2
}

TOFU_VERSION="$(module_version tofu github.com/opentofu/opentofu)"
PROVIDER_VERSION="$(module_version scaleway-provider github.com/scaleway/terraform-provider-scaleway/v2)"
PROVIDER_PLAIN="${PROVIDER_VERSION#v}"

tofu_bin="$BIN/tofu-$TOFU_VERSION"
if [ -x "$tofu_bin" ] && TF_CLI_CONFIG_FILE=/dev/null "$tofu_bin" version 2>/dev/null | grep -qx "OpenTofu ${TOFU_VERSION}"; then
  echo "build-infra: tofu $TOFU_VERSION cached" >&2
else
  # version.dev=no drops the "-dev" suffix the binary reports otherwise.
  timed "tofu-$TOFU_VERSION" go build -C "$ROOT/tools/tofu" -trimpath \
    -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    -o "$tofu_bin" github.com/opentofu/opentofu/cmd/tofu
fi
ln -sfn "tofu-$TOFU_VERSION" "$BIN/tofu"

provider_bin="$BIN/terraform-provider-scaleway_v$PROVIDER_PLAIN"
if [ -x "$provider_bin" ]; then
  echo "build-infra: scaleway provider $PROVIDER_VERSION cached" >&2
else
  timed "terraform-provider-scaleway-$PROVIDER_VERSION" go build -C "$ROOT/tools/scaleway-provider" -trimpath \
    -ldflags "-s -w -X github.com/scaleway/terraform-provider-scaleway/v2/version.Version=$PROVIDER_PLAIN" \
    -o "$provider_bin" github.com/scaleway/terraform-provider-scaleway/v2
fi

# OpenTofu and Terraform assume different default registry hosts for source = "scaleway/scaleway";
# lay out both so either CLI finds the provider.
for host in registry.opentofu.org registry.terraform.io; do
  dir="$MIRROR/$host/scaleway/scaleway/$PROVIDER_PLAIN/linux_amd64"
  mkdir -p "$dir"
  ln -f "$provider_bin" "$dir/terraform-provider-scaleway_v$PROVIDER_PLAIN" 2>/dev/null \
    || cp -f "$provider_bin" "$dir/terraform-provider-scaleway_v$PROVIDER_PLAIN"
done

cat > "$CACHE/tofurc" <<EOF
provider_installation {
  filesystem_mirror {
    path = "$MIRROR"
  }
}
EOF

cat > "$CACHE/env.sh" <<EOF
export PATH="$BIN:\$PATH"
export TF_CLI_CONFIG_FILE="$CACHE/tofurc"
EOF

echo "build-infra: ready — source $CACHE/env.sh" >&2
