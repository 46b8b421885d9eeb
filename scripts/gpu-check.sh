#!/usr/bin/env bash
# Device check, run on a lent GPU machine (its own Python with a pip-installed PyTorch 2.x + CUDA): builds and
# installs metaprobe against that torch (the "other torch" build path), then runs the Python suites that touch
# tensors, including the CUDA-vs-CPU divergence comparison that is skipped on machines without a GPU.
# Header-only dependencies that machine lacks (Eigen, nlohmann_json) travel in .devicekit/ (see docs/architecture.md).
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
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DMETAPROBE_BUILD_TESTS=OFF > "$OUT/configure.log" 2>&1 \
  || { tail -n 40 "$OUT/configure.log"; exit 1; }
# -k 0: report every translation unit that fails, not only the first.
cmake --build $B --target _core -- -k 0 > "$OUT/build.log" 2>&1
rc=$?; echo "configure+build rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
if [ $rc -ne 0 ]; then grep -E "error|FAILED" "$OUT/build.log" | head -n 40; exit $rc; fi
python3 -m pip install --no-build-isolation --no-deps --no-index -q . > "$OUT/install.log" 2>&1 \
  || { tail -n 40 "$OUT/install.log"; exit 1; }
# Which C++ runtimes the process loads (a second libstdc++ or OpenMP runtime is a classic source of crashes).
python3 -c "import torch, metaprobe; print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libstdc++' in l or 'libgomp' in l}))" \
  | tee -a "$OUT/gpu.txt"
cd tests/python
# TESTS narrows the run (e.g. TESTS="test_divergence.py test_scoring.py") when device time is short.
TESTS=${TESTS:-"test_errors.py test_divergence.py test_divergence_distributed.py test_io.py test_params.py test_lm.py
  test_probes_gen.py test_scoring.py test_meta.py test_readme.py"}
PYTHONUNBUFFERED=1 timeout 300 python3 -m pytest -q -p no:cacheprovider -rs $TESTS 2>&1 | tee "$OUT/pytest.log" | tail -n 40
exit ${PIPESTATUS[0]}
