"""`metaprobe run config.json`: the whole config is validated before any work; a wrong JSON type, an unknown or
duplicate key, a fractional step, a missing output directory or a prompt longer than the model's context is one
line naming the key, with a non-zero exit status (never an uncaught exception, rc 134)."""
from __future__ import annotations

import json
import subprocess

import pytest

from cli_path import metaprobe_cli
from metaprobe.lm import TinyLM

pytestmark = pytest.mark.skipif(metaprobe_cli() is None, reason="the metaprobe CLI was not found")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_run")
    TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=1024, seed=1).save(d / "base.safetensors")
    TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=64, seed=1).save(d / "short.safetensors")
    (d / "out").mkdir()
    return d


def _config(**overrides):
    cfg = {
        "probes": {"n_per_cell": 1, "difficulties": [1], "seed": 7, "skills": ["calculation"]},
        "options": {"max_new_tokens": 2, "parameters": False},
        "output": "out/report.json",
        "stages": [{"name": "base", "arm": "base", "step": 0, "tiny_lm": "base.safetensors"}],
    }
    cfg.update(overrides)
    return cfg


def _run(workdir, cfg, text=None):
    path = workdir / "config.json"
    path.write_text(text if text is not None else json.dumps(cfg))
    return subprocess.run([str(metaprobe_cli()), "run", "-q", str(path)], capture_output=True, text=True, timeout=120)


def test_a_valid_config_runs(workdir):
    res = _run(workdir, _config())
    assert res.returncode == 0, res.stderr
    assert (workdir / "out" / "report.json").exists()


@pytest.mark.parametrize("change, message", [
    (dict(probes={"n_per_cell": "1"}), "config.probes.n_per_cell: got \"1\" (string), expected an integer"),
    (dict(stages=[{"name": 5, "tiny_lm": "base.safetensors"}]), "config.stages[0].name: got 5 (number), expected a string"),
    (dict(stages=[{"name": "base", "step": "0", "tiny_lm": "base.safetensors"}]), "config.stages[0].step: got \"0\""),
    (dict(stages=[{"name": "base", "step": 2.9, "tiny_lm": "base.safetensors"}]), "config.stages[0].step: got 2.9 (a fractional number), expected an integer"),
    (dict(tokenizer=5), "config.tokenizer: got 5 (number), expected a string"),
    (dict(output=5), "config.output: got 5 (number), expected a string"),
    (dict(outptu="x.json"), "unknown key \"outptu\" (did you mean \"output\"?)"),
    (dict(stages=[{"name": "base", "tiny_lm": "base.safetensors", "chekpoint": "x"}]), "did you mean \"checkpoint\"?"),
    (dict(stages=[{"name": "base", "tiny_lm": "base.safetensors", "amr": "rl"}]), "unknown key \"amr\" (did you mean \"arm\"?)"),
    (dict(probes={"n_per_cell": 1, "difficulty": [1]}), "unknown key \"difficulty\" (did you mean \"difficulties\"?)"),
    (dict(output="missing/report.json"), "directory"),
    (dict(stages=[{"name": "base", "tiny_lm": "short.safetensors"}]), "expected fewer than the model's max_len 64"),
    (dict(stages=[{"name": "base", "tiny_lm": "nope.safetensors"}]), "nope.safetensors' does not exist"),
])
def test_bad_configs_fail_with_one_line_naming_the_key(workdir, change, message):
    res = _run(workdir, _config(**change))
    assert res.returncode not in (0, 134), res.stderr
    assert message in res.stderr, res.stderr
    assert "terminate called" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_duplicate_keys_are_rejected(workdir):
    text = json.dumps(_config())[:-1] + ', "stages": []}'
    res = _run(workdir, None, text=text)
    assert res.returncode != 0
    assert "key \"stages\" appears twice" in res.stderr
