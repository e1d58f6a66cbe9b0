#!/usr/bin/env bash
# Everything `make run` and `make test` need on a fresh Debian 12 machine, installed only when
# missing, so a second run takes a second.
#
#   tools/install.sh python    the virtualenv (.venv) with the pinned Python packages
#   tools/install.sh system    Debian packages of the local test stack (needs root or sudo)
#   tools/install.sh cluster   the Kubernetes control plane built from Go modules (tools/cluster)
#   tools/install.sh kaniko    the kaniko executor the test stack's process node runs (tools/kaniko)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
stamps=.stamps
mkdir -p "$stamps"

# command -> Debian package providing it
declare -A system_packages=(
  [initdb]=postgresql [redis-server]=redis-server [docker-registry]=docker-registry
  [buildah]=buildah [skopeo]=skopeo [busybox]=busybox-static [htpasswd]=apache2-utils
  [openssl]=openssl [git]=git [go]=golang-go [chromium]=chromium
  [ssh]=openssh-client [/usr/sbin/sshd]=openssh-server  # sshd: outside a user's PATH
)

install_python() {
  # Re-install only when a requirements file changed since the last install.
  local stamp="$stamps/venv-$( (cat requirements.txt requirements-test.txt; $python --version) | sha256sum | cut -c1-12)"
  [[ -f "$stamp" && -x .venv/bin/python ]] && return
  # pip is quiet: say what is going on, or a first `make run` looks stuck for a minute.
  if [[ -x .venv/bin/python ]]; then
    echo "install.sh: updating the Python packages in .venv (the requirements changed)…" >&2
  else
    echo "install.sh: creating .venv with $python…" >&2
    "$python" -m venv .venv
    echo "install.sh: installing the Python packages into .venv (first run, about a minute)…" >&2
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
  rm -f "$stamps"/venv-*
  touch "$stamp"
  echo "install.sh: Python packages done" >&2
}

install_system() {
  local missing=()
  for cmd in "${!system_packages[@]}"; do
    # PostgreSQL puts its server programs outside PATH.
    if [[ $cmd == initdb ]]; then
      compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
      continue
    fi
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${system_packages[$cmd]}")
  done
  # The browser tests' screenshots need a font; it provides no command to look for.
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
  ((${#missing[@]})) || return 0
  if [[ " ${missing[*]} " == *" golang-go "* ]]; then
    echo "install.sh: Go is missing; install Go 1.26 (https://go.dev/dl) — Debian's golang-go is too old to build Kubernetes 1.36" >&2
    exit 1
  fi
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  echo "install.sh: installing Debian packages: ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

install_cluster() {
  tools/cluster/build.sh >/dev/null
}

install_kaniko() {
  tools/kaniko/build.sh >/dev/null
}

for what in "${@:-python system cluster}"; do
  for w in $what; do "install_$w"; done
done
