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
export METAPROBE_BUILD_DIR=/tmp/metaprobe-build CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
start=$(date +%s)
python3 -m pip install --no-build-isolation --no-deps --no-index -q . > "$OUT/build.log" 2>&1
rc=$?; echo "build+install rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
if [ $rc -ne 0 ]; then tail -n 60 "$OUT/build.log"; exit $rc; fi
cd tests/python
PYTHONUNBUFFERED=1 timeout 300 python3 -m pytest -q -p no:cacheprovider -rs \
  test_errors.py test_divergence.py test_divergence_distributed.py test_io.py test_params.py test_lm.py \
  test_probes_gen.py test_scoring.py test_meta.py test_readme.py 2>&1 | tee "$OUT/pytest.log" | tail -n 40
exit ${PIPESTATUS[0]}
