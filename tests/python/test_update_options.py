"""The bf16 emulation and the non-finite policy of the update statistics reach every front end: the CLI's
``params compare --emulate-bf16 --nonfinite``, and the meta run's ``update_emulate_bf16`` / ``update_nonfinite``,
with the numbers of ``params.compare_checkpoints``."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

import metaprobe
from metaprobe import InvalidArgumentError, MetaOptions, MetaProbe, io, params
from metaprobe.lm import TinyLM

from cli_path import metaprobe_cli


@pytest.fixture()
def pair(tmp_path):
    """fp32 checkpoints whose updates are ~1e-5: the exact difference and the bf16 one disagree on sparsity."""
    g = torch.Generator().manual_seed(0)
    w0 = {"layers.0.mlp.weight": torch.randn(64, 64, generator=g), "layers.0.attn.weight": torch.randn(64, 32, generator=g)}
    w1 = {k: v + 2e-5 * torch.randn(v.shape, generator=g) for k, v in w0.items()}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    io.save(w0, a)
    io.save(w1, b)
    return a, b


def test_cli_params_compare_emulates_bf16_like_the_api(pair, tmp_path):
    tool = metaprobe_cli()
    if tool is None:
        pytest.skip("no C++ metaprobe tool beside this metaprobe")
    a, b = pair
    for emulate in (False, True):
        out = tmp_path / f"c{int(emulate)}.json"
        args = [str(tool), "params", "compare", str(a), str(b), "--out", str(out)] + (["--emulate-bf16"] if emulate else [])
        run = subprocess.run(args, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        cli_total = json.loads(out.read_text())["summary"]
        api_total = params.compare_checkpoints(a, b, progress=False, emulate_bf16=emulate).summary
        assert cli_total["sparsity_abs"] == pytest.approx(api_total["sparsity_abs"], abs=0)
    exact = json.loads((tmp_path / "c0.json").read_text())["summary"]["sparsity_abs"]
    bf16 = json.loads((tmp_path / "c1.json").read_text())["summary"]["sparsity_abs"]
    assert bf16 != exact
    bad = subprocess.run([str(tool), "params", "compare", str(a), str(b), "--out", str(tmp_path / "x.json"),
                          "--nonfinite", "skip"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--nonfinite: 'skip', expected one of nan, error" in bad.stderr


def test_run_options_reach_the_parameter_comparison(tmp_path):
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=1, skills=["calculation"], domains=["math"])
    m0 = TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=256, seed=1)
    m1 = m0.clone()
    sd = {k: v + 2e-5 * torch.randn_like(v) for k, v in m1.state_dict().items()}
    m1.load_state_dict(sd)
    for emulate in (False, True):
        mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=2, behaviour=False, divergence=False,
                                                   update_emulate_bf16=emulate))
        mp.add_stage("base", source=m0, checkpoint=m0.state_dict())
        mp.add_stage("sft-1", arm="sft", step=1, source=m1, checkpoint=sd)
        got = mp.run(progress=False).stage("sft-1")["params"]["total"]["sparsity_abs"]
        want = params.compare_checkpoints(m0.state_dict(), sd, progress=False, emulate_bf16=emulate).summary["sparsity_abs"]
        assert got == pytest.approx(want, abs=0), emulate
    bad = dict(sd)
    first = next(iter(bad))
    bad[first] = bad[first].clone()
    bad[first].view(-1)[0] = float("nan")
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=2, behaviour=False, divergence=False,
                                               update_nonfinite="error"))
    mp.add_stage("base", source=m0, checkpoint=m0.state_dict())
    mp.add_stage("sft-1", arm="sft", step=1, source=m1, checkpoint=bad)
    with pytest.raises(InvalidArgumentError, match=first):
        mp.run(progress=False)
    with pytest.raises(InvalidArgumentError, match="options.update_nonfinite: 'skip', expected one of nan, error"):
        MetaProbe(probes, options=MetaOptions(update_nonfinite="skip"))
