"""Differences between stages or arms with uncertainty: paired differences over items, 95 % bootstrap
intervals (resampling items, and seeds when several runs are given) and a sign-flip permutation p-value.

A study's claims are comparative ("SFT forgets more than RL"); :func:`paired_difference` puts an interval on
such a claim and :func:`arm_differences` applies it to meta-probing reports. Definitions: docs/meta.md,
"Differences between arms". Everything is float64 and reproducible from ``seed`` (numpy's PCG64).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _core

if TYPE_CHECKING:
    import pandas as pd

    from .report import Report

__all__ = ["paired_difference", "arm_differences", "default_pairs", "differences_frame", "METRICS"]

#: metric name → what one unit contributes (see docs/meta.md)
METRICS = {
    "accuracy": "per item: correct(a) − correct(b), every item",
    "accuracy_target": "per item: correct(a) − correct(b), target-cell items",
    "off_target_change": "per item: (correct(a) − correct(ref)) − (correct(b) − correct(ref)), off-target items",
    "kl_ref_stage": "per cell: token-weighted KL(ref‖a) − KL(ref‖b) (cells are the unit: the report keeps no "
                    "per-item divergence)",
}

_CHUNK = 256


def _bad(argument: str, value: Any, expected: str) -> "_core.InvalidArgumentError":
    return _core.InvalidArgumentError(f"{argument}: {value!r}, expected {expected}")


def paired_difference(a: Any, b: Any, *, n_boot: int = 2000, n_perm: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of a − b over paired units, its percentile bootstrap interval and a two-sided permutation p-value.

    ``a`` and ``b``: arrays of shape [units] or [seeds, units] (one row per independent run, the same units in
    every row). The bootstrap resamples units with replacement (the same draw for a and b: paired) and, with
    several rows, resamples the rows too, independently per replicate. The permutation test flips the sign of
    each unit's seed-averaged difference (exchanging a and b within a unit) ``n_perm`` times;
    p = (1 + #{|T*| ≥ |T|}) / (1 + n_perm).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise _bad("b", f"shape {y.shape}", f"the shape of a, {x.shape}")
    if x.ndim == 1:
        x, y = x[None, :], y[None, :]
    if x.ndim != 2 or x.shape[1] < 1 or x.shape[0] < 1:
        raise _bad("a", f"shape {np.asarray(a).shape}", "[units] or [seeds, units] with at least one unit")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise _bad("a", "non-finite values", "finite values in a and b")
    if int(n_boot) < 1:
        raise _bad("n_boot", n_boot, ">= 1")
    if int(n_perm) < 1:
        raise _bad("n_perm", n_perm, ">= 1")
    if not (0 < confidence < 1):
        raise _bad("confidence", confidence, "a value in (0, 1)")
    d = x - y
    n_seeds, n = d.shape
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    boot = np.empty(int(n_boot), dtype=np.float64)
    for start in range(0, int(n_boot), _CHUNK):
        m = min(_CHUNK, int(n_boot) - start)
        rows = rng.integers(0, n_seeds, size=(m, n_seeds)) if n_seeds > 1 else np.zeros((m, 1), dtype=np.int64)
        cols = rng.integers(0, n, size=(m, n))
        boot[start:start + m] = d[rows[:, :, None], cols[:, None, :]].mean(axis=(1, 2))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    dbar = d.mean(axis=0)
    observed = float(dbar.mean())
    hits = 0
    for start in range(0, int(n_perm), _CHUNK):
        m = min(_CHUNK, int(n_perm) - start)
        signs = rng.integers(0, 2, size=(m, n)) * 2 - 1
        t = (signs * dbar).mean(axis=1)
        hits += int((np.abs(t) >= abs(observed) - 1e-12 * max(1.0, abs(observed))).sum())
    return {"mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": observed, "lo": float(lo), "hi": float(hi),
            "p_value": (1.0 + hits) / (1.0 + int(n_perm)), "n_units": int(n), "n_seeds": int(n_seeds),
            "confidence": float(confidence), "n_boot": int(n_boot), "n_perm": int(n_perm), "seed": int(seed)}


def _runs(reports: Union["Report", Sequence["Report"]]) -> list["Report"]:
    from .report import Report

    runs = [reports] if isinstance(reports, Report) else list(reports)
    if not runs or not all(isinstance(r, Report) for r in runs):
        raise _bad("reports", type(reports).__name__, "a Report or a non-empty list of Reports (one per seed)")
    return runs


def _items(report: "Report", stage: str) -> dict[str, tuple[str, bool]]:
    s = report.stage(stage)
    b = s.get("behaviour")
    if not b:
        raise _bad("stage", stage, "a stage with behaviour (per-item answers)")
    return {it["id"]: (f"{it['cell']['skill']}/{it['cell']['domain']}", bool(it["correct"])) for it in b["items"]}


def _cell_kl(report: "Report", name: str, other: str) -> dict[str, float]:
    """Per cell with solution positions: the stage's token-weighted KL(ref‖stage); the reference's own is 0
    (on the cells of `other`)."""
    if name == report.reference:
        return {c: 0.0 for c in _cell_kl(report, other, name)}
    d = report.stage(name).get("divergence")
    if not d:
        raise _bad("stage", name, "a stage with divergence")
    return {f"{c['cell']['skill']}/{c['cell']['domain']}": float("nan") if c["kl_ref_stage"] is None
            else float(c["kl_ref_stage"]) for c in d["cells"] if c["positions"]}


def _unit_values(runs: list["Report"], a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, keys = [], [], None
    for rep in runs:
        target = set(rep.target_cells)
        if metric == "kl_ref_stage":
            ca, cb = _cell_kl(rep, a, b), _cell_kl(rep, b, a)
            k = sorted(set(ca) & set(cb))
            va, vb = [ca[c] for c in k], [cb[c] for c in k]
        else:
            ia, ib = _items(rep, a), _items(rep, b)
            iref = _items(rep, rep.reference) if metric == "off_target_change" else None
            k = sorted(set(ia) & set(ib) & (set(iref) if iref is not None else set(ia)))
            if metric == "accuracy_target":
                k = [i for i in k if ia[i][0] in target]
            elif metric == "off_target_change":
                k = [i for i in k if ia[i][0] not in target]
            va = [float(ia[i][1]) for i in k]
            vb = [float(ib[i][1]) for i in k]
            if iref is not None:
                va = [v - float(iref[i][1]) for v, i in zip(va, k)]
                vb = [v - float(iref[i][1]) for v, i in zip(vb, k)]
        if keys is None:
            keys = k
        elif k != keys:
            raise _bad("reports", f"runs with different {metric} units", "the same items/cells in every run")
        xs.append(va)
        ys.append(vb)
    if not keys:
        raise _bad("metric", metric, f"a metric with paired units in stages {a!r} and {b!r}")
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def default_pairs(report: "Report") -> list[tuple[str, str]]:
    """The last stage (highest step) of every arm against the reference and against every other arm's."""
    last: dict[str, tuple[int, str]] = {}
    for s in report.stages_raw:
        i = s["info"]
        if i["is_reference"]:
            continue
        if i["arm"] not in last or i["step"] >= last[i["arm"]][0]:
            last[i["arm"]] = (i["step"], i["name"])
    finals = [n for _, n in last.values()]
    pairs = [(n, report.reference) for n in finals]
    pairs += [(finals[i], finals[j]) for i in range(len(finals)) for j in range(i + 1, len(finals))]
    return pairs


def arm_differences(reports: Union["Report", Sequence["Report"]], pairs: Optional[Iterable[tuple[str, str]]] = None,
                    metrics: Sequence[str] = ("accuracy", "accuracy_target", "off_target_change", "kl_ref_stage"),
                    *, n_boot: int = 2000, n_perm: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Paired differences a − b for every (a, b) stage pair and metric, over one report or several runs of the
    same study (one report per seed, same stage names and items). Records as stored in a report's
    ``differences``; metrics whose units are missing (e.g. no divergence) are left out."""
    runs = _runs(reports)
    pairs = list(pairs) if pairs is not None else default_pairs(runs[0])
    for m in metrics:
        if m not in METRICS:
            raise _bad("metrics", m, "one of " + ", ".join(METRICS))
    out = []
    for a, b in pairs:
        for m in metrics:
            try:
                x, y = _unit_values(runs, a, b, m)
            except _core.InvalidArgumentError:
                continue
            if not (np.isfinite(x).all() and np.isfinite(y).all()):
                continue
            r = paired_difference(x, y, n_boot=n_boot, n_perm=n_perm, confidence=confidence, seed=seed)
            out.append({"a": a, "b": b, "metric": m, "unit": "cell" if m == "kl_ref_stage" else "item", **r})
    return out


def differences_frame(records: Sequence[dict[str, Any]]) -> "pd.DataFrame":
    """The records as a DataFrame (one row per pair and metric)."""
    import pandas as pd

    cols = ["a", "b", "metric", "unit", "mean_a", "mean_b", "diff", "lo", "hi", "p_value", "n_units", "n_seeds",
            "confidence", "n_boot", "n_perm", "seed"]
    return pd.DataFrame([{c: (float("nan") if r.get(c) is None else r.get(c)) for c in cols} for r in records],
                        columns=cols)
