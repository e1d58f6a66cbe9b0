#!/usr/bin/env bash
# Builds the Go binaries the local stack runs (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) and the renderers the engine runs (helm, kustomize, jsonnet) from the
# modules pinned in this folder, into a cache outside the repository keyed by those pins and the
# Go version. A second run with the same pins does nothing; when one pin changes, the binaries
# whose own pins did not change are taken from the previous cache instead of being rebuilt.
# Prints the bin directory on its last line.
#
#   GITOPS_UI_CLUSTER_BIN=/dir   use prebuilt binaries from /dir instead (nothing is built)
#   GITOPS_UI_CACHE=/dir         cache root (default ~/.cache/gitops-ui)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm kustomize jsonnet)

if [[ -n "${GITOPS_UI_CLUSTER_BIN:-}" ]]; then
  for t in "${tools[@]}"; do
    [[ -x "$GITOPS_UI_CLUSTER_BIN/$t" ]] || { echo "GITOPS_UI_CLUSTER_BIN: $GITOPS_UI_CLUSTER_BIN/$t missing" >&2; exit 1; }
  done
  echo "$GITOPS_UI_CLUSTER_BIN"
  exit 0
fi

kube_version=v1.36.3   # keep equal to k8s.io/kubernetes in kube/go.mod
key="$( (go version; cat "$here"/build.sh "$here"/*/go.mod "$here"/*/go.sum) | sha256sum | cut -c1-12)"
cache="${GITOPS_UI_CACHE:-$HOME/.cache/gitops-ui}"
out="$cache/cluster-$kube_version-$key"
bin="$out/bin"

if [[ -f "$out/.complete" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"

export GOFLAGS="-trimpath -buildvcs=false"
export CGO_ENABLED=0
strip=(-s -w)
kube_ldflags="${strip[*]} -X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36 \
-X k8s.io/component-base/version.gitTreeState=clean"

step() { echo "[cluster build] $*" >&2; }
build() {  # module-dir output package [ldflags]
  local dir=$1 name=$2 pkg=$3 ldflags=${4:-"${strip[*]}"}
  if [[ -x "$bin/$name" ]]; then return; fi
  # What this one binary depends on: written next to it, so a later cache whose key changed
  # for another binary's sake links this one instead of spending minutes rebuilding it.
  local pin
  pin="$( (go version; echo "$pkg $ldflags $GOFLAGS $CGO_ENABLED"; cat "$here/$dir/go.mod" "$here/$dir/go.sum") | sha256sum | cut -c1-16)"
  local earlier
  for earlier in "$cache"/cluster-*/bin/"$name.pin"; do
    if [[ -f "$earlier" && "$(cat "$earlier")" == "$pin" && -x "${earlier%.pin}" ]]; then
      ln -f "${earlier%.pin}" "$bin/$name.tmp.$$" 2>/dev/null || cp "${earlier%.pin}" "$bin/$name.tmp.$$"
      mv "$bin/$name.tmp.$$" "$bin/$name"
      echo "$pin" > "$bin/$name.pin"
      step "reused $name from ${earlier%/bin/*}"
      return
    fi
  done
  step "building $name ($pkg)"
  local t0=$SECONDS
  (cd "$here/$dir" && go build -ldflags "$ldflags" -o "$bin/$name.tmp.$$" "$pkg") >&2
  mv "$bin/$name.tmp.$$" "$bin/$name"
  echo "$pin" > "$bin/$name.pin"
  step "built $name in $((SECONDS - t0)) s"
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build helm helm helm.sh/helm/v4/cmd/helm
build kustomize kustomize sigs.k8s.io/kustomize/kustomize/v5
build jsonnet jsonnet github.com/google/go-jsonnet/cmd/jsonnet

# KWOK needs stages to move nodes and pods along; use the module's own "fast" set, rendered
# with the kustomize we just built, so pods go Running/Ready at once.
kwok_dir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
"$bin/kustomize" build "$kwok_dir/kustomize/stage/fast" > "$out/kwok-stages.yaml.tmp.$$"
mv "$out/kwok-stages.yaml.tmp.$$" "$out/kwok-stages.yaml"

touch "$out/.complete"
echo "$bin"
