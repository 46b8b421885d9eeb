"""The argument checks of metaprobe.params, .divergence and .probes (python/metaprobe/_checks.py): each wrong
input is metaprobe's own error (or, for a path, flag or container of another type, a TypeError of ours) whose
message names the argument, the value and what was expected; numpy scalars pass where Python numbers do.
test_bad_input_property.py feeds random wrong values; these are the representative cases, messages pinned."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import metaprobe
from metaprobe import InvalidArgumentError, io, params, probes
from metaprobe import divergence  # the function (metaprobe/__init__.py binds the name to it)

META = torch.zeros(2, 2, device="meta")


# --- params ---------------------------------------------------------------------------------------------


def test_params_reject_meta_sparse_and_non_tensors_naming_the_argument():
    with pytest.raises(InvalidArgumentError, match=r"^t: a tensor on the meta device \(shape \[2, 2\], no data\), "
                                                   r"expected a tensor with data"):
        params.tensor_stats(META)
    with pytest.raises(InvalidArgumentError, match=r"^w1: a tensor on the meta device"):
        params.update_stats(torch.ones(2, 2), META)
    with pytest.raises(InvalidArgumentError, match=r"^w: a tensor with layout torch\.sparse_coo, expected a dense"):
        params.spectral_stats(torch.eye(3).to_sparse())
    with pytest.raises(InvalidArgumentError, match=r"^w1: a builtins\.NoneType, expected a torch\.Tensor$"):
        params.update_stats(torch.ones(3), None)
    with pytest.raises(InvalidArgumentError, match=r"^w: a builtins\.str, expected a torch\.Tensor$"):
        params.spectral_stats("x")
    with pytest.raises(InvalidArgumentError, match=r"^w0: a numpy\.ndarray, expected a torch\.Tensor \(wrap it"):
        params.update_spectral_stats(np.eye(3), torch.eye(3))


def test_params_numbers_are_type_checked_and_numpy_scalars_accepted():
    w = torch.ones(3)
    with pytest.raises(InvalidArgumentError, match=r"^atol: got '' \(str\), expected a real number$"):
        params.update_stats(w, w, atol="")
    with pytest.raises(InvalidArgumentError, match=r"^eta: got True \(bool\), expected a real number$"):
        params.update_stats(w, w, eta=True)
    assert params.update_stats(w, w, atol=np.float32(0.5), eta=np.int64(1)) == params.update_stats(w, w, atol=0.5, eta=1.0)

    m = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"^k: got 1180591620717411303424, expected an integer in "
                                                   r"-2\*\*63\.\.2\*\*63-1$"):
        params.spectral_stats(m, k=2**70)
    with pytest.raises(InvalidArgumentError, match=r"^k: got True \(bool\), expected an integer"):
        params.singular_values(m, k=True)
    with pytest.raises(InvalidArgumentError, match=r"^seed: got -1, expected an integer in 0\.\.2\*\*64-1$"):
        params.spectral_stats(m, k=2, seed=-1)
    with pytest.raises(InvalidArgumentError, match=r"^method: got 1 \(int\), expected a str$"):
        params.spectral_stats(m, method=1)
    with pytest.raises(InvalidArgumentError, match=r"^rank_eps: got 'x' \(str\), expected a real number$"):
        params.spectral_stats(m, rank_eps="x")
    with pytest.raises(TypeError, match=r"^flatten: expected True or False, got str 'yes'$"):
        params.spectral_stats(m, flatten="yes")
    with pytest.raises(InvalidArgumentError, match=r"^k: got 'x' \(str\), expected an integer"):
        params.update_spectral_stats(m, m, k="x")
    # the core still owns the meaning of an in-range value
    with pytest.raises(InvalidArgumentError, match=r"k: -1, expected >= 0"):
        params.spectral_stats(m, k=-1)
    assert params.singular_values(m, k=np.int64(2), seed=np.uint64(3))[0].tolist() == \
        params.singular_values(m, k=2, seed=3)[0].tolist()


def test_parse_name_and_fit_power_law_inputs():
    with pytest.raises(InvalidArgumentError, match=r"^name: got 1 \(int\), expected a parameter name \(str\)$"):
        params.parse_name(1)
    with pytest.raises(InvalidArgumentError, match=r"^name: got b'x' \(bytes\), expected a parameter name \(str\)$"):
        params.parse_name(b"x")
    with pytest.raises(InvalidArgumentError, match=r"^name: '\\udcff' holds '\\udcff' at index 0, which is not "
                                                   r"encodable as UTF-8"):
        params.parse_name("\udcff")
    assert params.parse_name("model.layers.3.mlp.up_proj.weight")["layer"] == 3
    with pytest.raises(InvalidArgumentError, match=r"^evals: got 'abc' \(str\), expected a tensor, array or sequence "
                                                   r"of real numbers$"):
        params.fit_power_law("abc")
    with pytest.raises(InvalidArgumentError, match=r"^evals: got \[1\.0, 'x'\] \(list\), expected a tensor"):
        params.fit_power_law([1.0, "x"])
    with pytest.raises(InvalidArgumentError, match=r"^evals: a tensor on the meta device"):
        params.fit_power_law(torch.zeros(5, device="meta"))


def test_checkpoint_walks_check_paths_and_options(tmp_path):
    path = str(tmp_path / "a.st")
    io.save({"w": torch.randn(4, 4)}, path)
    with pytest.raises(InvalidArgumentError, match=r"^tuned: '\\udcff' holds '\\udcff' at index 0, which is not "
                                                   r"encodable as UTF-8"):
        params.compare_checkpoints(path, "\udcff", progress=False)
    with pytest.raises(InvalidArgumentError, match=r"^checkpoint: 'a\\x00b' holds a NUL character at index 1, "
                                                   r"expected a path without NUL$"):
        params.describe("a\x00b", progress=False)
    with pytest.raises(InvalidArgumentError, match=r"^subspace_k: got 'x' \(str\), expected an integer"):
        params.compare_checkpoints(path, path, subspace_k="x", progress=False)
    with pytest.raises(InvalidArgumentError, match=r"^max_spectral_side: got 1\.5 \(float\), expected an integer"):
        params.describe(path, max_spectral_side=1.5, progress=False)
    with pytest.raises(InvalidArgumentError, match=r"^nonfinite: got None \(NoneType\), expected 'nan' or 'error'$"):
        params.compare_checkpoints(path, path, nonfinite=None, progress=False)
    with pytest.raises(TypeError, match=r"^spectra: expected True or False, got str 'no'$"):
        params.compare_checkpoints(path, path, spectra="no", progress=False)  # bool("no") would have been True
    with pytest.raises(TypeError, match=r"^progress: expected True, False or a callable .*, got str 'x'$"):
        params.describe(path, progress="x")
    assert params.compare_checkpoints(path, path, progress=False, subspace_k=np.int64(2),
                                      spectra=np.bool_(False)).summary["matched"] == 1
    cmp = params.compare_checkpoints(path, path, progress=False)
    with pytest.raises(InvalidArgumentError, match=r"^path: .* holds a NUL character"):
        cmp.to_json(str(tmp_path / "r\x00.json"))
    assert not os.path.exists(tmp_path / "r")


# --- divergence -----------------------------------------------------------------------------------------


def test_divergence_tensors():
    p = torch.randn(2, 5)
    with pytest.raises(TypeError, match=r"^p: expected a torch\.Tensor or numpy\.ndarray, got NoneType None$"):
        divergence(None, p)
    with pytest.raises(TypeError, match=r"^q: expected a torch\.Tensor or numpy\.ndarray, got list \[1, 2\]$"):
        divergence(p, [1, 2])
    with pytest.raises(InvalidArgumentError, match=r"^p: a tensor on the meta device \(shape \[2, 2\], no data\)"):
        divergence(META, META)
    with pytest.raises(InvalidArgumentError, match=r"^mask: a tensor on the meta device"):
        divergence(p, p, mask=torch.ones(2, dtype=torch.bool, device="meta"))
    with pytest.raises(InvalidArgumentError, match=r"^targets: a numpy\.ndarray of dtype <U1, expected a numeric array"):
        divergence(p, p, targets=np.array(["x", "y"]))


def test_divergence_scalars_and_names():
    p, q = torch.randn(3, 7), torch.randn(3, 7)
    with pytest.raises(InvalidArgumentError, match=r"^temperature: got '' \(str\), expected a real number$"):
        divergence(p, q, temperature="")
    with pytest.raises(InvalidArgumentError, match=r"^temperature: got tensor\(\[1\., 1\.\]\) \(Tensor\), expected a real"):
        divergence(p, q, temperature=torch.ones(2))
    with pytest.raises(InvalidArgumentError, match=r"^beta: got None \(NoneType\), expected a real number$"):
        divergence(p, q, beta=None)
    with pytest.raises(InvalidArgumentError, match=r"^metrics: element 0 is 1 \(int\), expected a metric name or a "
                                                   r"list of names from kl_pq, "):
        divergence(p, q, metrics=[1])
    with pytest.raises(InvalidArgumentError, match=r"^metrics: got b'js' \(bytes\), expected a metric name"):
        divergence(p, q, metrics=b"js")
    with pytest.raises(InvalidArgumentError, match=r"^metrics: '\\udcff' holds '\\udcff' at index 0"):
        divergence(p, q, metrics="\udcff")
    with pytest.raises(InvalidArgumentError, match=r"^reduction: got None \(NoneType\), expected 'none', 'row' or 'mean'$"):
        divergence(p, q, reduction=None)
    with pytest.raises(InvalidArgumentError, match=r"^base: got 2\.0 \(float\), expected 'e', 2 or '2'$"):
        divergence(p, q, base=2.0)
    with pytest.raises(InvalidArgumentError, match=r"^backend: got 0 \(int\), expected 'auto', 'fused' or 'composite'$"):
        divergence(p, q, backend=0)
    with pytest.raises(InvalidArgumentError, match=r"^ignore_index: got True \(bool\), expected an integer token id"):
        divergence(p, q, ignore_index=True)
    # numpy scalars and a single metric name are what their Python counterparts are
    ref = divergence(p, q, temperature=2.0, base=2, metrics=["js", "kl_pq"], beta=0.25)
    got = divergence(p, q, temperature=np.float32(2.0), base=np.int64(2), metrics=("js", "kl_pq"), beta=np.float64(0.25))
    assert got.base == ref.base == "2"
    torch.testing.assert_close(got.js, ref.js, rtol=0, atol=0)
    assert divergence(p, q, metrics="js").metrics == ("js",)


# --- probes ---------------------------------------------------------------------------------------------


def test_generate_integers_accept_numpy_and_reject_bool():
    one = dict(skills="calculation", domains="math")
    with pytest.raises(InvalidArgumentError, match=r"^seed: got True \(bool\), expected an integer in 0\.\.2\*\*64-1$"):
        probes.generate(n_per_cell=1, seed=True, **one)
    with pytest.raises(InvalidArgumentError, match=r"^seed: got 18446744073709551616, expected an integer in "
                                                   r"0\.\.2\*\*64-1$"):
        probes.generate(n_per_cell=1, seed=2**64, **one)
    with pytest.raises(InvalidArgumentError, match=r"^difficulties: got '1' \(str\), expected an integer or a list of "
                                                   r"integers in 1\.\.5$"):
        probes.generate(n_per_cell=1, difficulties="1", **one)
    with pytest.raises(InvalidArgumentError, match=r"^difficulties: got tensor\(2\) \(Tensor\), expected an integer or "
                                                   r"a list of integers in 1\.\.5$"):
        probes.generate(n_per_cell=1, difficulties=torch.tensor(2), **one)
    with pytest.raises(InvalidArgumentError, match=r"^difficulties: got 6, expected an integer in 1\.\.5$"):
        probes.generate(n_per_cell=1, difficulties=[1, 6], **one)
    ref = probes.generate(n_per_cell=2, difficulties=[2], seed=3, **one)
    assert probes.generate(n_per_cell=np.int64(2), difficulties=np.int64(2), seed=np.uint64(3), **one) == ref
    assert probes.generate(n_per_cell=2, difficulties=np.array([2]), seed=3, **one) == ref


def test_generate_names():
    with pytest.raises(InvalidArgumentError, match=r"^skills: got 3 \(int\), expected 'all', a name or a list of names "
                                                   r"from calculation, "):
        probes.generate(skills=3, n_per_cell=1)
    with pytest.raises(InvalidArgumentError, match=r"^domains: element 0 is array\(\[0\., 0\.\]\) \(ndarray\), expected "
                                                   r"'all', a name or a list of names from math, "):
        probes.generate(domains=np.zeros((2, 2)), n_per_cell=1)
    with pytest.raises(InvalidArgumentError, match=r"^skill: got an empty list, expected 'all' \(every skill\)"):
        probes.ProbeSet([]).filter(skill=[])
    assert len(probes.generate(skills=np.array(["calculation"]), domains=("math",), n_per_cell=1)) == 1


def test_generate_item_and_render():
    with pytest.raises(InvalidArgumentError, match=r"^family: got None \(NoneType\), expected a generator family name "
                                                   r"\(str\)$"):
        probes.generate_item(None)
    with pytest.raises(InvalidArgumentError, match=r"^seed: got -1, expected an integer in 0\.\.2\*\*64-1$"):
        probes.generate_item("math.recurrence", seed=-1)
    with pytest.raises(InvalidArgumentError, match=r"^difficulty: got 2\.0 \(float\), expected an integer in 1\.\.5$"):
        probes.generate_item("math.recurrence", difficulty=2.0)
    item = probes.generate_item("math.recurrence", index=np.int64(2))
    assert item == probes.generate_item("math.recurrence", index=2)
    with pytest.raises(InvalidArgumentError, match=r"^template: got None \(NoneType\), expected a template name from "
                                                   r"plain, chat, few_shot$"):
        probes.render(item, template=None)
    with pytest.raises(InvalidArgumentError, match=r"^template: got b'chat' \(bytes\)"):
        probes.render(item, template=b"chat")
    with pytest.raises(InvalidArgumentError, match=r"^k: got 2147483648, expected an integer in 0\.\.2\*\*31-1$"):
        probes.render(item, template="few_shot", k=2**31)
    with pytest.raises(TypeError, match=r"^pool: got 3 \(int\), expected an iterable of metaprobe Items or item dicts$"):
        probes.render(item, pool=3)
    with pytest.raises(TypeError, match=r"^item is a int, expected a metaprobe Item or a dict"):
        probes.render(3)
    with pytest.raises(InvalidArgumentError, match=r"^seed: got 'x' \(str\)"):
        probes.ProbeSet([item]).render(seed="x")
    assert probes.render(item, k=np.int64(1), seed=np.uint64(0)) == probes.render(item, k=1, seed=0)


def test_probe_set_paths_text_and_items(tmp_path):
    with pytest.raises(TypeError, match=r"^items: got 3 \(int\), expected an iterable of metaprobe Items"):
        probes.ProbeSet(3)
    with pytest.raises(InvalidArgumentError, match=r"^text: got 3 \(int\), expected JSONL text \(str\)$"):
        probes.ProbeSet.from_jsonl_text(3)
    with pytest.raises(InvalidArgumentError, match=r"^path: '\\udcff' holds '\\udcff' at index 0"):
        probes.ProbeSet.from_jsonl("\udcff")
    with pytest.raises(TypeError, match=r"^path: expected a str or os\.PathLike path, got int 3$"):
        probes.ProbeSet([]).to_jsonl(3)
    # a NUL used to cut the path: to_jsonl("c\x00d") wrote "c", io.save("a\x00b") wrote "a"
    with pytest.raises(InvalidArgumentError, match=r"^path: '.*c\\x00d' holds a NUL character at index \d+"):
        probes.ProbeSet([]).to_jsonl(str(tmp_path / "c\x00d"))
    with pytest.raises(InvalidArgumentError, match=r"holds a NUL character"):
        io.save({"w": torch.ones(2)}, str(tmp_path / "a\x00b"))
    assert os.listdir(tmp_path) == []
    with pytest.raises(InvalidArgumentError, match=r"^seed: got -1, expected an integer in 0\.\.2\*\*64-1$"):
        probes.families(seed=-1)


def test_every_argument_error_is_a_metaprobe_error_or_our_type_error():
    """The classes callers catch: InvalidArgumentError is both a MetaprobeError and a ValueError."""
    with pytest.raises(metaprobe.MetaprobeError):
        params.tensor_stats(META)
    with pytest.raises(ValueError):
        probes.generate(n_per_cell=1, seed=-1)
