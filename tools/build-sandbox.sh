#!/usr/bin/env bash
# Build the local Kubernetes sandbox's binaries from upstream Go modules (see docs/sandbox.md).
#
# Why a script and not `go install`: k8s.io/kubernetes and go.etcd.io/etcd/server/v3 carry `replace`
# directives, which `go install pkg@version` refuses; so each tool group has a tools module under
# tools/<group>/ (go.mod + go.sum only, no Go source) and we `go build` upstream main packages in it.
#
# Usage:
#   tools/build-sandbox.sh                build what is missing or stale (incremental, seconds when warm)
#   tools/build-sandbox.sh regen [group]  regenerate tools/<group>/go.mod+go.sum from the pinned versions
#   tools/build-sandbox.sh bin-dir        print the folder that holds the binaries
#   tools/build-sandbox.sh check          exit 0 when every binary is present and matches its stamp
#
# Environment: K8S_VERSION, ETCD_VERSION, KWOK_VERSION (pins), SANDBOX_BIN_DIR (output folder),
# SANDBOX_GROUPS (default "kube etcd kwok kubectl"), SANDBOX_NICE (default "nice -n 10").
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${SANDBOX_BIN_DIR:-$ROOT/.cache/sandbox/bin/$K8S_VERSION}
GROUPS_TO_BUILD=${SANDBOX_GROUPS:-kube etcd kwok kubectl}
read -r -a NICE <<<"${SANDBOX_NICE:-nice -n 10}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"

# Upstream's release flags (hack/lib/golang.sh): static, no test hooks, no gRPC tracing.
BUILD_FLAGS=(-trimpath -tags=selinux,notest,grpcnotrace)
STAGING_VERSION="v0.${K8S_VERSION#v1.}"   # k8s v1.X.Y <-> staging modules v0.X.Y (kubernetes#79384)

log() { printf '[build-sandbox] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

group_module() { case $1 in kube | kubectl) echo kube ;; *) echo "$1" ;; esac; }

group_binaries() {
  case $1 in
    kube) echo kube-apiserver kube-controller-manager kube-scheduler ;;
    kubectl) echo kubectl ;;
    etcd) echo etcd ;;
    kwok) echo kwok ;;
    *) die "unknown group '$1' (expected kube, kubectl, etcd or kwok)" ;;
  esac
}

group_packages() {
  case $1 in
    kube) echo k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler ;;
    kubectl) echo k8s.io/kubernetes/cmd/kubectl ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
  esac
}

# The version stamps both version packages read, so /version and `--version` report the release, not
# v0.0.0-master. buildDate is the release's commit time (from the proxy), so the flags stay
# reproducible and a warm rebuild does not relink.
kube_ldflags() {
  local minor date
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  date=$(go -C "$ROOT/tools/kube" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "$flags"
}

group_ldflags() {
  case $1 in
    kube | kubectl) kube_ldflags ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" ;;
    *) echo "-s -w" ;;
  esac
}

# The stamp records everything a binary depends on: pins, toolchain, flags and the module files.
group_key() {
  local mod
  mod=$(group_module "$1")
  {
    echo "$1 $K8S_VERSION $ETCD_VERSION $KWOK_VERSION $(go env GOVERSION) ${BUILD_FLAGS[*]}"
    group_ldflags "$1"
    cat "$ROOT/tools/$mod/go.mod" "$ROOT/tools/$mod/go.sum"
  } | sha256sum | cut -d' ' -f1
}

# Every file a group provides: its binaries, plus kwok's stage and CRD files.
group_files() {
  group_binaries "$1" | tr ' ' '\n'
  if [[ $1 == kwok ]]; then
    local f
    for f in "${KWOK_DATA[@]}"; do echo "kwok-data/${f##*/}"; done
  fi
}

group_is_fresh() {
  local stamp="$BIN_DIR/.stamp-$1" f
  [[ -f $stamp ]] || return 1
  [[ $(head -n1 "$stamp") == "key $(group_key "$1")" ]] || return 1
  for f in $(group_files "$1"); do grep -q "  $f\$" "$stamp" || return 1; done
  (cd "$BIN_DIR" && tail -n +2 "$stamp" | sha256sum --quiet -c - >/dev/null 2>&1)
}

build_group() {
  local group=$1 mod tmp start bins
  mod=$(group_module "$group")
  [[ -f $ROOT/tools/$mod/go.mod ]] || regen "$mod"
  if group_is_fresh "$group"; then
    log "$group: up to date ($(group_binaries "$group"))"
    return 0
  fi
  read -r -a bins <<<"$(group_binaries "$group")"
  tmp="$BIN_DIR/.tmp-$group"
  rm -rf "$tmp" && mkdir -p "$tmp"
  start=$(date +%s)
  log "$group: building ${bins[*]} from tools/$mod ..."
  # One binary: name it explicitly (Go would call etcd's "server"); several: go names them by package.
  local out="$tmp/"
  [[ ${#bins[@]} == 1 ]] && out="$tmp/${bins[0]}"
  # shellcheck disable=SC2046  # package lists are single words
  "${NICE[@]}" go -C "$ROOT/tools/$mod" build "${BUILD_FLAGS[@]}" -ldflags "$(group_ldflags "$group")" \
    -o "$out" $(group_packages "$group")
  local b
  for b in "${bins[@]}"; do
    [[ -x $tmp/$b ]] || die "$group: go build produced no $b (got: $(ls "$tmp"))"
    mv -f "$tmp/$b" "$BIN_DIR/$b"
  done
  rmdir "$tmp"
  [[ $group == kwok ]] && copy_kwok_data
  local files
  mapfile -t files < <(group_files "$group")
  { echo "key $(group_key "$group")"; (cd "$BIN_DIR" && sha256sum "${files[@]}"); } >"$BIN_DIR/.stamp-$group"
  log "$group: built in $(($(date +%s) - start))s"
}

# kwok's controller has no built-in stages (kwokctl generates them) and needs the Exec CRD to accept
# per-pod Exec objects: copy those YAML files of the very kwok release we built into kwok-data/.
KWOK_DATA=(stage/node/fast/node-initialize.yaml stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml
  crd/bases/kwok.x-k8s.io_execs.yaml)

copy_kwok_data() {
  local src f
  src=$(go -C "$ROOT/tools/kwok" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$BIN_DIR/kwok-data"
  for f in "${KWOK_DATA[@]}"; do
    install -m 0644 "$src/kustomize/$f" "$BIN_DIR/kwok-data/${f##*/}"
  done
}

# --- go.mod generation ------------------------------------------------------------------------------

regen_kube() {
  local dir=$ROOT/tools/kube gomod godebug m
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f $gomod ]] || die "cannot download k8s.io/kubernetes@$K8S_VERSION from the module proxy"
  rm -f "$dir/go.mod" "$dir/go.sum" && mkdir -p "$dir"
  (cd "$dir" && go mod init k3smig/tools/kube 2>/dev/null && go mod edit -go=1.26.0)
  godebug=$(sed -n 's/^godebug \(default=.*\)$/\1/p' "$gomod")
  [[ -n $godebug ]] && go -C "$dir" mod edit -godebug="$godebug"
  # One replace per staging module, read from the release's own go.mod (the list drifts by minor).
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod"); do
    go -C "$dir" mod edit -replace="$m=$m@$STAGING_VERSION"
  done
  go -C "$dir" get -tool $(for p in $(group_packages kube) $(group_packages kubectl); do echo "$p@$K8S_VERSION"; done)
  go -C "$dir" mod tidy
}

regen_etcd() {
  local dir=$ROOT/tools/etcd
  rm -f "$dir/go.mod" "$dir/go.sum" && mkdir -p "$dir"
  (cd "$dir" && go mod init k3smig/tools/etcd 2>/dev/null && go mod edit -go=1.26.0)
  # server/v3 replaces go.etcd.io/etcd/api/v3 (and friends) with ../api; replaces only apply in the
  # main module, so pin the sibling modules at the same release here.
  local m
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go -C "$dir" mod edit -replace="go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$ETCD_VERSION"
  done
  go -C "$dir" get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go -C "$dir" mod tidy
}

regen_kwok() {
  local dir=$ROOT/tools/kwok
  rm -f "$dir/go.mod" "$dir/go.sum" && mkdir -p "$dir"
  (cd "$dir" && go mod init k3smig/tools/kwok 2>/dev/null && go mod edit -go=1.26.0)
  go -C "$dir" get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # Align shared dependencies on the kube module's versions (upgrades only), so client-go and friends
  # compile once for both modules: the Go build cache reuses a package only if its whole import
  # closure has the same versions.
  if [[ -f $ROOT/tools/kube/go.mod ]]; then
    local ups
    ups=$(join <(go -C "$dir" list -m -f '{{.Path}} {{.Version}}' all | sort) \
      <(go -C "$ROOT/tools/kube" list -m -f '{{.Path}} {{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}' all | sort) |
      while read -r path have want; do
        [[ -n $want && $have != "$want" && $path != k3smig/* ]] || continue
        [[ $(printf '%s\n%s\n' "$have" "$want" | sort -V | tail -n1) == "$want" ]] && echo "$path@$want"
      done)
    # shellcheck disable=SC2086
    [[ -n $ups ]] && go -C "$dir" get $ups
  fi
  go -C "$dir" mod tidy
}

regen() {
  log "regenerating tools/$1/go.mod"
  case $1 in
    kube) regen_kube ;;
    etcd) regen_etcd ;;
    kwok) regen_kwok ;;
    *) die "unknown module '$1'" ;;
  esac
}

main() {
  command -v go >/dev/null || die "go is not installed (need Go >= 1.26 with access to the module proxy)"
  case ${1:-build} in
    bin-dir) echo "$BIN_DIR" ;;
    regen) for m in ${2:-kube etcd kwok}; do regen "$m"; done ;;
    check)
      local g
      for g in $GROUPS_TO_BUILD; do group_is_fresh "$g" || { log "$g: missing or stale"; exit 1; }; done
      ;;
    build)
      mkdir -p "$BIN_DIR"
      local g
      for g in $GROUPS_TO_BUILD; do build_group "$g"; done
      log "binaries in $BIN_DIR"
      ;;
    *) die "unknown command '$1' (build, regen, bin-dir, check)" ;;
  esac
}

main "$@"
