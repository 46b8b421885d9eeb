"""Plots and the self-contained HTML report; the HTML is opened in headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import metaprobe
from metaprobe import MetaOptions, MetaProbe, plot
from metaprobe.lm import TinyLM

SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=1024)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report():
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3)
    base = TinyLM(seed=3, **SMALL)
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, batch_size=16))
    mp.add_stage("base", source=base, checkpoint=base.state_dict())
    for arm, seeds in (("sft", (5, 6, 7)), ("rl", (8, 9, 10))):
        for step, seed in enumerate(seeds, 1):
            m = TinyLM(seed=seed, **SMALL)
            mp.add_stage(f"{arm}-{step}", arm=arm, step=step * 10, source=m, checkpoint=m.state_dict())
    return mp.run(progress=False)


def test_every_plot_is_saved_as_png(tmp_path, report):
    paths = plot.save_all(report, tmp_path / "plots")
    expected = {f"profile_{s}" for s in report.stage_names} | {"drift", "js_positional", "layer_update_norms"}
    assert set(paths) == expected
    for p in paths.values():
        data = open(p, "rb").read()
        assert data[:8] == PNG and len(data) > 2000
    razor = report.razor
    assert set(razor.arm) == {"sft", "rl"} and (razor.points == 4).all()
    # Untrained models answer nothing correctly, so accuracy never changes: no variance, the correlation is NaN
    # by definition; the divergence side of every point is still measured.
    assert razor.pearson.isna().all() == (report.derived.delta_off_target.fillna(0) == 0).all()
    for r in report.data["razor"]:
        assert r["divergence"][0] == 0 and all(d > 0 for d in r["divergence"][1:])


def test_html_is_self_contained(tmp_path, report):
    out = tmp_path / "report.html"
    report.to_html(out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("data:image/png;base64,") == len(report.stage_names) + 3
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "<script" not in text
    for heading in ("Summary", "Derived metrics", "Razor", "Behavioural profiles", "Divergence", "Parameter"):
        assert heading in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="the chromium binary is not installed (Debian package chromium)")
def test_html_opens_in_headless_chromium_without_console_errors(tmp_path, report):
    out = tmp_path / "report.html"
    report.to_html(out)
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
            "--enable-logging=stderr", "--v=0", "--dump-dom", out.as_uri()]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Razor" in res.stdout and "<img" in res.stdout
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    failed = [line for line in res.stderr.splitlines() if "net::ERR" in line]
    assert failed == [], "\n".join(failed)
