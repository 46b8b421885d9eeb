"""Property: the public Python functions of metaprobe.io, .params, .divergence and .probes, fed random wrong
types and values, raise only metaprobe's error classes or a TypeError of our own (never a pybind signature dump
"incompatible function arguments", never another exception, a crash or a hang).

One test per module. Explicit cases asserting the error types and messages are in test_argument_checks.py."""
from __future__ import annotations

import contextlib
import importlib
import math
import os
import tempfile

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import metaprobe  # noqa: E402
from metaprobe import io, params, probes  # noqa: E402

# The module, not the function: metaprobe/__init__.py binds the name `divergence` to the function
# metaprobe.divergence.divergence, so `from metaprobe import divergence` gives the function.
dv = importlib.import_module("metaprobe.divergence")

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Wrong values of every kind: wrong types, out-of-range numbers, hostile strings, odd containers and tensors.
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([-1, 0, 2**31, 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "\udcff", "a\x00b", "/nonexistent/x", "..", "\n", "js", "all"]),
    st.binary(max_size=12),
    st.lists(st.integers(-3, 3), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.sampled_from([object(), np.int64(1), np.float32(0.5), np.zeros((2, 2)), np.array(["x"]),
                     torch.zeros(0), torch.zeros(2, 3, dtype=torch.int64), torch.tensor(float("nan")),
                     torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 2, device="meta"), {"w": 1},
                     [("w", 1)], (1, 2), slice(1), math.pi]),
)


def _check(call) -> None:
    """Runs call(); only metaprobe errors or a TypeError that is not a pybind dump may come out."""
    try:
        call()
    except metaprobe.MetaprobeError as exc:
        assert str(exc), f"{type(exc).__name__} with an empty message"
        assert "incompatible function arguments" not in str(exc)
    except TypeError as exc:
        assert "incompatible function arguments" not in str(exc), str(exc)[:500]
        assert str(exc)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        io.save({"w": torch.randn(4, 4), "b": torch.randn(4)}, os.path.join(d, "a.st"))
        yield d


@SETTINGS
@given(which=st.integers(0, 8), bad=WRONG)
def test_io_functions_reject_wrong_input_cleanly(workdir, which, bad):
    good = {"w": torch.ones(2)}
    out = os.path.join(workdir, "out.st")
    calls = [
        lambda: io.load(bad),
        lambda: io.open_checkpoint(bad),
        lambda: io.load(os.path.join(workdir, "a.st"), copy=bad),
        lambda: io.save(bad, out),
        lambda: io.save({bad if isinstance(bad, str) else "k": bad}, out),
        lambda: io.save(good, bad),
        lambda: io.save(good, out, metadata=bad),
        lambda: io.serialize(good, metadata={"k": bad}),
        lambda: io.as_tensor_source(bad),
    ]
    with contextlib.chdir(workdir):  # a random string path that happens to be valid lands here, not in the repo
        _check(calls[which])


@SETTINGS
@given(which=st.integers(0, 6), bad=WRONG)
def test_params_functions_reject_wrong_input_cleanly(workdir, which, bad):
    a = os.path.join(workdir, "a.st")
    calls = [
        lambda: params.tensor_stats(bad),
        lambda: params.update_stats(torch.ones(3), bad),
        lambda: params.update_stats(torch.ones(3), torch.ones(3), atol=bad),
        lambda: params.spectral_stats(bad),
        lambda: params.parse_name(bad),
        lambda: params.compare_checkpoints(a, bad, progress=False),
        lambda: params.describe(bad, progress=False),
    ]
    _check(calls[which])


@SETTINGS
@given(which=st.integers(0, 7), bad=WRONG)
def test_divergence_rejects_wrong_input_cleanly(which, bad):
    p, q = torch.randn(2, 5), torch.randn(2, 5)
    calls = [
        lambda: dv.divergence(bad, q),
        lambda: dv.divergence(p, bad),
        lambda: dv.divergence(p, q, mask=bad),
        lambda: dv.divergence(p, q, targets=bad),
        lambda: dv.divergence(p, q, temperature=bad),
        lambda: dv.divergence(p, q, metrics=bad),
        lambda: dv.divergence(p, q, reduction=bad, base=bad),
        lambda: dv.divergence(p, q, targets=torch.zeros(2, dtype=torch.int64), ignore_index=bad),
    ]
    _check(calls[which])


@SETTINGS
@given(which=st.integers(0, 6), bad=WRONG)
def test_probes_functions_reject_wrong_input_cleanly(which, bad):
    calls = [
        lambda: probes.generate(skills=bad, n_per_cell=1),
        lambda: probes.generate(domains=bad, n_per_cell=1),
        lambda: probes.generate(n_per_cell=bad if not isinstance(bad, int) or abs(bad) < 3 else 2**31),
        lambda: probes.generate(n_per_cell=1, difficulties=bad, skills=["calculation"], domains=["math"]),
        lambda: probes.generate(n_per_cell=1, seed=bad, skills=["calculation"], domains=["math"]),
        lambda: probes.generate_item(bad),
        lambda: probes.render(probes.generate_item("math.recurrence"), template=bad, k=1),
    ]
    _check(calls[which])
