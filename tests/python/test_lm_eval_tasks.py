"""The suite as lm-evaluation-harness tasks, run by the real ``lm_eval`` CLI offline on a tiny local checkpoint:
its samples come back through ``responses.from_lm_eval`` with the same per-item correctness as lm-eval's own
metric and as metaprobe's scoring of the same text; the multiple-choice tasks' acc equals
``scoring.score_choice`` on the log-likelihoods lm-eval logged."""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import metaprobe
from metaprobe import MetaOptions, MetaProbe, lm_eval_tasks, responses, scoring

hf_tiny = pytest.importorskip("hf_tiny")
pytest.importorskip("lm_eval")
pytest.importorskip("accelerate")

OPTS = dict(max_new_tokens=8, prompt_template="plain", choice_mode="loglikelihood", parameters=False,
            divergence=False)


def _offline_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # this metaprobe, wherever it is imported from
    return env


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_eval")
    tok = hf_tiny.bpe_tokenizer()
    model_dir = hf_tiny.save(hf_tiny.tiny_model_for("llama", tok, seed=1), tok, root / "model")
    probes = metaprobe.probes.generate(n_per_cell=2, difficulties=[1], seed=3,
                                       skills=["calculation", "fact_retrieval"], domains=["math", "coding"])
    assert any(p.answer_type == "choice" for p in probes)
    names = lm_eval_tasks.export(probes, root / "tasks", MetaOptions(**OPTS))
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32",
           "--include_path", str(root / "tasks"), "--tasks", "metaprobe", "--log_samples", "--output_path",
           str(root / "out"), "--device", "cpu", "--batch_size", "4"]
    run = subprocess.run(cmd, cwd=root, env=_offline_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    files = sorted(glob.glob(str(root / "out" / "**" / "samples_*.jsonl"), recursive=True))
    return probes, names, root, model_dir, files


def _generate_mode(probes):
    # The multiple-choice items went to the _mc tasks (log-likelihood, scored on a model, not from text).
    return [p for p in probes if p.answer_type != "choice"]


def _samples(files):
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                yield os.path.basename(f), json.loads(line)


def test_export_writes_one_task_per_cell_and_a_group(evaluated):
    probes, names, root, _, files = evaluated
    cells = {f"metaprobe_{p.skill}_{p.domain}" for p in probes}
    assert set(n for n in names if not n.endswith("_mc")) - {"metaprobe"} <= cells
    assert names[-1] == "metaprobe" and (root / "tasks" / "metaprobe.yaml").exists()
    assert any(n.endswith("_mc") for n in names)
    logged = {s["doc"]["id"] for _, s in _samples(files)}
    assert logged == {p.id for p in probes}  # every item was evaluated, once


def test_generate_samples_round_trip_with_lm_evals_own_metric(evaluated):
    probes, names, root, model_dir, files = evaluated
    gen_files = [f for f in files if "_mc_" not in os.path.basename(f)]
    got = responses.from_lm_eval(gen_files)
    lm_eval_acc = {s["doc"]["id"]: s["acc"] for _, s in _samples(gen_files)}
    assert set(got.item_ids) == set(lm_eval_acc)
    _, tok = hf_tiny.load(model_dir)
    mp = MetaProbe(_generate_mode(probes), options=MetaOptions(**OPTS), tokenizer=tok)
    mp.add_stage("base", responses=got)
    items = mp.run(progress=False).items.set_index("id")
    gen = items[items["mode"] == "generate"]
    assert sorted(gen.index) == sorted(lm_eval_acc)
    for item_id, acc in lm_eval_acc.items():
        assert float(gen.loc[item_id, "correct"]) == acc, item_id


def test_process_results_and_the_run_agree_on_right_wrong_and_reasoning_answers(evaluated):
    """A random tiny model gets nothing right, so feed the exported metric hand-made answers too."""
    probes, names, root, model_dir, files = evaluated
    spec = importlib.util.spec_from_file_location("metaprobe_lm_eval_utils", root / "tasks" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    docs = {s["doc"]["id"]: s["doc"] for _, s in _samples(files) if "item" in s["doc"]}
    texts = {}
    for k, (item_id, doc) in enumerate(sorted(docs.items())):
        gold = doc["answer"]
        texts[item_id] = [f" {gold}", " certainly not that", f"<think>maybe 7\nor 9</think> The answer is {gold}",
                          "<think>still thinking about " + gold][k % 4]
    lm_eval_metric = {i: utils.process_results(docs[i], [t])["acc"] for i, t in texts.items()}
    assert 0 < sum(lm_eval_metric.values()) < len(texts)  # both outcomes occur
    _, tok = hf_tiny.load(model_dir)
    mp = MetaProbe(_generate_mode(probes), options=MetaOptions(**OPTS), tokenizer=tok)
    mp.add_stage("base", responses=[{"item_id": i, "text": t} for i, t in texts.items()])
    items = mp.run(progress=False).items.set_index("id")
    for i in texts:
        assert float(items.loc[i, "correct"]) == lm_eval_metric[i], (i, texts[i])


def test_multiple_choice_tasks_match_score_choice(evaluated):
    probes, names, root, model_dir, files = evaluated
    by_id = {p.id: p for p in probes}
    mc = [s for f, s in _samples(files) if "_mc_" in f]
    assert mc
    for s in mc:
        lls = [r[0][0] for r in s["resps"]]
        ours = scoring.score_choice(by_id[s["doc"]["id"]], lls)
        assert float(ours.acc) == s["acc"] and float(ours.acc_norm) == s["acc_norm"], s["doc"]["id"]


def test_export_cli_writes_the_same_tasks(tmp_path):
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation"])
    suite = tmp_path / "suite.jsonl"
    probes.to_jsonl(suite)
    lm_eval_tasks.export(probes, tmp_path / "api")
    run = subprocess.run([sys.executable, "-m", "metaprobe", "probes", "export-lm-eval", str(suite), str(tmp_path / "cli")],
                         env=_offline_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for f in sorted(glob.glob(str(tmp_path / "api" / "**" / "*"), recursive=True)):
        rel = os.path.relpath(f, tmp_path / "api")
        if os.path.isfile(f):
            assert (tmp_path / "cli" / rel).read_bytes() == open(f, "rb").read(), rel
    bad = subprocess.run([sys.executable, "-m", "metaprobe", "probes", "export-lm-eval", str(tmp_path / "none.jsonl"),
                          str(tmp_path / "x")], env=_offline_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "none.jsonl" in bad.stderr


def test_export_refuses_bad_options(tmp_path):
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation"])
    with pytest.raises(metaprobe.InvalidArgumentError, match="options is a dict, expected a MetaOptions"):
        lm_eval_tasks.export(probes, tmp_path, {"stop": []})
    with pytest.raises(metaprobe.InvalidArgumentError, match="prompt_format is 'html'"):
        lm_eval_tasks.export(probes, tmp_path, MetaOptions(prompt_format="html"))
