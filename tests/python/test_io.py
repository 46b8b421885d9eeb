"""metaprobe.io: round trips, the reference's invalid vectors, checkpoints, atomic writes, and files checked
by a tiny independent reader (struct + json) and against bytes computed here from the spec."""
from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path

import pytest
import torch

import metaprobe
from metaprobe import io

# --- an independent reader and writer, straight from the spec (no metaprobe code) -----------------------------

_ST_TO_TORCH = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "C64": torch.complex64,
    # torch 2.x's native unsigned and float8 types (torch >= 2.3; E8M0 from 2.7)
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "F8_E4M3FNUZ": torch.float8_e4m3fnuz,
    "F8_E5M2FNUZ": torch.float8_e5m2fnuz,
}
if hasattr(torch, "float8_e8m0fnu"):
    _ST_TO_TORCH["F8_E8M0"] = torch.float8_e8m0fnu
_TORCH_TO_ST = {v: k for k, v in _ST_TO_TORCH.items()}


def tiny_read(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = _ST_TO_TORCH[e["dtype"]]
        raw = bytearray(buf[b:end])
        t = torch.frombuffer(raw, dtype=torch.uint8).view(dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"])
    return out, meta


def reference_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """What the reference implementation writes: huggingface's `safetensors.torch.save` itself."""
    import safetensors.torch

    return safetensors.torch.save(tensors, metadata=metadata)


def raw_file(header: str | bytes, data: bytes = b"") -> bytes:
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def sample(dtype: torch.dtype, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=gen, dtype=dtype)
    if dtype in (torch.uint16, torch.uint32, torch.uint64):
        return torch.randint(0, 60000, shape, generator=gen, dtype=torch.int64).to(dtype)
    if dtype.is_floating_point and dtype.itemsize == 1:  # float8: every byte pattern is some value
        return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).view(dtype)
    if not dtype.is_floating_point and not dtype.is_complex:
        return torch.randint(-128, 128, shape, generator=gen, dtype=dtype)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) if not dtype.is_complex else \
        torch.randn(shape, generator=gen, dtype=dtype)


SHAPES = [(), (0,), (3, 0), (5,), (2, 3), (2, 1, 4)]


# --- round trips ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", list(_TORCH_TO_ST))
def test_every_dtype_round_trips_including_scalars_and_empty(tmp_path: Path, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    tensors = {f"t{i}": sample(dtype, s, gen) for i, s in enumerate(SHAPES)}
    path = tmp_path / "x.safetensors"
    io.save(tensors, path, metadata={"format": "pt"})
    back = io.load(path)
    assert list(back) == sorted(tensors)  # one dtype: storage order is name order
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
        assert _bits(back[name]) == _bits(t)
    assert path.read_bytes() == reference_bytes(tensors, {"format": "pt"})
    # The tiny independent reader agrees, and the bytes are what the reference writer would produce.
    data = path.read_bytes()
    mine, meta = tiny_read(data)
    assert meta == {"format": "pt"}
    for name, t in tensors.items():
        assert mine[name].dtype == t.dtype and _bits(mine[name]) == _bits(t)
    # The copying reader returns the same values in owned memory.
    copied = io.load(path, copy=True)
    for name, t in tensors.items():
        assert copied[name].dtype == t.dtype and _bits(copied[name]) == _bits(t)


def _bits(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    assert data == reference_bytes(tensors, {"format": "pt"})


def test_mixed_dtypes_match_reference_layout(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    tensors = {
        "model.embed.weight": sample(torch.bfloat16, (4, 3), gen),
        "a.bias": sample(torch.float32, (3,), gen),
        "Z": sample(torch.int64, (2,), gen),
        "y": sample(torch.float64, (1,), gen),
        "mask": sample(torch.bool, (5,), gen),
        "é-ünicode\n\"q\"": sample(torch.float16, (2, 2), gen),
        "steps": torch.tensor(7, dtype=torch.int32),
    }
    assert io.serialize(tensors) == reference_bytes(tensors)
    io.save(tensors, tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == reference_bytes(tensors)
    header_len = struct.unpack("<Q", (tmp_path / "m.safetensors").read_bytes()[:8])[0]
    assert header_len % 8 == 0


def test_reference_test_vector_bytes() -> None:
    # tensor.rs test_serialization and test_empty.
    out = io.serialize({"attn.0": torch.arange(6, dtype=torch.float32).reshape(1, 2, 3)})
    assert out[:8] == bytes([64, 0, 0, 0, 0, 0, 0, 0])
    assert out[8:72] == b'{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
    assert out[72:] == struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    assert io.serialize({}) == bytes([8, 0, 0, 0, 0, 0, 0, 0]) + b"{}      "
    assert io.serialize({}, {"framework": "pt"}) == bytes([40] + [0] * 7) + b'{"__metadata__":{"framework":"pt"}}     '


def test_hand_built_file_reads_back_exactly(tmp_path: Path) -> None:
    header = ('{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},'
              '"s":{"dtype":"I64","shape":[],"data_offsets":[4,12]},'
              '"e":{"dtype":"F32","shape":[0,3],"data_offsets":[12,12]},"__metadata__":{"a":"b"}}')
    data = struct.pack("<HHq", 0x3FC0, 0xC000, -5)  # bf16 1.5, -2.0; int64 -5
    (tmp_path / "h.safetensors").write_bytes(raw_file(header, data))
    ck = io.open_checkpoint(tmp_path / "h.safetensors")
    assert ck.keys() == ["w", "s", "e"]  # storage order
    assert ck.metadata == {"a": "b"}
    assert ck["w"].tolist() == [1.5, -2.0] and ck["w"].dtype == torch.bfloat16
    assert ck["s"].shape == () and ck["s"].item() == -5
    assert ck["e"].shape == (0, 3)
    info = ck.info("w")
    assert (info.name, info.dtype, info.shape, info.nbytes, info.numel) == ("w", "BF16", (2,), 4, 2)


def test_loaded_tensors_alias_the_map_and_writes_stay_private(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    w = torch.randn(128, 128)
    io.save({"w": w}, path)
    f = io.SafetensorsFile.open(str(path), zero_copy=True)
    a, b = f.tensor("w"), f.tensor("w")
    assert a.data_ptr() == b.data_ptr()  # zero copy
    assert io.load(path)["w"].data_ptr() != io.load(path, copy=True)["w"].data_ptr()
    c = io.SafetensorsFile.open(str(path))  # the low-level default reads copies
    assert c.tensor("w").data_ptr() != c.tensor("w").data_ptr() and not c.zero_copy
    del f
    a.mul_(0)  # copy-on-write: never reaches the file, never faults
    assert torch.equal(b, a)  # same private pages
    assert torch.equal(io.load(path)["w"], w)


def test_misaligned_data_is_accepted(tmp_path: Path) -> None:
    header = '{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}'
    header += " " * ((9 - len(header)) % 8)  # data starts at an odd file offset
    assert (8 + len(header)) % 8 == 1
    (tmp_path / "m.safetensors").write_bytes(raw_file(header, struct.pack("<3f", 1.0, 2.5, -3.0)))
    x = io.load(tmp_path / "m.safetensors")["x"]
    assert x.tolist() == [1.0, 2.5, -3.0]
    assert x.data_ptr() % 4 == 0


def test_fp8_native_and_decoded(tmp_path: Path) -> None:
    header = '{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[4,7]}}'
    (tmp_path / "f.safetensors").write_bytes(raw_file(header, bytes([0x38, 0x3C, 0xFE, 0x01, 0x3C, 0x7B, 0x7C])))
    for copy in (False, True):
        native = io.load(tmp_path / "f.safetensors", copy=copy)
        assert native["a"].dtype == torch.float8_e4m3fn and native["b"].dtype == torch.float8_e5m2
        assert native["a"].float().tolist() == [1.0, 1.5, -448.0, 2.0 ** -9]
        d = io.load(tmp_path / "f.safetensors", decode_fp8=True, copy=copy)
        assert d["a"].dtype == torch.float32
        assert d["a"].tolist() == [1.0, 1.5, -448.0, 2.0 ** -9]
        assert d["b"].tolist() == [1.0, 57344.0, float("inf")]


def test_unsupported_dtypes_are_named(tmp_path: Path) -> None:
    (tmp_path / "u.safetensors").write_bytes(
        raw_file('{"u":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', b"\x21"))
    ck = io.open_checkpoint(tmp_path / "u.safetensors")
    assert ck.info("u").dtype == "F4"
    with pytest.raises(metaprobe.UnsupportedError, match=r"tensor 'u'.*dtype F4 \(UnsupportedDtype\)"):
        ck["u"]
    with pytest.raises(metaprobe.UnsupportedError, match=r"ComplexDouble"):
        io.save({"c": torch.zeros(1, dtype=torch.complex128)}, tmp_path / "c.safetensors")


# --- the reference's invalid vectors -------------------------------------------------------------------------

I32 = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'
INVALID = {
    "empty": (b"", "HeaderTooSmall"),
    "length-no-body": (b"<\0\0\0\0\0\0\0", "InvalidHeaderLength"),
    "huge-length": (bytes([0x3C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF]), "HeaderTooLarge"),
    "bad-utf8": (raw_file(b"\xff"), "InvalidHeader"),
    "lone-brace": (raw_file("{"), "InvalidHeaderDeserialization"),
    "extra-data": (raw_file(I32, b"\0" * 16 + b"xx"), "MetadataIncompleteBuffer"),
    "short-data": (raw_file(I32, b"\0" * 14), "MetadataIncompleteBuffer"),
    "small-offsets": (raw_file(I32.replace("[0,16]", "[0,4]"), b"\0" * 4), "TensorInvalidInfo"),
    "numel-overflow": (raw_file(I32.replace("[2,2]", "[2,18446744073709551614]"), b"\0" * 16), "ValidationOverflow"),
    "bits-overflow": (raw_file(I32.replace("[2,2]", "[2,9223372036854775807]"), b"\0" * 16), "ValidationOverflow"),
    "shared-region": (raw_file("{" + ",".join(f'"w{i}":{{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'
                                              for i in range(10)) + "}", b"\0" * 16), "InvalidOffset"),
    "f4-odd": (raw_file('{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\0\0"), "MisalignedSlice"),
    "f4-wrong-size": (raw_file('{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,4]}}', b"\0" * 4), "TensorInvalidInfo"),
    "duplicate-name": (raw_file('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                '"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\0\0"), "DuplicateTensorName"),
    "metadata-number": (raw_file('{"__metadata__":{"epoch":3}}'), "InvalidMetadata"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_vectors_raise_the_right_kind(tmp_path: Path, case: str) -> None:
    data, kind = INVALID[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)
    with pytest.raises(io.SafetensorsError, match=rf"^{kind}: .*{case}\.safetensors") as err:
        io.load(path)
    assert err.value.kind == kind
    assert isinstance(err.value, metaprobe.FormatError) and isinstance(err.value, ValueError)
    # The same from an in-memory image.
    with pytest.raises(io.SafetensorsError, match=rf"^{kind}: ") as err2:
        io._io.validate_bytes(data)
    assert err2.value.kind == kind


def test_valid_vectors_are_accepted() -> None:
    for header in ["{}      ", "  {}", '{"x":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}']:
        assert io._io.validate_bytes(raw_file(header))[0] is not None
    tensors, meta = io._io.validate_bytes(raw_file('{"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}', b"\0" * 4))
    assert tensors[0][0].shape == () and meta == {}


def test_missing_paths_are_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors") as err:
        io.load(missing)
    assert err.value.errno == errno.ENOENT
    assert err.value.filename == str(missing)
    assert isinstance(err.value, metaprobe.IoError) and isinstance(err.value, io.NotFoundError)
    with pytest.raises(metaprobe.IoError, match="holds neither"):
        io.open_checkpoint(tmp_path)


# --- checkpoints ---------------------------------------------------------------------------------------------

def make_sharded(root: Path) -> dict[str, torch.Tensor]:
    t = {"model.layers.0.w": torch.randn(4, 4), "model.layers.1.w": torch.randn(4, 4).bfloat16(),
         "lm_head.weight": torch.randn(2, 4)}
    io.save({k: t[k] for k in ["model.layers.0.w", "model.layers.1.w"]}, root / "model-00001-of-00002.safetensors")
    io.save({"lm_head.weight": t["lm_head.weight"]}, root / "model-00002-of-00002.safetensors")
    write_index(root, {"model.layers.0.w": "model-00001-of-00002.safetensors",
                       "model.layers.1.w": "model-00001-of-00002.safetensors",
                       "lm_head.weight": "model-00002-of-00002.safetensors"})
    return t


def write_index(root: Path, weight_map: dict[str, str], raw: str | None = None) -> None:
    text = raw if raw is not None else json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map})
    (root / "model.safetensors.index.json").write_text(text)


def test_sharded_checkpoint_is_lazy_and_complete(tmp_path: Path) -> None:
    t = make_sharded(tmp_path)
    ck = io.open_checkpoint(tmp_path)
    assert ck.keys() == ["model.layers.0.w", "model.layers.1.w", "lm_head.weight"]
    assert len(ck) == 3 and list(ck) == ck.keys()
    assert "lm_head.weight" in ck and "missing" not in ck and 3 not in ck
    assert ck.metadata == {"total_size": "1"}  # total_size is not enforced
    assert len(ck.files) == 2
    assert ck.total_file_bytes == sum(os.path.getsize(f) for f in ck.files)
    assert ck.info("model.layers.1.w").dtype == "BF16"
    for k, v in t.items():
        assert torch.equal(ck[k], v)
    with pytest.raises(KeyError):
        ck["missing"]
    assert set(io.load(tmp_path)) == set(t)


def test_missing_shard(tmp_path: Path) -> None:
    make_sharded(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"shard .*model-00002-of-00002\.safetensors.* does not exist"):
        io.open_checkpoint(tmp_path)


def test_tensor_in_two_shards(tmp_path: Path) -> None:
    make_sharded(tmp_path)
    io.save({"lm_head.weight": torch.zeros(1), "model.layers.0.w": torch.zeros(1)},
            tmp_path / "model-00002-of-00002.safetensors")
    with pytest.raises(io.SafetensorsError, match=r"DuplicateTensorName: tensor 'model.layers.0.w' is stored in both") as e:
        io.open_checkpoint(tmp_path)
    assert e.value.kind == "DuplicateTensorName"


def test_name_absent_from_its_shard(tmp_path: Path) -> None:
    make_sharded(tmp_path)
    write_index(tmp_path, {"lm_head.weight": "model-00001-of-00002.safetensors"})
    with pytest.raises(io.SafetensorsError, match=r"TensorNotFound: .*maps tensor 'lm_head.weight'") as e:
        io.open_checkpoint(tmp_path)
    assert e.value.kind == "TensorNotFound"


def test_malformed_index(tmp_path: Path) -> None:
    make_sharded(tmp_path)
    write_index(tmp_path, {}, raw='{"weight_map": [1]}')
    with pytest.raises(io.SafetensorsError, match=r"InvalidIndex: .*weight_map"):
        io.open_checkpoint(tmp_path)


# --- atomic writes -------------------------------------------------------------------------------------------

def test_interrupted_write_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    io.save({"old": torch.ones(3)}, path)
    before = path.read_bytes()
    # 'a' is written to the temporary first; then taking the bytes of 'b' (a meta tensor: no data) throws
    # inside the C++ writer, mid-write.
    with pytest.raises(Exception, match="meta"):
        io.save({"a": torch.randn(100_000), "b": torch.empty(10, device="meta")}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    with pytest.raises(Exception, match="meta"):
        io.save({"a": torch.randn(10), "b": torch.empty(10, device="meta")}, tmp_path / "fresh.safetensors")
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_failure_inside_the_native_writer_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    io.save({"old": torch.ones(3)}, path)
    before = path.read_bytes()
    # A name the format reserves fails in C++ before any byte is written; a bad directory fails at create.
    with pytest.raises(metaprobe.InvalidArgumentError, match="__metadata__"):
        io.save({"__metadata__": torch.ones(1)}, path)
    with pytest.raises(FileNotFoundError):
        io.save({"x": torch.ones(1)}, tmp_path / "no" / "dir.safetensors")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_save_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        io.save({"a": [1, 2]}, tmp_path / "a.safetensors")  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="strings only"):
        io.save({"a": torch.ones(1)}, tmp_path / "a.safetensors", metadata={"epoch": 3})  # type: ignore[dict-item]
    with pytest.raises(io.SafetensorsError, match="HeaderTooLarge"):
        io.serialize({}, {"big": "x" * 100_000_000})


# --- sources -------------------------------------------------------------------------------------------------

def test_as_tensor_source_accepts_path_state_dict_and_module(tmp_path: Path) -> None:
    module = torch.nn.Linear(3, 2)
    sd = module.state_dict()
    io.save(sd, tmp_path / "lin.safetensors")
    for obj in [str(tmp_path / "lin.safetensors"), tmp_path / "lin.safetensors", sd, module,
                io.open_checkpoint(tmp_path / "lin.safetensors")]:
        src = io.as_tensor_source(obj)
        assert isinstance(src, io.TensorSource)
        assert sorted(src.names()) == ["bias", "weight"]
        assert len(src) == 2 and "weight" in src
        assert torch.equal(src.tensor("weight"), sd["weight"])
        assert src.info("weight").shape == (2, 3)
    mem = io.as_tensor_source(sd)
    assert mem.tensor("weight").data_ptr() == sd["weight"].data_ptr()  # no copy
    assert io.as_tensor_source(mem) is mem
    with pytest.raises(TypeError, match="expected a checkpoint path"):
        io.as_tensor_source(42)
    with pytest.raises(metaprobe.InvalidArgumentError, match="no tensor 'nope'"):
        mem.tensor("nope")


def test_io_imports_nothing_heavy_at_module_load() -> None:
    import ast
    tree = ast.parse(Path(io.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & {"pandas", "matplotlib", "tqdm", "scipy"}
