#!/usr/bin/env bash
# Builds the kaniko executor the test stack's process node runs (tests/localstack/process_node.py)
# from the module pinned in this folder, into a cache outside the repository keyed by that pin and
# the Go version, as tools/cluster/build.sh does for the control plane. A second run with the same
# pin does nothing. Prints the executor's path on its last line.
#
# The pin is kaniko's last upstream release (GoogleContainerTools, archived in 2025): the Go
# module proxy this project can reach does not serve the maintained fork's module
# (github.com/osscontainertools/kaniko: 403 for every version). The fork keeps the executor's
# flags, so the Job the product creates is the same.
#
#   GITOPS_UI_KANIKO_EXECUTOR=/path   use this prebuilt executor instead (nothing is built)
#   GITOPS_UI_CACHE=/dir              cache root (default ~/.cache/gitops-ui)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

if [[ -n "${GITOPS_UI_KANIKO_EXECUTOR:-}" ]]; then
  [[ -x "$GITOPS_UI_KANIKO_EXECUTOR" ]] || { echo "GITOPS_UI_KANIKO_EXECUTOR: $GITOPS_UI_KANIKO_EXECUTOR is not an executable" >&2; exit 1; }
  echo "$GITOPS_UI_KANIKO_EXECUTOR"
  exit 0
fi

version="$(cd "$here" && go list -m -f '{{.Version}}' github.com/GoogleContainerTools/kaniko)"
key="$( (go version; cat "$here"/build.sh "$here"/go.mod "$here"/go.sum) | sha256sum | cut -c1-12)"
cache="${GITOPS_UI_CACHE:-$HOME/.cache/gitops-ui}"
out="$cache/kaniko-$version-$key"

if [[ -x "$out/executor" ]]; then
  echo "$out/executor"
  exit 0
fi
mkdir -p "$out"
# Two test processes may ask at once: one builds, the other waits for it.
exec 9>"$out/.lock"
flock 9
if [[ ! -x "$out/executor" ]]; then
  echo "[kaniko build] building the kaniko executor $version (a few minutes, once)" >&2
  t0=$SECONDS
  (cd "$here" && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
    go build -ldflags "-s -w -X github.com/GoogleContainerTools/kaniko/pkg/version.version=$version" -o "$out/executor.tmp.$$" github.com/GoogleContainerTools/kaniko/cmd/executor) >&2
  mv "$out/executor.tmp.$$" "$out/executor"
  echo "[kaniko build] built in $((SECONDS - t0)) s" >&2
fi
echo "$out/executor"
