#!/usr/bin/env bash
# Device check, run on a lent GPU machine (its own Python with a pip-installed PyTorch 2.x + CUDA): builds
# metaprobe (library, CLI, C++ tests, extension) against that torch, runs the C++ tests (CTest), installs the
# package and runs the Python suites that touch tensors, including the CUDA-vs-CPU comparisons that are skipped
# on machines without a GPU. The header-only dependencies that machine lacks (Eigen, nlohmann_json, Catch2,
# CLI11) travel in .devicekit/ (scripts/make-devicekit.sh; see docs/architecture.md).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
if [ -d .devicekit/usr ]; then cp -r .devicekit/usr/. /usr/; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch._C._GLIBCXX_USE_CXX11_ABI)" | tee -a "$OUT/gpu.txt"
B=/tmp/metaprobe-build
export METAPROBE_BUILD_DIR=$B CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
start=$(date +%s)
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v python3)" \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir 2>/dev/null || python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake"))')" \
  > "$OUT/configure.log" 2>&1 \
  || { tail -n 40 "$OUT/configure.log"; exit 1; }
# -k 0: report every translation unit that fails, not only the first.
cmake --build $B -- -k 0 > "$OUT/build.log" 2>&1
rc=$?; echo "configure+build rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
if [ $rc -ne 0 ]; then grep -E "error|FAILED" "$OUT/build.log" | head -n 40; exit $rc; fi
# The C++ tests run on the CPU (metaprobe's C++ links libtorch_cpu only; see cmake/MetaProbeTorch.cmake).
timeout 300 ctest --test-dir $B -j "$(nproc)" --output-on-failure > "$OUT/ctest.log" 2>&1
echo "ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -n 1))" | tee -a "$OUT/gpu.txt"
python3 -m pip install --no-build-isolation --no-deps --no-index -q . > "$OUT/install.log" 2>&1 \
  || { tail -n 40 "$OUT/install.log"; exit 1; }
# Which C++ runtimes the process loads (a second libstdc++ or OpenMP runtime is a classic source of crashes).
python3 -c "import torch, metaprobe; print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libstdc++' in l or 'libgomp' in l}))" \
  | tee -a "$OUT/gpu.txt"
cd tests/python
# TESTS narrows the run (e.g. TESTS="test_divergence.py test_scoring.py") when device time is short.
TESTS=${TESTS:-"test_errors.py test_divergence.py test_divergence_distributed.py test_io.py test_params.py test_lm.py
  test_probes_gen.py test_scoring.py test_meta.py test_backends.py test_readme.py"}
PYTHONUNBUFFERED=1 timeout 300 python3 -m pytest -q -p no:cacheprovider -rs $TESTS 2>&1 | tee "$OUT/pytest.log" | tail -n 40
exit ${PIPESTATUS[0]}
