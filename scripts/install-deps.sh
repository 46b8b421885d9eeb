#!/usr/bin/env bash
# Installs the Debian 12 packages that metaprobe's build, tests, benchmarks and demo need and that pip does not
# serve: compilers, build tools, the header-only C++ libraries, the fuzzer's clang and Chromium for the HTML
# check. Python packages (torch, transformers, …) come from PyPI into .venv (see the Makefile).
# Idempotent: when every package is already installed it does nothing and prints nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config
  clang libclang-rt-14-dev
  libeigen3-dev nlohmann-json3-dev catch2 libcli11-dev libbenchmark-dev
  python3-venv
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
