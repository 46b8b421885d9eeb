"""Builds metaprobe._core through CMake (the one build system), so `pip install` and `make test` compile
the same objects once.

Environment:
  METAPROBE_BUILD_DIR   reuse this CMake build directory (make test points it at ./build) instead of a
                        private one under setuptools' build_temp.
  METAPROBE_CMAKE_ARGS  extra arguments for the CMake configure step (space separated).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build_dir = Path(os.environ.get("METAPROBE_BUILD_DIR") or Path(self.build_temp).resolve() / "cmake")
        if not build_dir.is_absolute():
            build_dir = ROOT / build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        if not (build_dir / "CMakeCache.txt").exists():
            self._configure(build_dir)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_core", "-j", jobs])
        built = sorted(build_dir.glob("bindings/_core*.so"))
        if not built:
            raise RuntimeError(f"CMake build in {build_dir} produced no bindings/_core*.so")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[-1], target)
        self._bundle_cli(build_dir, jobs, target.parent)

    def _bundle_cli(self, build_dir: Path, jobs: str, package_dir: Path) -> None:
        """Copies the C++ `metaprobe` tool to metaprobe/bin/, where `metaprobe.cli` delegates to it."""
        targets = subprocess.run(["cmake", "--build", str(build_dir), "--target", "help"],
                                 capture_output=True, text=True, check=True).stdout
        if "metaprobe_cli" not in targets:
            print("metaprobe: the C++ command-line tool is not configured (CLI11 missing); not bundled")
            return
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "metaprobe_cli", "-j", jobs])
        (package_dir / "bin").mkdir(exist_ok=True)
        self._cli_built = package_dir / "bin" / "metaprobe"
        shutil.copy2(build_dir / "cpp" / "tools" / "metaprobe", self._cli_built)

    _cli_built: Path | None = None  # where _bundle_cli put the tool in this build

    def get_outputs(self) -> list[str]:
        outputs = super().get_outputs()
        return outputs + [str(self._cli_built)] if self._cli_built else outputs

    def copy_extensions_to_source(self) -> None:
        # Editable installs copy the built extension into the source tree; the bundled CLI goes beside it.
        super().copy_extensions_to_source()
        target = ROOT / "python" / "metaprobe" / "bin" / "metaprobe"
        if self._cli_built and self._cli_built != target:
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(self._cli_built, target)

    def _configure(self, build_dir: Path) -> None:
        import torch
        import torch.utils

        args = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
            "-DMETAPROBE_BUILD_TESTS=OFF",
        ]
        # cmake/MetaProbeTorch.cmake asks this interpreter's torch for its headers, libraries and ABI; the
        # prefix path only serves other torch-dependent CMake packages a user may add.
        prefix = Path(torch.utils.cmake_prefix_path)
        if prefix.is_dir():
            args.append(f"-DCMAKE_PREFIX_PATH={prefix}")
        try:  # a pip-installed pybind11 is not on CMake's default search path
            import pybind11

            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        if shutil.which("ninja"):
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("METAPROBE_CMAKE_ARGS", ""))
        subprocess.check_call(args)


setup(ext_modules=[CMakeExtension("metaprobe._core")], cmdclass={"build_ext": CMakeBuild})
