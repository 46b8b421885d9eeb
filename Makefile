# Quick start: `make demo` (the main job) and `make test` (every test). See README.md.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
BUILD ?= build
VENV ?= .venv
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
VPY := $(VENV)/bin/python
export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)
export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: all deps configure build ctest venv python pytest consumer test demo bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(PYTHON) $(CMAKE_ARGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD)

ctest: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

$(VPY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

venv: $(VPY)

# Installs the package into .venv, reusing the CMake build above (no second compile).
python: build venv
	METAPROBE_BUILD_DIR=$(abspath $(BUILD)) $(VPY) -m pip install --quiet --no-build-isolation --no-index .

pytest: python
	cd tests/python && ../../$(VPY) -m pytest -q

# Installs the C++ library into a prefix and builds examples/cpp against it with find_package(MetaProbe).
consumer: build
	cmake --install $(BUILD) --prefix $(BUILD)/install >/dev/null
	cmake -S examples/cpp -B $(BUILD)/examples-cpp -G Ninja -DCMAKE_PREFIX_PATH=$(abspath $(BUILD))/install
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

# libFuzzer on the safetensors header parser (clang, ASan + UBSan), bounded to FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= $(BUILD)/fuzz
fuzz:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETAPROBE_FUZZ=ON \
	  -DMETAPROBE_BUILD_TESTS=OFF -DMETAPROBE_BUILD_PYTHON=OFF -DMETAPROBE_BUILD_TOOLS=OFF
	cmake --build $(FUZZ_BUILD) --target fuzz_safetensors_header
	mkdir -p $(FUZZ_BUILD)/corpus
	$(FUZZ_BUILD)/tests/fuzz/fuzz_safetensors_header -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	  -dict=tests/fuzz/safetensors.dict $(FUZZ_BUILD)/corpus tests/fuzz/corpus

clean:
	rm -rf $(BUILD) $(VENV)
