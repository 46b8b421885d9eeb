"""The README's snippets are the ones that run: every ```python block executes, and the C++ snippet is the
code of examples/cpp/main.cpp (which `make test` builds against an installed metaprobe)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_snippet_runs(index):
    code = _blocks("python")[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


def test_there_are_python_snippets():
    assert len(_blocks("python")) >= 3


def test_cpp_snippet_is_the_consumer_example():
    example = (ROOT / "examples" / "cpp" / "main.cpp").read_text()
    flat = " ".join(example.split())
    for block in _blocks("cpp"):
        for line in block.strip().splitlines():
            assert " ".join(line.split()) in flat, line
    cmake = (ROOT / "examples" / "cpp" / "CMakeLists.txt").read_text()
    for block in _blocks("cmake"):
        for line in block.strip().splitlines():
            assert line.strip().replace("my_tool", "metaprobe_consumer") in cmake, line


def test_quick_start_is_the_two_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, flags=re.M)
    assert commands == ["demo", "test"]
