#!/usr/bin/env bash
# Copies the header-only C++ dependencies a lent GPU machine lacks (it has no apt and no network) from this
# machine's Debian packages into .devicekit/usr/ (git-ignored): Eigen, nlohmann_json, Catch2 and CLI11 with their
# CMake configs. scripts/gpu-check.sh installs them there; name .devicekit in the device tool's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
rm -rf .devicekit && mkdir -p .devicekit
for pkg in libeigen3-dev nlohmann-json3-dev catch2 libcli11-dev; do
  dpkg -L "$pkg" | while read -r f; do
    case "$f" in /usr/share/doc/*|/usr/share/man/*) continue ;; esac
    if [ -f "$f" ]; then mkdir -p ".devicekit$(dirname "$f")"; cp -p "$f" ".devicekit$f"; fi
  done
done
du -sh .devicekit
