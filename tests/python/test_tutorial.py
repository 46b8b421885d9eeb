"""docs/tutorial.md's Python code, executed: tiny local Hugging Face checkpoints (seeded Llama configs, an offline
BPE tokenizer with a ChatML template) stand for the hub ids and checkpoint folders; sizes are cut down."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

hf_tiny = pytest.importorskip("hf_tiny")
pytest.importorskip("matplotlib")

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
# (text in the tutorial, what the test runs instead): only sizes change, never the calls.
SMALLER = [
    ("n_per_cell=50, difficulties=[1, 2, 3]", "n_per_cell=1, difficulties=[1]"),
    ("max_new_tokens=1024", "max_new_tokens=6"),
    ("for step in (500, 1000, 1500, 2000):", "for step in (500,):"),
]


def test_the_tutorial_code_runs(tmp_path, monkeypatch):
    text = TUTORIAL.read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    for old, new in SMALLER:
        assert old in code, old
        code = code.replace(old, new)
    tok = hf_tiny.bpe_tokenizer()
    for k, folder in enumerate(["my-org/base", "ckpts/base", "ckpts/sft/500", "ckpts/rl/500"]):
        model = hf_tiny.tiny_model_for("llama", tok, seed=0 if folder.endswith("base") else k)
        hf_tiny.save(model, tok, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(TUTORIAL), "exec"), scope)
    report = scope["report"]
    assert report.stage_names == ["base", "sft-500", "rl-500"]
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.html").exists()
    assert any((tmp_path / "plots").iterdir())
    div = report.divergence.query("skill == 'all'")
    assert (div["mode"] == "topk_cache").all() and (div.positions > 0).all()
    items = report.data["stages"][0]["behaviour"]["items"]
    assert {it["finish_reason"] for it in items} <= {"eos", "length", "stop"}
