# Quick start: `make demo` (the main job) and `make test` (every test). See README.md.
SHELL := /bin/bash
# The interpreter .venv is made from (CPython 3.11 on PATH); everything else runs in .venv.
PYTHON ?= python3
BUILD ?= build
VENV ?= .venv
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.metaprobe-deps
TORCH_PREFIX = $$($(VPY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)
export CCACHE_DIR ?= $(HOME)/.cache/ccache
# Paths relative to the checkout: clones and worktrees elsewhere share cache hits.
export CCACHE_BASEDIR ?= $(CURDIR)
# Lets ccache cache the translation units that use the precompiled headers (CMakeLists.txt, METAPROBE_PCH).
export CCACHE_SLOPPINESS ?= pch_defines,time_macros,include_file_mtime,include_file_ctime

.PHONY: all deps configure build ctest venv python pytest consumer test demo bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

# The build compiles against the venv's torch (a pip wheel: its libtorch, its _GLIBCXX_USE_CXX11_ABI, its
# bundled pybind11), so the venv with its pinned packages comes first.
$(BUILD)/CMakeCache.txt: | $(VENV_STAMP)
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(abspath $(VPY)) \
	  -DCMAKE_PREFIX_PATH="$(TORCH_PREFIX)" \
	  -Dpybind11_DIR="$$($(VPY) -m pybind11 --cmakedir)" $(CMAKE_ARGS)

configure: deps venv $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD)

# Note [Passive OpenMP waits in tests]: torch's libgomp workers spin between parallel regions; on a shared or
# oversubscribed machine that made a 15 s example take over 5 minutes. Tests (not benchmarks) let them sleep.
TEST_ENV := OMP_WAIT_POLICY=PASSIVE

ctest: build
	$(TEST_ENV) ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# .venv from the machine's python3 (no system site-packages) with every dependency pyproject.toml declares
# (the package's own, [hf], [plot], [progress], [test]) at the versions requirements/constraints.txt pins.
# The stamp re-runs the install whenever either file changes.
EXTRAS ?= hf plot progress test
$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV_STAMP): pyproject.toml requirements/constraints.txt scripts/requirements.py | $(VPY)
	$(PYTHON) scripts/requirements.py $(EXTRAS) > $(VENV)/requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt -c requirements/constraints.txt
	touch $@

venv: $(VENV_STAMP)

# Installs the package into .venv, reusing the CMake build above (no second compile).
python: build venv
	METAPROBE_BUILD_DIR=$(abspath $(BUILD)) $(VPY) -m pip install --quiet --no-build-isolation --no-index --no-deps .

pytest: python
	cd tests/python && $(TEST_ENV) ../../$(VPY) -m pytest -q

# Installs the C++ library into a prefix and builds examples/cpp against it with find_package(MetaProbe).
consumer: build
	cmake --install $(BUILD) --prefix $(BUILD)/install >/dev/null
	cmake -S examples/cpp -B $(BUILD)/examples-cpp -G Ninja \
	  -DCMAKE_PREFIX_PATH="$(abspath $(BUILD))/install;$(TORCH_PREFIX)"
	cmake --build $(BUILD)/examples-cpp
	$(BUILD)/examples-cpp/metaprobe_consumer

test: ctest consumer pytest

demo: python
	$(VPY) -m metaprobe demo --out runs/demo

bench: python
	$(VPY) bench/divergence.py --json
	$(VPY) bench/meta.py --json
	$(VPY) bench/probes.py --json
	$(VPY) bench/lm.py --json
	$(VPY) bench/params.py --json

# libFuzzer on the safetensors header parser and the run-config parser (clang, ASan + UBSan), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= $(BUILD)/fuzz
fuzz: deps venv
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETAPROBE_FUZZ=ON \
	  -DCMAKE_PREFIX_PATH="$(TORCH_PREFIX)" -DPython_EXECUTABLE=$(abspath $(VPY)) \
	  -DMETAPROBE_BUILD_TESTS=OFF -DMETAPROBE_BUILD_PYTHON=OFF -DMETAPROBE_BUILD_TOOLS=OFF
	cmake --build $(FUZZ_BUILD) --target fuzz_safetensors_header fuzz_run_config
	mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/run_config_corpus
	$(FUZZ_BUILD)/tests/fuzz/fuzz_safetensors_header -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	  -dict=tests/fuzz/safetensors.dict $(FUZZ_BUILD)/corpus tests/fuzz/corpus
	$(FUZZ_BUILD)/tests/fuzz/fuzz_run_config -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	  -dict=tests/fuzz/run_config.dict $(FUZZ_BUILD)/run_config_corpus tests/fuzz/run_config_corpus

clean:
	rm -rf $(BUILD) $(VENV)
