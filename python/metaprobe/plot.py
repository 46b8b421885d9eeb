"""Plots of a meta-probing report (matplotlib, Agg backend; imported lazily).

* :func:`profile_heatmap` — a stage's 5 × 4 accuracy grid.
* :func:`drift_over_steps` — per-cell accuracy change from the reference over training steps, one line per arm.
* :func:`js_positional_profile` — where high-JS tokens sit in the solution (fraction above τ per bin of t/T).
* :func:`layer_update_norms` — relative update norm ‖ΔW‖/‖W₀‖ per layer, one line per stage.
* :func:`save_all` — every plot as PNG into a folder.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

from . import _core

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import Report

__all__ = ["profile_heatmap", "drift_over_steps", "js_positional_profile", "layer_update_norms",
           "representation_drift", "figures", "save_all", "close"]

SKILLS = tuple(_core.SKILLS)    # grid order, from the C++ name tables
DOMAINS = tuple(_core.DOMAINS)


def _plt():
    # Bare Figure objects render through Agg without pyplot: no GUI backend, no global figure registry.
    from matplotlib.figure import Figure

    return Figure


def close(fig: "Figure") -> None:
    """Releases a figure (figures here are not registered with pyplot, so this only drops references)."""
    fig.clear()


def profile_heatmap(report: "Report", stage: Optional[str] = None) -> "Figure":
    """Accuracy per cell of one stage (default: the reference) as a skills × domains heatmap with values."""
    Figure = _plt()
    stage = stage or report.reference
    prof = report.profile
    prof = prof[prof.stage == stage]
    grid = [[math.nan] * len(DOMAINS) for _ in SKILLS]
    for r in prof.itertuples():
        grid[SKILLS.index(r.skill)][DOMAINS.index(r.domain)] = r.acc
    fig = Figure(figsize=(5.2, 4.2))
    ax = fig.add_subplot()
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(DOMAINS)), DOMAINS)
    ax.set_yticks(range(len(SKILLS)), SKILLS)
    for i in range(len(SKILLS)):
        for j in range(len(DOMAINS)):
            v = grid[i][j]
            ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}", ha="center", va="center",
                    color="white" if not math.isnan(v) and v < 0.5 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title(f"behavioural profile: {stage}")
    fig.tight_layout()
    return fig


def drift_over_steps(report: "Report") -> "Figure":
    """Per-cell accuracy change from the reference against the training step; one line per arm (the reference
    is every arm's step-0 point)."""
    Figure = _plt()
    drift = report.drift
    fig = Figure(figsize=(12, 11))
    axes = fig.subplots(len(SKILLS), len(DOMAINS), sharex=True, sharey=True, squeeze=False)
    ref_step = report.stage(report.reference)["info"]["step"]
    arms = [a for a in dict.fromkeys(drift.arm) if a != report.stage(report.reference)["info"]["arm"]] or list(
        dict.fromkeys(drift.arm))
    for i, skill in enumerate(SKILLS):
        for j, domain in enumerate(DOMAINS):
            ax = axes[i][j]
            sub = drift[(drift.skill == skill) & (drift.domain == domain)]
            for arm in arms:
                line = sub[(sub.arm == arm) & (sub.stage != report.reference)].sort_values("step")
                xs = [ref_step] + list(line.step)
                ys = [0.0] + list(line.delta)
                ax.plot(xs, ys, marker="o", ms=3, label=arm)
            ax.axhline(0, color="grey", lw=0.5)
            if i == 0:
                ax.set_title(domain, fontsize=9)
            if j == 0:
                ax.set_ylabel(skill, fontsize=8)
    axes[-1][0].set_xlabel("step")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right")
    fig.suptitle("accuracy change from the reference, per cell")
    return fig


def js_positional_profile(report: "Report", cell: str = "all") -> "Figure":
    """Fraction of solution positions with JS > τ per bin of normalised position t/T, one line per stage."""
    Figure = _plt()
    pos = report.positional
    pos = pos[pos.cell == cell]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for stage in dict.fromkeys(pos.stage):
        s = pos[pos.stage == stage].sort_values("bin")
        ax.plot((s.lo + s.hi) / 2, s.fraction, marker="o", ms=3, label=stage)
    tau = report.data["options"].get("js_threshold", float("nan"))
    ax.set_xlabel("normalised position in the solution (t/T)")
    ax.set_ylabel(f"fraction with JS > {tau:g} nats")
    ax.set_xlim(0, 1)
    ax.set_title(f"JS positional profile ({cell})")
    if len(ax.lines):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_update_norms(report: "Report") -> "Figure":
    """Relative update norm ‖ΔW‖_F/‖W₀‖_F per layer, one line per stage ("none" = outside blocks, at −1)."""
    Figure = _plt()
    params = report.params
    layers = params[params.level == "layer"]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for stage in dict.fromkeys(layers.stage):
        s = layers[layers.stage == stage].sort_values("layer")
        ax.plot(s.layer, s.rel_update_norm, marker="o", ms=3, label=stage)
    ax.set_xlabel("layer (−1: embeddings, final norm, head)")
    ax.set_ylabel("‖ΔW‖ / ‖W₀‖")
    ax.set_title("per-layer update norms")
    if len(ax.lines):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def representation_drift(report: "Report", metric: str = "cka") -> "Figure":
    """Representation drift over training steps, one panel per layer and one line per arm (every prompt; the
    reference at step 0 with CKA = cosine = 1 and no shift). ``metric``: "cka", "cosine" or "pca_shift"."""
    if metric not in ("cka", "cosine", "pca_shift"):
        from ._core import InvalidArgumentError

        raise InvalidArgumentError(f"representation_drift: metric is {metric!r}, expected 'cka', 'cosine' or 'pca_shift'")
    Figure = _plt()
    table = report.representation
    table = table[table.skill == "all"]
    layers = sorted(set(table.layer))
    cols = min(4, max(1, len(layers)))
    rows = max(1, -(-len(layers) // cols))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows))
    at_reference = 0.0 if metric == "pca_shift" else 1.0
    for k, layer in enumerate(layers or [0]):
        ax = fig.add_subplot(rows, cols, k + 1)
        for arm in dict.fromkeys(table.arm):
            s = table[(table.layer == layer) & (table.arm == arm)].sort_values("step")
            ax.plot([0] + list(s.step), [at_reference] + list(s[metric]), marker="o", ms=3, label=arm)
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel(metric, fontsize=8)
    if fig.axes and fig.axes[0].lines:
        fig.axes[0].legend(fontsize=7)
    fig.suptitle(f"representation drift from the reference ({metric})", fontsize=10)
    fig.tight_layout()
    return fig


def figures(report: "Report") -> Iterator[tuple[str, "Figure"]]:
    """Every plot of the report as (file stem, figure): a heatmap per stage, drift, positional profile, norms."""
    if not report.profile.empty:
        for stage in report.stage_names:
            yield f"profile_{stage}", profile_heatmap(report, stage)
        yield "drift", drift_over_steps(report)
    if not report.positional.empty:
        yield "js_positional", js_positional_profile(report)
    if not report.params.empty:
        yield "layer_update_norms", layer_update_norms(report)
    if not report.representation.empty:
        yield "representation_cka", representation_drift(report, "cka")


def save_all(report: "Report", directory: Union[str, "os.PathLike[str]"], dpi: int = 100) -> dict[str, str]:
    """Saves every plot as ``<directory>/<name>.png`` (each written atomically); returns name → path."""
    import io as _bytes_io

    from ._atomic import write_bytes_atomic

    os.makedirs(directory, exist_ok=True)
    out = {}
    for name, fig in figures(report):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        path = os.path.join(os.fspath(directory), f"{safe}.png")
        buf = _bytes_io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        finally:
            close(fig)
        write_bytes_atomic(path, buf.getvalue())
        out[name] = path
    return out
