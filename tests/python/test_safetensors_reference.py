"""metaprobe.io against the reference implementation: the real `safetensors` package and transformers' sharded
save_pretrained. Files cross in both directions and must be bit-identical."""
from __future__ import annotations

import json

import pytest
import torch

safetensors_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402

from metaprobe import io, params  # noqa: E402

import hf_tiny  # noqa: E402

# Every dtype torch (>= 2.3) and the safetensors package share: the unsigned and float8 types included.
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16, torch.uint32, torch.uint64,
          torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]


def _sample(dtype: torch.dtype, shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_complex:
        return torch.randn(shape, generator=g, dtype=dtype)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float32) * 3).to(dtype)
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int64).to(dtype)


def _tensors() -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i, dtype in enumerate(DTYPES):
        tag = str(dtype).replace("torch.", "")
        out[f"{tag}.matrix"] = _sample(dtype, (3, 5), i)
        out[f"{tag}.scalar"] = _sample(dtype, (), 100 + i)
        out[f"{tag}.empty"] = _sample(dtype, (0, 4), 200 + i)
    return out


def _bits(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert tuple(a[name].shape) == tuple(b[name].shape), name
        assert _bits(a[name]) == _bits(b[name]), name


def test_reference_reads_what_metaprobe_writes(tmp_path):
    tensors = _tensors()
    path = tmp_path / "ours.safetensors"
    io.save(tensors, path, metadata={"format": "pt", "note": "written by metaprobe"})
    _assert_identical(tensors, safetensors_torch.load_file(str(path)))
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "note": "written by metaprobe"}
        _assert_identical(tensors, {k: f.get_tensor(k) for k in f.keys()})
    # Both writers produce the same bytes for the same input (header order, padding, data layout). One metadata
    # key: the reference keeps metadata in a Rust HashMap, whose order varies per process; ours sorts the keys.
    io.save(tensors, path, metadata={"format": "pt"})
    assert path.read_bytes() == safetensors_torch.save(tensors, metadata={"format": "pt"})


def test_metaprobe_reads_what_the_reference_writes(tmp_path):
    tensors = _tensors()
    path = tmp_path / "ref.safetensors"
    safetensors_torch.save_file(tensors, str(path), metadata={"k": "v"})
    _assert_identical(tensors, io.load(path))
    ckpt = io.open_checkpoint(path)
    assert ckpt.metadata == {"k": "v"}


def test_a_corrupted_file_is_caught(tmp_path):
    # The comparison above can fail: one flipped byte in the data changes what metaprobe reads.
    tensors = {"w": torch.arange(16, dtype=torch.float32)}
    path = tmp_path / "ref.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(AssertionError):
        _assert_identical(tensors, io.load(path))


def test_sharded_save_pretrained_checkpoint_is_read_and_compared(tmp_path):
    tok = hf_tiny.bpe_tokenizer()
    base = hf_tiny.tiny_model_for("llama", tok, seed=0, hidden=64)
    tuned = hf_tiny.tiny_model_for("llama", tok, seed=0, hidden=64)
    with torch.no_grad():
        tuned.model.layers[1].mlp.up_proj.weight.add_(0.01)
    base_dir = hf_tiny.save(base, tok, tmp_path / "base", max_shard_size="100KB")
    tuned_dir = hf_tiny.save(tuned, tok, tmp_path / "tuned", max_shard_size="100KB")
    index = json.loads((base_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # really sharded
    ckpt = io.open_checkpoint(base_dir)
    assert len(ckpt.files) == len(set(index["weight_map"].values()))
    state = base.state_dict()
    loaded = io.load(base_dir)
    # save_pretrained drops nothing for an untied Llama; every tensor matches the module bit for bit.
    assert set(loaded) == set(index["weight_map"])
    for name, t in loaded.items():
        assert torch.equal(t, state[name]), name
    cmp = params.compare_checkpoints(base_dir, tuned_dir, progress=False)
    changed = cmp.tensors[cmp.tensors["rel_update_norm"] > 0]
    assert list(changed.index if changed.index.name == "name" else changed["name"]) == [
        "model.layers.1.mlp.up_proj.weight"]
