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

test: ctest pytest consumer

demo: python
	$(VPY) examples/divergence_tour.py

bench: python
	$(VPY) bench/divergence.py --json

clean:
	rm -rf $(BUILD) $(VENV)
