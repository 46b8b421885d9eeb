"""Safetensors checkpoints: strict, memory-mapped reading and atomic writing.

Every file is validated by all rules of the reference implementation (huggingface/safetensors) before any
tensor is returned; a malformed file raises :class:`SafetensorsError` (a :class:`metaprobe.FormatError`)
whose ``kind`` names the rule, e.g. ``"InvalidOffset"``. A missing path raises :class:`NotFoundError`, which
is both a :class:`metaprobe.IoError` and a :class:`FileNotFoundError` (errno ``ENOENT``).

By default :func:`load` and :func:`open_checkpoint` return tensors that alias a private copy-on-write memory
map of the file: loading costs no copy, and writing into a loaded tensor changes only this process's pages,
never the file. Such a tensor is only as stable as the file: if the file is truncated or rewritten in place
while the tensor is alive, touching it raises SIGBUS and the process dies, as with any memory-mapped reader
(replacing the file by a rename, as every safetensors writer does, is safe). ``copy=True`` reads the tensors
into owned memory instead (``pread``); a file that shrank after open is then an :class:`metaprobe.IoError`
naming it. The library's own streaming walks (:mod:`metaprobe.params` over paths, checkpoints and sources
from :func:`as_tensor_source`) always read copies. See ``docs/io.md``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Iterator, Union

import torch

from . import _core
from ._checks import flag as _flag, path as _path, utf8 as _utf8

_io = _core.io

SafetensorsError = _io.SafetensorsError
NotFoundError = _io.NotFoundError
TensorInfo = _io.TensorInfo
TensorSource = _io.TensorSource
MemorySource = _io.MemorySource
SafetensorsFile = _io.SafetensorsFile

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "SafetensorsError",
    "NotFoundError",
    "TensorInfo",
    "TensorSource",
    "MemorySource",
    "SafetensorsFile",
    "Checkpoint",
    "load",
    "save",
    "serialize",
    "open_checkpoint",
    "as_tensor_source",
]


class Checkpoint(Mapping):
    """A lazy, read-only mapping ``name -> torch.Tensor`` over a checkpoint.

    Names, dtypes and shapes come from the headers; a tensor is materialised (zero-copy) only when indexed.
    Opened by :func:`open_checkpoint` from a sharded directory (``model.safetensors.index.json``), a directory
    holding ``model.safetensors``, or a single ``.safetensors`` file.
    """

    def __init__(self, source: "_io.Checkpoint") -> None:
        self._source = source
        self._names = source.names()

    @property
    def source(self) -> "_io.Checkpoint":
        """The C++ :class:`TensorSource` behind this view (what ``metaprobe.params`` functions take)."""
        return self._source

    @property
    def metadata(self) -> dict[str, str]:
        """The index's ``metadata`` (values as strings) or the single file's ``__metadata__``."""
        return self._source.metadata

    @property
    def files(self) -> list[str]:
        """Paths of the shard files, in order of first reference."""
        return list(self._source.files)

    @property
    def total_file_bytes(self) -> int:
        """Sum of the shard files' sizes in bytes."""
        return self._source.total_file_bytes

    def keys(self) -> list[str]:  # type: ignore[override]
        """Tensor names in index order (storage order for a single file)."""
        return list(self._names)

    def info(self, name: str) -> TensorInfo:
        """Dtype, shape and byte size of ``name`` without reading its data; ``KeyError`` if absent."""
        if not self._source.contains(name):
            raise KeyError(name)
        return self._source.info(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        if not isinstance(name, str) or not self._source.contains(name):
            raise KeyError(name)
        return self._source.tensor(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._source.contains(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Checkpoint({len(self)} tensors in {len(self.files)} file(s))"


def open_checkpoint(path: PathLike, *, decode_fp8: bool = False, copy: bool = False) -> Checkpoint:
    """Opens and validates a checkpoint lazily.

    Args:
        path: a directory with ``model.safetensors.index.json`` or ``model.safetensors``, an index file, or one
            ``.safetensors`` file.
        decode_fp8: return ``F8_E4M3``/``F8_E5M2`` tensors decoded to float32 instead of as
            ``torch.float8_e4m3fn``/``torch.float8_e5m2``.
        copy: read each indexed tensor into owned memory (``pread``) instead of returning a zero-copy view of
            the memory map; a file that shrank since open is then an :class:`metaprobe.IoError`, not a SIGBUS.
    """
    source = _io.Checkpoint.open(_path(path), _flag(decode_fp8, "decode_fp8"), not _flag(copy, "copy"))
    return Checkpoint(source)


def load(path: PathLike, *, decode_fp8: bool = False, copy: bool = False) -> dict[str, torch.Tensor]:
    """Reads every tensor of a file or checkpoint into a dict.

    By default the tensors are zero-copy views of the file's memory map (SIGBUS if the file is later truncated
    in place while they live); ``copy=True`` reads them into owned memory. ``decode_fp8`` as in
    :func:`open_checkpoint`.
    """
    ckpt = open_checkpoint(path, decode_fp8=decode_fp8, copy=copy)
    return {name: ckpt[name] for name in ckpt}


def _pairs(tensors: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors: expected a mapping of str to torch.Tensor, got {type(tensors).__name__}")
    out = []
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensors: key {name!r} is a {type(name).__name__}, expected str")
        _utf8(name, "tensors: key")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors: value of {name!r} is a {type(t).__name__}, expected torch.Tensor")
        out.append((name, t.detach()))
    return out


def _metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata: expected a mapping of str to str, got {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata: entry {k!r}: {v!r} is not str -> str (safetensors metadata is strings only)")
        _utf8(k, "metadata: key")
        _utf8(v, f"metadata: value of {k!r}")
    return dict(metadata)


def save(tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Writes ``tensors`` to ``path`` as the reference writer would, atomically.

    Tensors are stored contiguous and little-endian (moved to CPU if needed), ordered by descending dtype rank
    then name; the header is padded with spaces to a multiple of 8. The file appears whole or not at all.
    ``metadata`` must map str to str; an empty or absent mapping writes no ``__metadata__``.
    """
    _io.save_safetensors(_pairs(tensors), _path(path), _metadata(metadata))


def serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The exact bytes :func:`save` writes."""
    return _io.serialize_safetensors(_pairs(tensors), _metadata(metadata))


def as_tensor_source(obj: object) -> TensorSource:
    """A C++ :class:`TensorSource` for a path, a :class:`Checkpoint`, a state dict or a ``torch.nn.Module``.

    Paths open a checkpoint (headers validated, no data read yet) and file-backed sources read tensors as
    ``pread`` copies, so a file shrinking under a walk is an :class:`metaprobe.IoError` naming it, never a
    SIGBUS; a dict of tensors or a module's ``state_dict()`` is wrapped without copies. Raises ``TypeError``
    for anything else.
    """
    if isinstance(obj, (_io.SafetensorsFile, _io.Checkpoint)):
        return obj.copying()
    if isinstance(obj, TensorSource):
        return obj
    if isinstance(obj, Checkpoint):
        return obj.source.copying()
    if isinstance(obj, (str, os.PathLike)):
        return _io.Checkpoint.open(_path(obj), False, False)
    if isinstance(obj, torch.nn.Module):
        return MemorySource(_pairs(obj.state_dict()))
    if isinstance(obj, Mapping):
        return MemorySource(_pairs(obj))
    raise TypeError(
        f"expected a checkpoint path, a state dict (dict of tensors) or a torch.nn.Module, got {type(obj).__name__}"
    )
