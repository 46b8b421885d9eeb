#!/usr/bin/env python3
"""Prints the Python requirements that pyproject.toml declares, one per line: the package's own dependencies
plus the optional extras named on the command line (``scripts/requirements.py hf test``).

pyproject.toml is the one place that names the dependencies; requirements/constraints.txt pins their versions.
The Makefile installs ``-r <this output> -c requirements/constraints.txt`` into .venv before it builds anything,
since the CMake build needs the venv's torch first.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"requirements.py: unknown extra(s) {unknown}; pyproject.toml declares {sorted(optional)}")
    out = list(project["dependencies"])
    for extra in extras:
        out += [r for r in optional[extra] if not r.startswith("metaprobe[")]
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
