"""Representation drift: how far a stage's hidden states moved from the reference's on the probe prompts.

Per layer (0 = the embedding output, l = after block l; the last one after the final norm, as Hugging Face's
``output_hidden_states``), each prompt's feature is its hidden states averaged over its **real** tokens (the
attention mask; Huan et al.'s script averages pad positions too). Between the reference's features X [N, d] and
a stage's Y [N, d] on the same N prompts:

- ``cka``: linear CKA (Kornblith et al. 2019) of the column-centred features,
  ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F); 1 = the same geometry up to rotation and scale.
- ``cosine``: the mean over prompts of cos(x_i, y_i).
- ``pca_shift``: Huan et al.'s PCA shift (``analyse_PCA_Shift.py``): a 2-component PCA fitted on the
  reference's features (components signed as scikit-learn's ``svd_flip`` does); the mean projection of the
  uncentred features on PC1, stage minus reference. ``pc2_reference`` / ``pc2_stage``: the same on PC2. Huan's
  summary distance of a stage is :func:`pca_distance` over its layers.

``drift(probes, reference, stages)`` computes the table; ``report.add_representation(table)`` puts it into the
report (its ``representation`` section, DataFrame and plot). Sources: a :class:`metaprobe.lm.TinyLM`,
``backends.hf(...)``, or any object with ``hidden_states(input_ids, attention_mask)`` returning L + 1 tensors
``[B, T, d]``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from ._core import InvalidArgumentError, UnsupportedError

if TYPE_CHECKING:
    import pandas as pd

    from .meta import MetaOptions

__all__ = ["linear_cka", "mean_cosine", "pca_shift", "pca_distance", "features", "drift"]


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of features ``x`` [N, d1] and ``y`` [N, d2] (float64, column-centred); NaN for N < 2 or a
    constant side."""
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    if x.shape[0] < 2:
        return math.nan
    # CKA is scale-invariant: unit Frobenius norms first, so large activations cannot overflow the fourth powers
    nx, ny = x.norm(), y.norm()
    if not (float(nx) > 0 and float(ny) > 0):
        return math.nan
    x, y = x / nx, y / ny
    cross = (y.T @ x).pow(2).sum()
    denom = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / denom) if float(denom) > 0 else math.nan


def mean_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over rows of cos(x_i, y_i) (float64); a zero row contributes NaN."""
    x, y = x.double(), y.double()
    num = (x * y).sum(1)
    den = x.norm(dim=1) * y.norm(dim=1)
    return float((num / den).mean()) if x.shape[0] else math.nan


def _pca_components(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """The top-k principal axes of ``x`` [N, d] (rows), signed like scikit-learn's PCA (svd_flip on Vt: the
    largest-magnitude entry of each axis is positive)."""
    centred = x - x.mean(0, keepdim=True)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    vt = vt[:k]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
    return vt * signs


def pca_shift(reference: torch.Tensor, stage: torch.Tensor) -> tuple[float, float, float]:
    """Huan et al.'s per-layer PCA shift: (mean(stage·c1) − mean(reference·c1), mean(reference·c2),
    mean(stage·c2)) with c1, c2 the reference's first two principal axes; NaNs below 3 prompts."""
    x, y = reference.double(), stage.double()
    if x.shape[0] < 3 or x.shape[1] < 2:
        return math.nan, math.nan, math.nan
    c = _pca_components(x, 2)
    px, py = x @ c.T, y @ c.T
    return float(py[:, 0].mean() - px[:, 0].mean()), float(px[:, 1].mean()), float(py[:, 1].mean())


def pca_distance(shifts: Sequence[float], pc2_reference: Sequence[float], pc2_stage: Sequence[float]) -> float:
    """Huan et al.'s summary over layers: the L2 distance between the centroid of the "Original" points
    (0, pc2_reference_l) and of the "Updated" points (shift_l, pc2_stage_l)."""
    n = len(shifts)
    if n == 0 or len(pc2_reference) != n or len(pc2_stage) != n:
        raise InvalidArgumentError(f"pca_distance: {len(shifts)} shifts, {len(pc2_reference)} and {len(pc2_stage)} "
                                   "PC2 values, expected one per layer and at least one")
    dx = sum(shifts) / n
    dy = (sum(pc2_stage) - sum(pc2_reference)) / n
    return math.hypot(dx, dy)


def _hidden_fn(source: Any, name: str) -> Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]:
    from .lm import TinyLM

    if isinstance(source, TinyLM):
        return source.to_torch().hidden_states  # one weight copy for the whole pass
    fn = getattr(source, "hidden_states", None)
    if not callable(fn):
        raise UnsupportedError(f"{name}: a {type(source).__name__} has no hidden_states(input_ids, attention_mask), "
                               "expected a TinyLM, backends.hf(...) or a source that returns hidden states")
    return fn


def _prompt_ids(probes: Any, tokenizer: Any, options: "MetaOptions") -> tuple[list, list[list[int]], int]:
    """The items, the prompt ids the run feeds its models (the engine's rule: BOS when the tokenizer uses one,
    then the rendered prompt; or the chat template's ids) and the pad id."""
    from .backends import HFTokenizer
    from .meta import _probe_items
    from .probes import ProbeSet

    items = _probe_items(probes)
    tok = tokenizer if isinstance(tokenizer, HFTokenizer) else HFTokenizer(tokenizer)
    if options.prompt_format == "template":
        texts = ProbeSet(items).render(options.prompt_template, options.prompt_k, options.prompt_seed)
    elif options.prompt_format in ("raw", "chat_template"):
        texts = [it.prompt for it in items]
    else:
        raise InvalidArgumentError(f"drift: prompt_format is {options.prompt_format!r}, expected 'template', "
                                   "'chat_template' or 'raw'")
    if options.prompt_format == "chat_template":
        ids = [list(tok.chat_prompt(options.system_prompt, text)) for text in texts]
    else:
        bos = [] if tok.bos_id is None else [tok.bos_id]
        ids = [bos + list(tok.encode(text)) for text in texts]
    return items, ids, tok.pad_id


def features(source: Any, prompts: Sequence[Sequence[int]], pad_id: int = 0, batch_size: int = 16,
             name: str = "source") -> list[torch.Tensor]:
    """Per layer, the prompts' features: hidden states averaged over each prompt's real tokens, float64 [N, d].

    Args:
        source: a TinyLM, ``backends.hf(...)``, or an object with ``hidden_states(input_ids, attention_mask)``.
        prompts: token ids per prompt (right-padded into batches of ``batch_size``).
    """
    fn = _hidden_fn(source, name)
    per_layer: Optional[list[list[torch.Tensor]]] = None
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, p in enumerate(chunk):
            ids[r, :len(p)] = torch.tensor(p, dtype=torch.long)
            mask[r, :len(p)] = 1
        states = fn(ids, mask)
        m = mask.unsqueeze(-1).double()
        means = [(s.detach().double().cpu() * m).sum(1) / m.sum(1) for s in states]
        if per_layer is None:
            per_layer = [[] for _ in means]
        elif len(means) != len(per_layer):
            raise InvalidArgumentError(f"{name}: hidden_states gave {len(means)} layers, then {len(per_layer)}")
        for acc, x in zip(per_layer, means):
            acc.append(x)
    return [torch.cat(acc) for acc in (per_layer or [])]


def _rows(stage: str, layer: int, cell: Optional[dict], x: torch.Tensor, y: torch.Tensor) -> dict:
    shift, pc2_r, pc2_s = pca_shift(x, y)
    return {"stage": stage, "layer": layer, "cell": cell, "items": int(x.shape[0]), "cka": linear_cka(x, y),
            "cosine": mean_cosine(x, y), "pca_shift": shift, "pc2_reference": pc2_r, "pc2_stage": pc2_s}


def drift_records(probes: Any, reference: Any, stages: Mapping[str, Any], tokenizer: Any,
                  options: Optional["MetaOptions"] = None, batch_size: int = 16,
                  progress: bool = True) -> list[dict]:
    """The rows of :func:`drift` as report records (``cell`` None for every prompt)."""
    from .meta import MetaOptions

    opts = options if options is not None else MetaOptions()
    if not isinstance(stages, Mapping) or not stages:
        raise InvalidArgumentError("drift: stages must be a non-empty mapping name -> source")
    items, prompts, pad = _prompt_ids(probes, tokenizer, opts)
    cells: dict[tuple[str, str], list[int]] = {}
    for k, it in enumerate(items):
        cells.setdefault((it.skill, it.domain), []).append(k)
    bar = None
    if progress:
        from ._progress import progress_bar

        bar = progress_bar(total=len(stages) + 1, desc="representation", unit="model", leave=False)
    try:
        ref = features(reference, prompts, pad, batch_size, "reference")
        if bar is not None:
            bar.update(1)
        out = []
        for name, source in stages.items():
            feats = features(source, prompts, pad, batch_size, f"stage '{name}'")
            if len(feats) != len(ref):
                raise InvalidArgumentError(f"drift: stage '{name}' has {len(feats) - 1} layers, the reference "
                                           f"{len(ref) - 1}, expected the same architecture")
            for layer, (x, y) in enumerate(zip(ref, feats)):
                out.append(_rows(name, layer, None, x, y))
                for (skill, domain), idx in cells.items():
                    sel = torch.tensor(idx)
                    out.append(_rows(name, layer, {"skill": skill, "domain": domain}, x[sel], y[sel]))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def drift(probes: Any, reference: Any, stages: Mapping[str, Any], tokenizer: Any,
          options: Optional["MetaOptions"] = None, batch_size: int = 16, progress: bool = True) -> "pd.DataFrame":
    """Representation drift of every stage from the reference on the probes' prompts (module docstring).

    Args:
        probes: a ProbeSet, Items or dicts, or a JSONL path.
        reference, stages: sources (name -> source for the stages).
        tokenizer: the models' tokenizer (Hugging Face style, or a ``backends.HFTokenizer``); the prompt ids are
            built as the run builds them (BOS when the tokenizer uses one, or the chat template).
        options: the :class:`metaprobe.MetaOptions` whose prompt format the run used.

    Returns:
        One row per (stage, layer, cell) plus skill = domain = "all" over every prompt: items, cka, cosine,
        pca_shift, pc2_reference, pc2_stage.
    """
    import pandas as pd

    rows = [_flat(r) for r in drift_records(probes, reference, stages, tokenizer, options, batch_size, progress)]
    return pd.DataFrame(rows, columns=["stage", "layer", "skill", "domain", "items", "cka", "cosine", "pca_shift",
                                       "pc2_reference", "pc2_stage"])


def _flat(r: Mapping[str, Any]) -> dict:
    cell = r.get("cell")
    skill, domain = (cell["skill"], cell["domain"]) if cell else ("all", "all")
    return {"stage": r["stage"], "layer": r["layer"], "skill": skill, "domain": domain, "items": r["items"],
            **{k: (math.nan if r[k] is None else float(r[k]))
               for k in ("cka", "cosine", "pca_shift", "pc2_reference", "pc2_stage")}}
