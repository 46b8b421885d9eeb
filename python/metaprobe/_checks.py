"""Argument checks of the Python layer, one helper per kind of check.

Each check runs before a value reaches ``metaprobe._core``, so a wrong type or an out-of-range number is an
error naming the argument, the value and what was expected, never a pybind11 "incompatible function
arguments" dump, a cast failure or a torch/numpy error about something else. What a value *means* (a
temperature > 0, a known metric name) stays the C++ core's check; these only guarantee that the value
arrives as the type the core takes.

Wrong values are :class:`metaprobe.InvalidArgumentError` (a ``ValueError``). A path or flag of the wrong
type keeps :mod:`metaprobe.io`'s ``TypeError`` (docs/io.md), as do the callers whose neighbouring checks
already raised ``TypeError`` (divergence's tensors, probes' item containers).
"""
from __future__ import annotations

import numbers
import operator
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from . import _core

InvalidArgumentError = _core.InvalidArgumentError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

_BOUND_TEXT = {INT32_MIN: "-2**31", INT32_MAX: "2**31-1", INT64_MIN: "-2**63", INT64_MAX: "2**63-1",
               UINT64_MAX: "2**64-1"}


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line (an array's rows joined by spaces), cut to about ``limit`` characters."""
    try:
        text = re.sub(r"\s*\n\s*", " ", repr(value))  # a str's repr escapes its newlines, so only layout goes
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(value: Any) -> str:
    return f"got {show(value)} ({type(value).__name__})"


def _bound(n: int) -> str:
    return _BOUND_TEXT.get(n, f"{n:,}")


def utf8(text: str, argument: str) -> None:
    """InvalidArgumentError when ``text`` holds a lone surrogate (not encodable as UTF-8, so not a C++ string)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"{argument}: {text!r} holds {text[exc.start:exc.end]!r} at index {exc.start}, which is not encodable "
            "as UTF-8 (a lone surrogate), expected a valid Unicode string") from None


def path(value: object, argument: str = "path") -> str:
    """A str or os.PathLike path as a str: TypeError for another type, InvalidArgumentError for a lone surrogate
    or a NUL character (the C++ side would silently open the path cut at the NUL)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{argument}: expected a str or os.PathLike path, got {type(value).__name__} {show(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{argument}: expected a str path, got {type(text).__name__} {text!r}")
    utf8(text, argument)
    nul = text.find("\0")
    if nul >= 0:
        raise InvalidArgumentError(
            f"{argument}: {text!r} holds a NUL character at index {nul}, expected a path without NUL")
    return text


def flag(value: object, argument: str) -> bool:
    """True or False (a numpy bool too); TypeError for anything else (``1``, ``"yes"``, None)."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):  # numpy.bool_
        return bool(value)
    raise TypeError(f"{argument}: expected True or False, got {type(value).__name__} {show(value)}")


def string(value: Any, argument: str, expected: str = "a str") -> str:
    """A str encodable as UTF-8 (bytes are not a str), else InvalidArgumentError."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{argument}: {_got(value)}, expected {expected}")
    utf8(value, argument)
    return str(value)


def elements(value: Any, argument: str, expected: str, error: type = InvalidArgumentError) -> list:
    """The elements of a list, tuple, array, tensor or other iterable as a list. A str, bytes, mapping, 0-d
    array/tensor or non-iterable is ``error`` (InvalidArgumentError unless the caller's neighbours raise
    TypeError for the same argument)."""
    if (isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable)
            or getattr(value, "ndim", 1) == 0):
        raise error(f"{argument}: {_got(value)}, expected {expected}")
    return list(value)


def strings(value: Any, argument: str, expected: str = "a str or a list of str") -> list[str]:
    """One str (a list of one) or an iterable of str as a list, else InvalidArgumentError naming the element."""
    if isinstance(value, str):
        return [string(value, argument, expected)]
    out = []
    for k, v in enumerate(elements(value, argument, expected)):
        if not isinstance(v, str):
            raise InvalidArgumentError(
                f"{argument}: element {k} is {show(v)} ({type(v).__name__}), expected {expected}")
        out.append(string(v, f"{argument}[{k}]", expected))
    return out


def integer(value: Any, argument: str, lo: int = INT64_MIN, hi: int = INT64_MAX, what: str = "an integer") -> int:
    """A Python or numpy integer in ``lo..hi`` as an int. bool, floats (even 2.0), strings and arrays are
    InvalidArgumentError naming the value; so is an integer outside the range (default: int64)."""
    expected = f"{what} in {_bound(lo)}..{_bound(hi)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # Integral: int and numpy integers
        raise InvalidArgumentError(f"{argument}: {_got(value)}, expected {expected}")
    v = operator.index(value)
    if not lo <= v <= hi:
        raise InvalidArgumentError(f"{argument}: got {v}, expected {expected}")
    return v


def real(value: Any, argument: str, what: str = "a real number") -> float:
    """A Python or numpy real number (an integer too, not a bool) as a float, else InvalidArgumentError.
    Whether the value is in range (finite, > 0, ...) is the core's check."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"{argument}: {_got(value)}, expected {what}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        raise InvalidArgumentError(f"{argument}: got {show(value)}, expected {what} within the float64 range") from None


def tensor_data(t: torch.Tensor, argument: str) -> torch.Tensor:
    """``t`` if it is a dense tensor holding data; a meta-device (shape only), sparse or nested tensor is an
    InvalidArgumentError naming the argument."""
    if t.is_meta:
        raise InvalidArgumentError(
            f"{argument}: a tensor on the meta device (shape {list(t.shape)}, no data), "
            "expected a tensor with data (e.g. on cpu or cuda; materialise meta weights first)")
    if t.is_nested:
        raise InvalidArgumentError(f"{argument}: a nested tensor, expected a dense (strided) torch.Tensor")
    if t.layout != torch.strided:
        raise InvalidArgumentError(
            f"{argument}: a tensor with layout {t.layout}, expected a dense (strided) tensor (call .to_dense())")
    return t


def tensor(value: Any, argument: str) -> torch.Tensor:
    """``value`` if it is a torch.Tensor with data (see :func:`tensor_data`), else InvalidArgumentError naming
    its type (a numpy array gets the hint to wrap it)."""
    if not isinstance(value, torch.Tensor):
        cls = type(value)
        hint = " (wrap it with torch.from_numpy)" if cls.__module__.split(".")[0] == "numpy" else ""
        raise InvalidArgumentError(f"{argument}: a {cls.__module__}.{cls.__name__}, expected a torch.Tensor{hint}")
    return tensor_data(value, argument)
