"""Parameter statistics: what fine-tuning did to the weights.

Three families on tensors (each returns a dict keyed by snake_case metric names) and two walks over
checkpoints (returning pandas DataFrames):

* :func:`tensor_stats` - one pass, any dtype: ``mean``, ``std`` (ddof=0), ``min``, ``max``, ``mean_abs``,
  ``l2_norm``, ``linf_norm``, ``zero_fraction``, ``skewness``, ``excess_kurtosis``, ``nan_count``, ...
* :func:`update_stats` - reference ``w0`` vs tuned ``w1``: ``delta_fro``, ``rel_update_norm``, ``cosine``,
  ``max_abs_delta``, ``sparsity_abs``, ``sparsity_rel``, ``sign_flip_fraction``, ...
* :func:`spectral_stats` - one matrix: ``spectral_norm``, ``stable_rank``, ``effective_rank``,
  ``numerical_rank``, ``condition_number``, and WeightWatcher's ``alpha``, ``alpha_weighted``, ``log_norm``,
  ``log_spectral_norm``, ``log_alpha_norm``, ``entropy``, ``num_pl_spikes``, ``xmin``, ``D``, ``status``.
* :func:`compare_checkpoints` / :func:`describe` - streaming walks over checkpoints.

Definitions and sources: ``docs/params.md``. Heavy work runs in C++ with the GIL released.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import torch

from . import _checks, _core

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_p = _core.params

__all__ = [
    "tensor_stats",
    "update_stats",
    "spectral_stats",
    "singular_values",
    "top_k_singular_values",
    "update_spectral_stats",
    "fit_power_law",
    "parse_name",
    "compare_checkpoints",
    "describe",
    "Comparison",
]

CheckpointLike = Union[str, "os.PathLike[str]", Mapping, torch.nn.Module, Any]


def tensor_stats(t: torch.Tensor) -> dict[str, float]:
    """Per-tensor statistics of ``t`` (any shape, any real dtype; bf16 is read without a float copy).

    Statistics are over the finite entries; ``nan_count``/``inf_count`` report the others. ``std`` is the
    population standard deviation; ``skewness``/``excess_kurtosis`` match ``scipy.stats.skew``/``kurtosis``
    with their defaults (bias=True) and are NaN for a constant tensor. Anything but a dense torch.Tensor with data
    (a numpy array, a list, a meta-device or sparse tensor) is an InvalidArgumentError.
    """
    return dict(_p.tensor_stats(_checks.tensor(t, "t")))


def update_stats(w0: torch.Tensor, w1: torch.Tensor, *, atol: float = 1e-5, eta: float = 1e-3) -> dict[str, float]:
    """How ``w1`` (tuned) differs from ``w0`` (reference), same shape, in one fused pass.

    ``sparsity_abs`` is the fraction with ``|w1 - w0| <= atol`` (Mukherjee et al. 2025); ``sparsity_rel`` the
    fraction with ``|w1 - w0| <= eta * max(|w0|, |w1|)`` (Path Not Taken, Def. 2.1). Pairs with a NaN/Inf on
    either side are excluded and counted in ``nonfinite_count``. ``atol``/``eta``: real numbers (Python or
    numpy); a tensor that is not a dense torch.Tensor with data, or a non-number tolerance, is an
    InvalidArgumentError.
    """
    return dict(_p.update_stats(_checks.tensor(w0, "w0"), _checks.tensor(w1, "w1"), _checks.real(atol, "atol"),
                                _checks.real(eta, "eta")))


def _check_int(value: Any, key: str) -> int:
    return _checks.integer(value, key)  # int64: the core checks the meaningful range


#: How each spectral option is checked before it reaches the core (which rejects an unknown key by name).
_SPECTRAL_OPTION_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "flatten": _checks.flag,
    "sketch_float32": _checks.flag,
    "exact_fallback": _checks.flag,
    "randomize": _checks.flag,
    "randomize_seed": lambda value, key: _checks.integer(value, key, 0, _checks.UINT64_MAX),
    "method": _checks.string,
    "gram_max_side": _check_int,
    "oversampling": _check_int,
    "power_iterations": _check_int,
    "error_probes": _check_int,
    "min_evals": _check_int,
    "small_n": _check_int,
    "seed": lambda value, key: _checks.integer(value, key, 0, _checks.UINT64_MAX),
    "gram_min_ratio": _checks.real,
    "tolerance": _checks.real,
    "rank_eps": _checks.real,
    "evals_thresh": _checks.real,
}


#: The fields of the C++ SpectralOptions, in their list's order (what an unknown-key message lists).
_SPECTRAL_FIELDS: tuple[str, ...] = tuple(_p.SpectralOptions().to_dict())


def _spectral_options(k: Optional[int] = None, **options: Any) -> "_p.SpectralOptions":
    """The one options object the core takes (``_core.params.SpectralOptions``, C++ defaults): None values
    dropped, every option type-checked by name; an unknown key is an InvalidArgumentError listing the fields."""
    out = {}
    for key, value in options.items():
        if value is not None:
            check = _SPECTRAL_OPTION_CHECKS.get(key)
            out[key] = value if check is None else check(value, key)
    out["k"] = 0 if k is None else _check_int(k, "k")
    for key in out:
        if key not in _SPECTRAL_FIELDS:
            raise _core.InvalidArgumentError(
                f"spectral option '{key}': unknown, expected one of {', '.join(_SPECTRAL_FIELDS)}")
    return _p.SpectralOptions(**out)


def spectral_stats(w: torch.Tensor, k: Optional[int] = None, **options: Any) -> dict[str, Any]:
    """Spectral statistics of a matrix ``w`` ([rows, cols]; higher ranks are flattened to [shape0, rest]).

    ``k=None`` uses every singular value (exactly, in float64); ``k=int`` the top ``k`` by seeded randomized
    SVD, with ``error_bound`` bounding each value's error; whole-spectrum metrics are then NaN.
    ``options``: ``method`` ('auto'|'gram'|'svd'), ``oversampling``, ``power_iterations``, ``seed``,
    ``error_probes``, ``rank_eps``, ``evals_thresh``, ``min_evals``, ``small_n``, ``flatten``, ``gram_max_side``,
    ``gram_min_ratio``, ``randomize`` (WeightWatcher's randomised-ESD comparison: ``rand_distance``,
    ``ww_softrank``, ``ww_maxdist``, ``max_rand_eval``, ``rand_mp_softrank``, ``rand_num_spikes``; off by default,
    one SVD per permutation) and ``randomize_seed``. Complete spectra also carry WeightWatcher's Marchenko–Pastur
    fit: ``mp_softrank``, ``mp_num_spikes``, ``mp_sigma``, ``mp_bulk_min``/``mp_bulk_max``, ``mp_status``.
    A power-law fit that cannot be done has ``status='failed'`` and a ``reason``.
    ``w`` must be a dense torch.Tensor with data, ``k`` and the integer options Python or numpy integers (not
    bool); anything else is an InvalidArgumentError naming the argument (a flag option of another type a
    TypeError).
    """
    return dict(_p.spectral_stats(_checks.tensor(w, "w"), _spectral_options(k, **options)))


def singular_values(w: torch.Tensor, k: Optional[int] = None, **options: Any) -> tuple[torch.Tensor, str, float]:
    """Singular values of ``w`` in descending order (float64 [n]), the method used and the error bound."""
    values, method, bound = _p.singular_values(_checks.tensor(w, "w"), _spectral_options(k, **options))
    return values, method, bound


def top_k_singular_values(w: torch.Tensor, k: int, **options: Any) -> dict[str, Any]:
    """The top ``k`` singular values of ``w`` with their certificates (docs/params.md, "Top-k").

    Returns ``values`` (float64 [k], descending), ``value_bounds`` (float64 [k]: ``w`` has a singular value
    within ``value_bounds[i]`` of ``values[i]``; zeros when exact), ``error_bound`` (estimate of
    ||(I - QQᵀ) w||₂), ``method`` ('randomized' or 'svd'), ``iterations`` and ``converged``. Randomized
    subspace iteration stops once every bound is at most ``tolerance`` (default 1e-3) times its value; if that
    is not reached within ``power_iterations`` (default 6) the exact SVD is used (``exact_fallback=False``
    keeps the randomized values, with ``converged=False``). Other options as for :func:`spectral_stats`.
    """
    return dict(_p.top_k_singular_values(_checks.tensor(w, "w"), _spectral_options(k, **options)))


def update_spectral_stats(w0: torch.Tensor, w1: torch.Tensor, k: int = 16, **options: Any) -> dict[str, Any]:
    """Rank and top-``k`` energy of ``w1 - w0``, the spectral drift, and the principal angles (degrees)
    between the top-``k`` left/right singular subspaces of ``w0`` and ``w1``."""
    return dict(_p.update_spectral_stats(_checks.tensor(w0, "w0"), _checks.tensor(w1, "w1"), _check_int(k, "k"),
                                         _spectral_options(None, **options)))


def fit_power_law(evals: Any, **options: Any) -> dict[str, Any]:
    """WeightWatcher's power-law fit of eigenvalues ``evals`` (Clauset xmin scan, KS distance ``D``): a tensor,
    array or sequence of real numbers; anything torch cannot read as float64 values is an InvalidArgumentError."""
    if isinstance(evals, torch.Tensor):
        _checks.tensor_data(evals, "evals")
    if isinstance(evals, (str, bytes, bytearray)):  # torch would read a str as a dtype name, bytes as ints
        raise _core.InvalidArgumentError(f"evals: got {_checks.show(evals)} ({type(evals).__name__}), "
                                         "expected a tensor, array or sequence of real numbers")
    try:
        values = torch.as_tensor(evals, dtype=torch.float64).flatten().tolist()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise _core.InvalidArgumentError(
            f"evals: got {_checks.show(evals)} ({type(evals).__name__}), expected a tensor, array or sequence of "
            f"real numbers ({exc})") from None
    return dict(_p.fit_power_law(values, _spectral_options(None, **options)))


def parse_name(name: str) -> dict[str, Any]:
    """Layer index (-1 outside blocks), module path, canonical ``kind`` and naming scheme of a parameter
    (``name`` a str; anything else is an InvalidArgumentError)."""
    return dict(_p.parse_name(_checks.string(name, "name", "a parameter name (str)")))


def _source(obj: CheckpointLike, argument: str) -> Any:
    from . import io as _io

    if isinstance(obj, (str, os.PathLike)):
        return _checks.path(obj, argument)
    try:
        return _io.as_tensor_source(obj)
    except TypeError as exc:
        raise TypeError(f"{argument}: {exc}") from None


class _Bar:
    """A tqdm bar over bytes, on a terminal only (tqdm imported lazily)."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.bar = None
        self.enabled = enabled and sys.stderr.isatty()
        self.desc = desc
        self.last = 0

    def __call__(self, done: int, total: int, bytes_done: int, bytes_total: int, name: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from ._progress import progress_bar

            self.bar = progress_bar(total=bytes_total, unit="B", unit_scale=True, desc=self.desc)
        self.bar.update(bytes_done - self.last)
        self.last = bytes_done
        self.bar.set_postfix_str(name[-40:], refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _callback(progress: Union[bool, Callable[..., None]], desc: str) -> tuple[Optional[Callable[..., None]], _Bar]:
    if not callable(progress) and not isinstance(progress, bool):
        raise TypeError(f"progress: expected True, False or a callable f(done, total, bytes_done, bytes_total, name), "
                        f"got {type(progress).__name__} {_checks.show(progress)}")
    bar = _Bar(progress is True, desc)
    if callable(progress):
        return progress, bar
    return (bar if bar.enabled else None), bar


@dataclass
class Comparison:
    """Result of :func:`compare_checkpoints`.

    ``tensors``: one row per matched tensor (index = name); ``layers``: per layer index (``-1`` = outside
    blocks); ``modules``: per canonical module kind; ``summary``: totals over every matched tensor plus the
    counts of unmatched and mismatched tensors; ``unmatched``: names present on one side only;
    ``shape_mismatches``: DataFrame of same-named tensors with different shapes. The file forms (the CLI's
    JSON and CSV) are written in C++ from the comparison's records, on demand.
    """

    tensors: "pd.DataFrame"
    layers: "pd.DataFrame"
    modules: "pd.DataFrame"
    summary: dict[str, Any]
    unmatched: dict[str, list[str]]
    shape_mismatches: "pd.DataFrame"
    _result: Any = field(repr=False, compare=False, default=None)  #: the C++ CompareResult

    def _cpp(self, what: str) -> Any:
        if self._result is None:
            raise _core.InvalidArgumentError(f"Comparison.{what}: this Comparison was not made by "
                                             "compare_checkpoints, expected one that was (it holds the C++ result)")
        return self._result

    def to_json(self, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Optional[str]:
        """The full report (the CLI's ``--out`` format): written to ``path`` atomically (a directory or read-only
        target is an IoError), or returned as text when ``path`` is None."""
        if path is None:
            return self._cpp("to_json").json()
        self._cpp("to_json").write_json(_checks.path(path))
        return None

    def to_csv(self, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Optional[str]:
        """One row per tensor pair (the CLI's ``--csv`` format): written to ``path`` atomically, or returned as
        text when ``path`` is None."""
        if path is None:
            return self._cpp("to_csv").csv()
        self._cpp("to_csv").write_csv(_checks.path(path))
        return None


def compare_checkpoints(
    reference: CheckpointLike,
    tuned: CheckpointLike,
    *,
    spectra: bool = False,
    progress: Union[bool, Callable[..., None]] = True,
    atol: float = 1e-5,
    eta: float = 1e-3,
    subspace_k: int = 16,
    max_spectral_side: int = 16384,
    release_pages: bool = True,
    emulate_bf16: bool = False,
    nonfinite: str = "nan",
    k: Optional[int] = None,
    **spectral_options: Any,
) -> Comparison:
    """Compares two checkpoints tensor by tensor (paths, state dicts, ``nn.Module``s or io sources).

    Streams: besides the memory maps only the current pair is resident. ``spectra=True`` adds spectral
    statistics of every matched matrix (slow: a float64 SVD each; ``k`` switches to top-k randomized SVD).
    ``progress``: ``True`` shows a tqdm bar on a terminal, or pass ``f(done, total, bytes_done, bytes_total,
    name)``. Unmatched names and shape mismatches are returned, never dropped silently.
    ``emulate_bf16=True`` reproduces Mukherjee et al.'s ``check_sparsity.py``: ``sparsity_abs``,
    ``unchanged_fraction`` (and ``update_rank`` with spectra) on the bf16-rounded difference, see
    docs/params.md. ``nonfinite``: ``"nan"`` (summaries with NaN/Inf pairs are NaN, ``nonfinite_count`` says
    how many) or ``"error"`` (InvalidArgumentError naming the tensor).
    Argument types: ``atol``/``eta`` real numbers, ``subspace_k``/``max_spectral_side``/``k`` integers (Python
    or numpy, not bool), ``nonfinite`` a str: otherwise an InvalidArgumentError naming the argument; the flags
    must be True/False and a checkpoint one of the kinds above, otherwise a TypeError.
    """
    import pandas as pd

    callback, bar = _callback(progress, "compare")
    try:
        options = _p.CompareOptions(
            update=_p.UpdateOptions(atol=_checks.real(atol, "atol"), eta=_checks.real(eta, "eta")),
            emulate_bf16=_checks.flag(emulate_bf16, "emulate_bf16"),
            nonfinite=_checks.string(nonfinite, "nonfinite", "'nan' or 'error'"),
            spectra=_checks.flag(spectra, "spectra"),
            spectral=_spectral_options(k, **spectral_options),
            subspace_k=_check_int(subspace_k, "subspace_k"),
            max_spectral_side=_check_int(max_spectral_side, "max_spectral_side"),
            release_pages=_checks.flag(release_pages, "release_pages"),
        )
        raw = _p.compare(_source(reference, "reference"), _source(tuned, "tuned"), options, callback)
    finally:
        bar.close()
    tensors = pd.DataFrame(raw["tensors"])
    if len(tensors):
        tensors = tensors.set_index("name")
    layers = pd.DataFrame(raw["layers"])
    if len(layers):
        layers = layers.drop(columns=["key"]).set_index("layer")
    modules = pd.DataFrame(raw["modules"])
    if len(modules):
        modules = modules.drop(columns=["layer"]).rename(columns={"key": "kind"}).set_index("kind")
    summary = dict(raw["summary"])
    summary.pop("key", None)
    summary.pop("layer", None)
    return Comparison(
        tensors=tensors,
        layers=layers,
        modules=modules,
        summary=summary,
        unmatched={"only_in_reference": list(raw["only_in_reference"]), "only_in_tuned": list(raw["only_in_tuned"])},
        shape_mismatches=pd.DataFrame(raw["shape_mismatches"], columns=["name", "reference_shape", "tuned_shape"]),
        _result=raw["result"],
    )


def describe(
    checkpoint: CheckpointLike,
    *,
    spectra: bool = False,
    progress: Union[bool, Callable[..., None]] = True,
    max_spectral_side: int = 16384,
    release_pages: bool = True,
    k: Optional[int] = None,
    **spectral_options: Any,
) -> "pd.DataFrame":
    """One row per tensor (index = name): dtype, shape, layer, kind and every :func:`tensor_stats` column;
    with ``spectra=True`` also the :func:`spectral_stats` columns (``spectral_status`` says why a tensor has
    none). Argument types are checked as in :func:`compare_checkpoints`."""
    import pandas as pd

    callback, bar = _callback(progress, "describe")
    try:
        options = _p.DescribeOptions(
            spectra=_checks.flag(spectra, "spectra"), spectral=_spectral_options(k, **spectral_options),
            max_spectral_side=_check_int(max_spectral_side, "max_spectral_side"),
            release_pages=_checks.flag(release_pages, "release_pages"),
        )
        rows = _p.describe(_source(checkpoint, "checkpoint"), options, callback)
    finally:
        bar.close()
    df = pd.DataFrame(rows)
    return df.set_index("name") if len(df) else df
