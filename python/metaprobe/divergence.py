"""Per-position divergence between two models' next-token distributions (docs/divergence.md).

``divergence(p, q)`` takes logits ``[..., V]`` (torch tensors, shared without copying, or numpy arrays) and
returns a :class:`DivergenceResult` with one float64 tensor per metric. The work runs in the C++ core with
the GIL released: a fused, vectorised, multi-threaded kernel on CPU (``torch.set_num_threads`` applies) and a
chunked ATen path on other devices.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Sequence, Union

import torch

from . import _checks, _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

ArrayLike = Union[torch.Tensor, "np.ndarray"]

#: Every metric name, in canonical order.
METRICS: tuple = tuple(_core.DIVERGENCE_METRICS)

__all__ = ["METRICS", "DivergenceResult", "divergence"]


def _as_tensor(x: Optional[ArrayLike], name: str, required: bool = False) -> Optional[torch.Tensor]:
    """A tensor (numpy arrays shared through ``torch.from_numpy``), or None when allowed. Another type is a
    TypeError; a tensor without data (meta device), a sparse or nested one, or an array torch cannot share
    (strings, objects) is an InvalidArgumentError naming the argument."""
    if x is None and not required:
        return None
    if isinstance(x, torch.Tensor):
        return _checks.tensor_data(x, name)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(x, np.ndarray):
        try:
            return torch.from_numpy(x)
        except TypeError:  # e.g. "can't convert np.ndarray of type numpy.str_"
            raise _core.InvalidArgumentError(
                f"{name}: a numpy.ndarray of dtype {x.dtype}, expected a numeric array torch can share "
                "(floating for logits, bool or integer for mask and targets)") from None
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__} {_checks.show(x)}")


def _metric_names(metrics: Union[None, str, Sequence[str]]) -> Optional[list]:
    """``None``, one metric name, or a sequence of names, as the list the core takes (which checks the names)."""
    if metrics is None:
        return None
    return _checks.strings(metrics, "metrics", "a metric name or a list of names from " + ", ".join(METRICS))


def _ignore_index(value: Any) -> int:
    """``ignore_index`` as an int64, or InvalidArgumentError."""
    return _checks.integer(value, "ignore_index", what="an integer token id")


def _base(value: Any) -> str:
    """``base`` as the string the core takes: a str ("e", "2") or an integer (Python or numpy, not bool)."""
    if isinstance(value, str):
        return _checks.string(value, "base")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    raise _core.InvalidArgumentError(
        f"base: got {_checks.show(value)} ({type(value).__name__}), expected 'e', 2 or '2'")


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


def _options(*, mask: Optional[torch.Tensor], targets: Optional[torch.Tensor], temperature: Any, metrics: Any,
             reduction: Any, base: Any, beta: Any, ignore_index: Any, backend: Any = "auto") -> "_core.DivergenceOptions":
    """The checked keyword arguments of :func:`divergence` as the one options object the bindings take (also
    :func:`metaprobe.distributed.divergence`'s)."""
    return _core.DivergenceOptions(
        temperature=_checks.real(temperature, "temperature"), metrics=_metric_names(metrics),
        reduction=_checks.string(reduction, "reduction", "'none', 'row' or 'mean'"), base=_base(base),
        beta=_checks.real(beta, "beta"), mask=mask, targets=targets, ignore_index=_ignore_index(ignore_index),
        backend=_checks.string(backend, "backend", "'auto', 'fused' or 'composite'"),
    )


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

    Numbers may be Python or numpy scalars (integers not bool); a value of another type is an
    InvalidArgumentError naming the argument, as is a meta-device (data-less), sparse or nested tensor. A
    ``p``/``q``/``mask``/``targets`` that is neither a torch.Tensor nor a numpy.ndarray is a TypeError.

    Returns:
        DivergenceResult with float64 tensors (on the device of ``p``).
    """
    pt = _as_tensor(p, "p", required=True)
    qt = _as_tensor(q, "q", required=True)
    mt = _as_tensor(mask, "mask")
    tt = _as_tensor(targets, "targets")
    options = _options(mask=mt, targets=tt, temperature=temperature, metrics=metrics, reduction=reduction, base=base,
                       beta=beta, ignore_index=ignore_index, backend=backend)
    out = _core.divergence(pt, qt, options)
    count = out.pop("count")
    return DivergenceResult(out, count, options.reduction, options.base)
