#!/usr/bin/env bash
# Installs every Debian 12 package that metaprobe's build, tests, benchmarks and demo need.
# Idempotent: when every package is already installed it does nothing and prints nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config
  clang libclang-rt-14-dev
  libtorch-dev python3-torch
  libopenblas0-pthread
  pybind11-dev python3-pybind11
  libeigen3-dev nlohmann-json3-dev catch2 libcli11-dev libbenchmark-dev
  python3 python3-dev python3-venv python3-pip python3-setuptools python3-wheel
  python3-numpy python3-pandas python3-matplotlib python3-scipy python3-tqdm
  python3-pytest python3-hypothesis
  python3-nbclient python3-nbformat python3-ipykernel
  chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
