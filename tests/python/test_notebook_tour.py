"""Executes examples/notebooks/meta_probing_tour.ipynb with nbclient and ipykernel (the [test] extra)."""
from __future__ import annotations

import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "notebooks", "meta_probing_tour.ipynb")


def test_tour_notebook_executes(tmp_path, monkeypatch):
    # The kernel (kernel name python3) must import the same metaprobe as this process: under scripts/devpython
    # that is a symlink farm on PYTHONPATH, in .venv the installed package. Handing it our sys.path covers both.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    monkeypatch.setenv("METAPROBE_TOUR_OUT", str(tmp_path / "tour"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import sys, metaprobe; print('MP-EXE', sys.executable); print('MP-MOD', metaprobe.__file__)"))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=400,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    # Read the two tagged lines from the cell's stdout only: warnings (stderr) or other output may come first.
    first = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
    tagged = dict(line.split(" ", 1) for line in first.splitlines() if line.startswith("MP-"))
    exe, mod = tagged["MP-EXE"], tagged["MP-MOD"]
    # `import metaprobe` itself writes nothing to the notebook (no TqdmWarning or other noise on import).
    assert not [o for o in nb.cells[0].outputs if o.get("name") == "stderr"], nb.cells[0].outputs
    assert os.path.basename(exe).startswith("python"), exe
    assert os.path.realpath(os.path.dirname(mod)) == os.path.realpath(os.path.dirname(__import__("metaprobe").__file__))
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 5, images
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    files = set(os.listdir(tmp_path / "tour"))
    assert {"report.json", "report.html", "base.safetensors", "plots"} <= files
    summary = "".join(o.get("text", "") for c in nb.cells if "format_effects" in c.source for o in c.outputs)
    assert "SFT - RL" in summary and "off-target accuracy change" in summary and "95% interval" in summary
