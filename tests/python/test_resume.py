"""Resumable runs, the hard way: a run in a subprocess is SIGKILLed in the middle of a stage, resumed, and gives
the uninterrupted run's report (timings aside); no file under its final name is partial; a directory started on
another suite, other options or a changed checkpoint is refused naming the change."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import metaprobe
from metaprobe import InvalidArgumentError, MetaOptions

sys.path.insert(0, str(Path(__file__).parent))
import resume_job  # noqa: E402


_comparable = resume_job.comparable
ckpts = resume_job.checkpoint_dir_fixture()


@pytest.fixture(scope="module")
def uninterrupted(ckpts):
    return resume_job.study(ckpts).run(progress=False)


def _stage_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "stages").glob("*.json"))


def test_killed_midway_then_resumed_equals_the_uninterrupted_run(ckpts, uninterrupted, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    child = subprocess.Popen([sys.executable, resume_job.__file__, str(out), ckpts], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    try:
        # kill it once the reference and one more stage are stored: it is then inside a later stage
        while time.time() < deadline and child.poll() is None:
            if (out / "stages").exists() and len(_stage_files(out)) >= 2:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the run finished before it could be killed: " + child.stderr.read().decode()[-2000:]
        time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    stored = _stage_files(out)
    assert 2 <= len(stored) < len(resume_job.STAGES) and not (out / "report.json").exists()
    # every file under its final name is whole
    for f in [out / "run.json"] + [out / "stages" / n for n in stored]:
        json.loads(f.read_text())
    # resume in a fresh process: the stored stages are not probed again
    before = {n: (out / "stages" / n).stat().st_mtime_ns for n in stored}
    run = subprocess.run([sys.executable, resume_job.__file__, str(out), ckpts, "--resume"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for n, t in before.items():
        if not n.endswith(".final.json"):
            assert (out / "stages" / n).stat().st_mtime_ns == t, n
    resumed = metaprobe.Report.load(out / "report.json")
    assert _comparable(resumed) == _comparable(uninterrupted)


def test_a_finished_directory_resumes_without_probing_anything(ckpts, uninterrupted, tmp_path):
    out = tmp_path / "run"
    first = resume_job.study(ckpts).run(progress=False, out_dir=out)
    assert _comparable(first) == _comparable(uninterrupted)
    n_files = len(_stage_files(out))
    again = resume_job.study(ckpts).run(progress=False, out_dir=out, resume=True)
    assert _comparable(again) == _comparable(uninterrupted)
    assert len(_stage_files(out)) == n_files
    # without resume a directory holding a run is refused
    with pytest.raises(InvalidArgumentError, match="already holds a run .* expected resume"):
        resume_job.study(ckpts).run(progress=False, out_dir=out)


def test_a_changed_suite_options_or_checkpoint_is_refused(ckpts, tmp_path):
    out = tmp_path / "run"
    mp = resume_job.study(ckpts, max_new_tokens=4)
    mp.run(progress=False, out_dir=out)
    with pytest.raises(InvalidArgumentError, match=r"was started with options.max_new_tokens = 4, now 5"):
        resume_job.study(ckpts, max_new_tokens=5).run(progress=False, out_dir=out, resume=True)
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=5)
    other = metaprobe.MetaProbe(probes, options=MetaOptions(**{**resume_job.OPTIONS, "max_new_tokens": 4}))
    for name, arm, step in resume_job.STAGES:
        other.add_stage(name, arm=arm, step=step, source=metaprobe.lm.TinyLM(d_model=16, n_layers=1, n_heads=2,
                                                                                d_ff=32, max_len=512))
    with pytest.raises(InvalidArgumentError, match=r"was started on another probe suite"):
        other.run(progress=False, out_dir=out, resume=True)
    # rewrite one stage's checkpoint (same path): its size or time changes
    ck = sorted(glob.glob(os.path.join(ckpts, "rl-1.safetensors")))[0]
    copy = tmp_path / "ckpts"
    copy.mkdir()
    for f in glob.glob(os.path.join(ckpts, "*.safetensors")):
        (copy / os.path.basename(f)).write_bytes(Path(f).read_bytes())
    out2 = tmp_path / "run2"
    resume_job.study(str(copy), max_new_tokens=4).run(progress=False, out_dir=out2)
    time.sleep(0.01)
    metaprobe.lm.TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=512, seed=999).save(copy / os.path.basename(ck))
    with pytest.raises(InvalidArgumentError, match=r"stage 3 \('rl-1'\) with checkpoint"):
        resume_job.study(str(copy), max_new_tokens=4).run(progress=False, out_dir=out2, resume=True)
    with pytest.raises(InvalidArgumentError, match="resume=True needs out_dir"):
        resume_job.study(ckpts).run(progress=False, resume=True)


def test_cli_run_resumes_a_directory(tmp_path):
    from cli_path import metaprobe_cli  # the C++ binary the other CLI tests use

    tool = metaprobe_cli()
    if tool is None:
        pytest.skip("no C++ metaprobe tool beside this metaprobe")
    cli = lambda: str(tool)  # noqa: E731

    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=5, skills=["calculation"])
    probes.to_jsonl(tmp_path / "p.jsonl")
    for k, name in enumerate(("base", "sft-1")):
        metaprobe.lm.TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=256, seed=k).save(tmp_path / f"{name}.st")
    cfg = {"probes": "p.jsonl", "options": {"max_new_tokens": 6, "stop": []},
           "stages": [{"name": "base", "tiny_lm": "base.st", "checkpoint": "base.st"},
                      {"name": "sft-1", "arm": "sft", "step": 1, "tiny_lm": "sft-1.st", "checkpoint": "sft-1.st"}]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    first = subprocess.run([cli(), "run", str(tmp_path / "c.json"), "--out", str(out), "-q"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([cli(), "run", str(tmp_path / "c.json"), "--out", str(out), "--resume", "-q"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    refused = subprocess.run([cli(), "run", str(tmp_path / "c.json"), "--out", str(out), "-q"], capture_output=True, text=True)
    assert refused.returncode != 0 and "already holds a run" in refused.stderr
    no_dir = subprocess.run([cli(), "run", str(tmp_path / "c.json"), "--resume", "-q"], capture_output=True, text=True)
    assert no_dir.returncode != 0 and "--resume needs --out DIR" in no_dir.stderr
    assert metaprobe.Report.load(out / "report.json").stage_names == ["base", "sft-1"]
