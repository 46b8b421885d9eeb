"""Per-position divergence between two models' next-token distributions (docs/divergence.md).

``divergence(p, q)`` takes logits ``[..., V]`` (torch tensors, shared without copying, or numpy arrays) and
returns a :class:`DivergenceResult` with one float64 tensor per metric. The work runs in the C++ core with
the GIL released: a fused, vectorised, multi-threaded kernel on CPU (``torch.set_num_threads`` applies) and a
chunked ATen path on other devices.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Sequence, Union

import torch

from . import _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

ArrayLike = Union[torch.Tensor, "np.ndarray"]

#: Every metric name, in canonical order.
METRICS: tuple = tuple(_core.DIVERGENCE_METRICS)

__all__ = ["METRICS", "DivergenceResult", "divergence"]


def _as_tensor(x: Optional[ArrayLike], name: str) -> Optional[torch.Tensor]:
    if x is None or isinstance(x, torch.Tensor):
        return x
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _metric_names(metrics: Union[None, str, Sequence[str]]) -> Optional[list]:
    """``None``, one metric name, or a sequence of names, as the list the core takes."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return [metrics]
    return [str(m) for m in metrics]


def _ignore_index(value: Any) -> int:
    """``ignore_index`` as an int64, or InvalidArgumentError."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _core.InvalidArgumentError(
            f"ignore_index: {value!r} ({type(value).__name__}), expected an integer token id")
    v = int(value)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise _core.InvalidArgumentError(f"ignore_index: {v}, expected an integer in the int64 range [-2**63, 2**63 - 1]")
    return v


class DivergenceResult:
    """The metrics of one ``divergence`` call.

    Attributes are float64 tensors named after the metrics (``kl_pq``, ``js``, ...) for the metrics computed;
    asking for another raises ``AttributeError``. ``count`` is the number of positions used.
    ``reduction`` is the reduction that produced the tensors: ``"none"`` (shape = leading dims, NaN at
    skipped positions), ``"row"`` (mean per sequence) or ``"mean"`` (scalar).
    """

    def __init__(self, values: Dict[str, torch.Tensor], count: int, reduction: str, base: str) -> None:
        self._values = dict(values)
        self.count = int(count)
        self.reduction = reduction
        self.base = base

    def __getattr__(self, name: str) -> torch.Tensor:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        if name in METRICS:
            raise AttributeError(f"metric '{name}' was not computed (not requested, or it needs targets)")
        raise AttributeError(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    @property
    def metrics(self) -> tuple:
        """Names of the computed metrics, in canonical order."""
        return tuple(self._values)

    def to_dict(self) -> Dict[str, Any]:
        """``{metric: tensor, ..., "count": int}``."""
        out: Dict[str, Any] = dict(self._values)
        out["count"] = self.count
        return out

    def to_pandas(self) -> "pd.DataFrame":
        """A DataFrame of a reduced result: one row per sequence (``row``) or a single row (``mean``),
        one column per metric."""
        import pandas as pd

        if self.reduction == "none":
            raise ValueError("to_pandas: reduction 'none' gives per-position tensors, expected 'row' or 'mean'")
        cols = {k: v.detach().cpu().reshape(-1).numpy() for k, v in self._values.items()}
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        parts = []
        for k, v in self._values.items():
            parts.append(f"{k}={v.item():.6g}" if v.dim() == 0 else f"{k}=<{tuple(v.shape)}>")
        return f"DivergenceResult(count={self.count}, reduction='{self.reduction}', " + ", ".join(parts) + ")"


def divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    mask: Optional[ArrayLike] = None,
    targets: Optional[ArrayLike] = None,
    temperature: float = 1.0,
    metrics: Union[None, str, Sequence[str]] = None,
    reduction: str = "none",
    base: Union[str, int] = "e",
    beta: float = 0.5,
    ignore_index: int = -100,
    backend: str = "auto",
) -> DivergenceResult:
    """Divergence metrics between ``softmax(p / T)`` and ``softmax(q / T)`` over the last dim.

    Args:
        p, q: logits ``[..., V]`` of the same shape and floating dtype (float32/64, float16, bfloat16).
        mask: optional ``[...]`` bool or 0/1 integer; positions where it is false are skipped.
        targets: optional ``[...]`` integer token ids for ``logp_target``, ``logq_target``,
            ``target_rank_p``, ``target_rank_q``; positions equal to ``ignore_index`` are skipped entirely.
        temperature: divides both logits (> 0).
        metrics: names from :data:`METRICS` (a single name is one metric); ``None`` = all (target metrics only
            when targets are given).
        reduction: ``"none"`` (per position), ``"row"`` (mean over the last leading dim, e.g. per sequence
            of ``[B, T, V]``) or ``"mean"`` (over all kept positions).
        base: ``"e"`` (nats) or ``2`` / ``"2"`` (bits) for KL, JS, entropies, cross-entropy, log-probs.
        beta: JS weight, ``M = beta P + (1 - beta) Q``; 0 gives KL(p‖q) and 1 gives KL(q‖p) by convention.
        backend: ``"auto"``, ``"fused"`` (CPU kernel) or ``"composite"`` (ATen ops; any device).

    Returns:
        DivergenceResult with float64 tensors (on the device of ``p``).
    """
    pt = _as_tensor(p, "p")
    qt = _as_tensor(q, "q")
    mt = _as_tensor(mask, "mask")
    tt = _as_tensor(targets, "targets")
    out = _core.divergence(
        pt, qt, mask=mt, targets=tt, temperature=float(temperature),
        metrics=_metric_names(metrics), reduction=str(reduction),
        base=str(base), beta=float(beta), ignore_index=_ignore_index(ignore_index), backend=str(backend),
    )
    count = out.pop("count")
    return DivergenceResult(out, count, str(reduction), str(base))
