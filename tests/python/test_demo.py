"""End-to-end tests of ``metaprobe demo`` (issue 6): one ``--fast`` run through the CLI, shared by the tests."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

import metaprobe
from metaprobe import cli, demo
from metaprobe.lm import CharTokenizer, TinyLM
from metaprobe.report import Report

ARMS = ("sft", "rl")


def _cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    # The child inherits PYTHONPATH (scripts/devpython) or finds the installed package (.venv).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-m", "metaprobe", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "fast"
    t0 = time.perf_counter()
    proc = _cli("demo", "--fast", "--out", str(out), "--seed", "0")
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"out": str(out), "stdout": proc.stdout, "stderr": proc.stderr, "wall": wall}


def _training(run) -> dict:
    with open(os.path.join(run["out"], "training.json"), encoding="utf-8") as f:
        return json.load(f)


def test_every_file_is_produced(fast_run):
    out = fast_run["out"]
    for name in ("base.safetensors", "probes.jsonl", "report.json", "report.html", "summary.csv", "summary.txt",
                 "training.json"):
        path = os.path.join(out, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, name
    for arm in ARMS:
        ckpts = sorted(f for f in os.listdir(os.path.join(out, arm)) if f.endswith(".safetensors"))
        assert len(ckpts) >= 4, (arm, ckpts)
    plots = os.listdir(os.path.join(out, "plots"))
    for stem in ("profile_base", "drift", "js_positional", "layer_update_norms"):
        assert f"{stem}.png" in plots
    for p in plots:
        with open(os.path.join(out, "plots", p), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", p
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert html.count("data:image/png;base64,") >= 4 and "<script" not in html
    # The run's own statement of its budget: --fast must stay near 2 minutes on the 2-core machine.
    assert fast_run["wall"] < 300, fast_run["wall"]


def test_report_validates_against_its_schema(fast_run):
    out = fast_run["out"]
    report = Report.load(os.path.join(out, "report.json"))  # the C++ validator: FormatError on any bad field
    assert report.data["schema"] == metaprobe.report.SCHEMA
    assert report.data["schema_version"] == metaprobe.report.SCHEMA_VERSION
    assert report.reference == "base"
    assert report.target_cells == ["diagnostic/math"]
    names = report.stage_names
    assert names[0] == "base" and len(names) == 1 + 8
    assert report.data["n_items"] == 40
    cells = {(c["cell"]["skill"], c["cell"]["domain"]) for c in report.stage("base")["behaviour"]["cells"]}
    assert len(cells) == 20
    for s in report.stages_raw[1:]:
        assert s["divergence"] is not None and s["params"] is not None and s["derived"] is not None
        ckpt = s["info"]["checkpoint"]
        assert not os.path.isabs(ckpt) and os.path.isfile(os.path.join(out, ckpt)), ckpt
    # A broken document is rejected by the same validator.
    bad = json.loads(report.to_json())
    del bad["stages"][1]["divergence"]["total"]["js"]
    with pytest.raises(metaprobe.FormatError, match="js"):
        Report.from_json(json.dumps(bad))


def test_checkpoints_load_back_and_match_the_reported_updates(fast_run):
    out = fast_run["out"]
    report = Report.load(os.path.join(out, "report.json"))
    base = metaprobe.io.load(os.path.join(out, "base.safetensors"))
    assert set(base) == set(TinyLM.load(os.path.join(out, "base.safetensors")).state_dict())
    params = report.params
    for s in report.stages_raw[1:]:
        tuned = metaprobe.io.load(os.path.join(out, s["info"]["checkpoint"]))
        assert set(tuned) == set(base)
        num = sum(float(((tuned[k].double() - base[k].double()) ** 2).sum()) for k in base)
        den = sum(float((base[k].double() ** 2).sum()) for k in base)
        row = params[(params.stage == s["info"]["name"]) & (params.level == "total")].iloc[0]
        assert row.delta_fro == pytest.approx(math.sqrt(num), rel=1e-6)
        assert row.rel_update_norm == pytest.approx(math.sqrt(num / den), rel=1e-6)
        assert row.delta_fro > 0


def test_rl_reward_rises_above_its_start(fast_run):
    rewards = [s["mean_reward"] for s in _training(fast_run)["histories"]["rl"]]
    start, end = demo._reward_windows(rewards)
    assert end > start, rewards


def test_summary_is_printed_and_states_the_measured_finding(fast_run):
    stdout = fast_run["stdout"]
    assert "acc tgt" in stdout and "JS off" in stdout and "|dW|/|W0|" in stdout
    timing = json.loads(next(line for line in stdout.splitlines() if line.startswith('{"case"')))
    assert timing["case"] == "demo_fast" and timing["threads"] == 1 and set(timing["phases_s"]) >= {"base", "meta"}
    with open(os.path.join(fast_run["out"], "summary.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == ["base"] + ["sft"] * 4 + ["rl"] * 4
    last = {arm: [r for r in rows if r["arm"] == arm][-1] for arm in ARMS}
    js = {arm: float(last[arm]["js_off_target"]) for arm in ARMS}
    assert all(v > 0 for v in js.values())
    more = "SFT" if js["sft"] > js["rl"] else "RL"
    assert f"{more} drifted more off target" in stdout
    report = Report.load(os.path.join(fast_run["out"], "report.json"))
    n_collapsed = int(report.drift.collapsed.sum())
    assert ("No cell collapsed" in stdout) == (n_collapsed == 0)


def test_same_seed_same_report(tmp_path):
    # A second full --fast run would double the suite time; a reduced configuration through the same code path
    # (base training, both arms, checkpoints, meta-probe, report) is run twice instead.
    cfg = demo.DemoConfig.fast(base_steps=12, train_per_cell=8, eval_per_cell=1, sft_steps=4, rl_steps=4,
                               rl_max_new_tokens=32, max_new_tokens=24, d_model=32, d_ff=64, seed=5)
    a = demo.run_demo(tmp_path / "a", config=cfg, progress=False)
    b = demo.run_demo(tmp_path / "b", config=cfg, progress=False)
    assert demo.comparable_report(a.report.data) == demo.comparable_report(b.report.data)
    assert a.report.data["created"] is not None
    for arm in ARMS:
        for (sa, pa), (sb, pb) in zip(a.checkpoints[arm], b.checkpoints[arm]):
            assert sa == sb
            assert open(pa, "rb").read() == open(pb, "rb").read()
    assert a.summary.equals(b.summary)
    c = demo.run_demo(tmp_path / "c", config=demo.DemoConfig.fast(**{**cfg.__dict__, "seed": 6}), progress=False)
    assert demo.comparable_report(c.report.data) != demo.comparable_report(a.report.data)


def test_config_errors():
    with pytest.raises(metaprobe.InvalidArgumentError, match="target: got 'math'"):
        demo.DemoConfig(target="math").target_cell()
    with pytest.raises(metaprobe.InvalidArgumentError, match="checkpoints: got 5 for 3 steps"):
        demo.DemoConfig(checkpoints=5).checkpoint_steps(3)
    assert demo.DemoConfig(checkpoints=4).checkpoint_steps(40) == [10, 20, 30, 40]
    with pytest.raises(metaprobe.InvalidArgumentError, match="target: got 'cooking/math'"):
        demo.run_demo("unused", config=demo.DemoConfig(target="cooking/math"), progress=False)
    with pytest.raises(metaprobe.InvalidArgumentError, match="threads: got 0"):
        demo.run_demo("unused", config=demo.DemoConfig(threads=0), progress=False)


def test_cli_errors_and_dispatch(tmp_path):
    proc = _cli(timeout=60)
    assert proc.returncode == 2 and "usage: metaprobe" in proc.stderr
    proc = _cli("--help", timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout
    proc = _cli("demo", "--seed", "-1", "--out", str(tmp_path / "x"), timeout=60)
    assert proc.returncode == 2 and "--seed must be >= 0, got -1" in proc.stderr
    proc = _cli("demo", "--threads", "0", "--out", str(tmp_path / "x"), timeout=60)
    assert proc.returncode == 2 and "--threads must be >= 1, got 0" in proc.stderr
    proc = _cli("probes", "families", timeout=60)
    if cli.bundled_binary() is None:
        assert proc.returncode == 2 and "'probes' is a command of the C++ metaprobe binary" in proc.stderr
    else:
        assert proc.returncode == 0 and "math.prime_factorisation" in proc.stdout


def test_every_checkpoint_opens_with_transformers(fast_run):
    # docs/demo.md's snippet, on each model the demo wrote: transformers reproduces the C++ model's logits.
    transformers = pytest.importorskip("transformers")
    out = fast_run["out"]
    dirs = [os.path.join(out, "hf", "base")] + [
        os.path.join(out, "hf", arm, d) for arm in ARMS for d in sorted(os.listdir(os.path.join(out, "hf", arm)))]
    assert len(dirs) >= 1 + 2 * 4
    tok = CharTokenizer()
    ids = tok(["Question: What is 7 + 5?\nAnswer:"], return_tensors="pt")["input_ids"]
    for d in dirs:
        model = transformers.AutoModelForCausalLM.from_pretrained(d, local_files_only=True).eval()
        hf_tok = transformers.AutoTokenizer.from_pretrained(d, local_files_only=True)
        assert hf_tok("Question: What is 7 + 5?\nAnswer:", return_tensors="pt")["input_ids"].tolist() == ids.tolist()
        ours = TinyLM.from_pretrained(d)
        with torch.no_grad():
            assert (model(input_ids=ids).logits - ours(ids)).abs().max().item() < 1e-5, d
    text = hf_tok.decode(model.generate(**hf_tok("Question: What is 7 + 5?\nAnswer:", return_tensors="pt"),
                                        max_new_tokens=16)[0], skip_special_tokens=True)
    assert text.startswith("Question: What is 7 + 5?\nAnswer:")
