"""The bindings take typed option objects (issue 17): SftOptions, GrpoOptions, GenerateOptions, OptimizerOptions and
DivergenceOptions are bound C++ structs whose defaults are C++'s, whose bad values raise InvalidArgumentError
naming the field, and whose typed calls give bitwise the results of the loose-argument calls they replaced."""
import copy
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import metaprobe
from metaprobe import _core, lm, probes
from metaprobe.divergence import divergence

_lm = _core.lm


# --- defaults -----------------------------------------------------------------------------------------------------

def test_defaults_are_the_cpp_structs_values():
    # the values of cpp/include/metaprobe/lm/{train,generate}.hpp and divergence.hpp (and of docs/lm.md)
    o = lm.SftOptions()
    assert (o.steps, o.batch_size, o.seed, o.loss_on, o.truncate) == (100, 16, 0, "completion", False)
    assert (o.optimizer.lr, o.optimizer.weight_decay, o.optimizer.beta1, o.optimizer.beta2, o.optimizer.eps,
            o.optimizer.warmup, o.optimizer.min_lr_ratio, o.optimizer.max_grad_norm) == (
        1e-3, 0.01, 0.9, 0.95, 1e-8, 0, 0.1, 1.0)
    g = lm.GrpoOptions()
    assert (g.steps, g.prompts_per_step, g.group_size, g.temperature, g.top_k, g.max_new_tokens, g.stop,
            g.clip_eps, g.kl_coef, g.inner_steps, g.adv_eps, g.seed) == (50, 4, 8, 1.0, 0, 32, [], 0.2, 0.0, 1, 1e-6, 0)
    # GRPO's optimizer is {1e-4, 0.0}, not OptimizerOptions' own defaults
    assert (g.optimizer.lr, g.optimizer.weight_decay) == (1e-4, 0.0)
    assert lm.OptimizerOptions().weight_decay == 0.01
    gen = lm.GenerateOptions()
    assert (gen.max_new_tokens, gen.temperature, gen.top_k, gen.stop, gen.stop_at_eos, gen.seed, gen.batch_size) == (
        64, 0.0, 0, [], True, 0, 64)
    d = _core.DivergenceOptions()
    assert d.metrics == list(_core.DIVERGENCE_METRICS)
    assert (d.temperature, d.reduction, d.base, d.beta, d.mask, d.targets, d.ignore_index, d.backend) == (
        1.0, "none", "e", 0.5, None, None, -100, "auto")


def test_public_methods_restate_no_option_and_default_to_the_bound_structs():
    # TinyLM.sft/grpo/generate take an options object plus its fields as keywords (transformers' generate
    # convention); no option and no default is spelled in their signatures.
    for method, extra in ((lm.TinyLM.sft, ["examples"]), (lm.TinyLM.grpo, ["prompts", "reward_fn"]),
                          (lm.TinyLM.generate, ["prompts"])):
        params = inspect.signature(method).parameters
        named = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        assert named == ["self", *extra, "options"] + (["on_step", "progress"] if method is not lm.TinyLM.generate
                                                       else []), method.__name__
        assert params["options"].default is None


def test_options_object_and_keywords_compose(one_thread):
    ex = [(f"{a}+1=", str(a + 1)) for a in range(6)]
    base = lm.TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32, seed=3)
    runs = {}
    opts = lm.SftOptions(steps=3, batch_size=2, seed=1, optimizer={"lr": 2e-3})
    for name, call in (("object", lambda m: m.sft(ex, opts)),
                       ("keywords", lambda m: m.sft(ex, steps=3, batch_size=2, seed=1, lr=2e-3)),
                       ("object+keywords", lambda m: m.sft(ex, lm.SftOptions(steps=3, seed=1), batch_size=2, lr=2e-3))):
        m = base.clone()
        runs[name] = (call(m).losses, _digest(m))
    assert runs["object"] == runs["keywords"] == runs["object+keywords"]
    assert opts.optimizer.lr == 2e-3 and opts.steps == 3  # the caller's object is copied, not changed
    m = base.clone()
    m.sft(ex, opts, steps=1)
    assert opts.steps == 3
    # defaults: no options and no keywords is SftOptions() (100 steps would be slow; generate shows it)
    g = base.generate(["1+1="], max_new_tokens=3)
    assert [x.token_ids for x in g] == [x.token_ids for x in base.generate(["1+1="], lm.GenerateOptions(max_new_tokens=3))]
    assert base.generate("1+1=", stop=None, max_new_tokens=3)[0].completion == g[0].completion


def test_options_and_keywords_are_checked():
    m = lm.TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32, seed=3)
    with pytest.raises(TypeError, match="sft\\(\\) got an unexpected keyword argument 'learning_rate', expected a "
                                        "field of SftOptions: steps, batch_size"):
        m.sft([("a", "b")], learning_rate=1e-3)
    with pytest.raises(TypeError, match="grpo: options is a SftOptions, expected GrpoOptions or None"):
        m.grpo(["a"], lambda c, i: 0.0, lm.SftOptions())
    with pytest.raises(metaprobe.InvalidArgumentError, match="lr: got 'x' \\(str\\), expected a float"):
        m.sft([("a", "b")], lr="x")
    with pytest.raises(metaprobe.InvalidArgumentError, match="max_new_tokens"):
        m.generate("a", max_new_tokens="many")


def test_options_round_trip_through_dicts_repr_and_copies():
    o = lm.SftOptions(steps=7, loss_on="all", optimizer={"lr": 0.25, "warmup": 3})
    assert o.optimizer.lr == 0.25 and o.optimizer.warmup == 3 and o.optimizer.beta1 == 0.9
    assert lm.SftOptions(**o.to_dict()) == o
    assert copy.deepcopy(o) == o and copy.copy(o) == o
    assert o != lm.SftOptions()
    assert repr(o).startswith("SftOptions(steps=7, batch_size=16, optimizer=OptimizerOptions(lr=0.25, ")
    assert "loss_on='all'" in repr(o)
    # the nested object is a view: writing through it changes the options
    o.optimizer.lr = 0.5
    assert o.optimizer.lr == 0.5
    g = lm.GrpoOptions(stop=["\n"], optimizer=lm.OptimizerOptions(lr=2e-4))
    assert g.stop == ["\n"] and g.optimizer.lr == 2e-4 and g.optimizer.weight_decay == 0.01
    d = _core.DivergenceOptions(metrics="js", base="bits", mask=torch.ones(2, dtype=torch.bool))
    assert d.metrics == ["js"] and d.base == "2" and d.mask.dtype == torch.bool
    assert "SftOptions(steps=100" in lm.SftOptions.__doc__


# --- bad values --------------------------------------------------------------------------------------------------

def test_bad_option_values_name_the_field():
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^lr: got 'x' \(str\), expected a float$"):
        lm.OptimizerOptions(lr="x")
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^optimizer\.lr: got 'x' \(str\), expected a float$"):
        lm.SftOptions(optimizer={"lr": "x"})
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^optimizer: got a list, expected OptimizerOptions or a dict of its fields$"):
        lm.SftOptions(optimizer=[1])
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^steps: got 1\.5 \(float\), expected an int$"):
        lm.SftOptions(steps=1.5)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^seed: got -1 \(int\), expected a non-negative int$"):
        lm.GrpoOptions(seed=-1)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^stop: got 'ab' \(str\), expected a list of str$"):
        lm.GenerateOptions(stop="ab")
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^loss_on: unknown value 'prompt'"):
        lm.SftOptions(loss_on="prompt")
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^loss_on: got 1, expected a str from completion, all$"):
        lm.SftOptions(loss_on=1)
    o = lm.SftOptions()
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^batch_size: got None \(NoneType\), expected an int$"):
        o.batch_size = None
    assert o.batch_size == 16  # a rejected assignment leaves the field as it was
    with pytest.raises(TypeError, match=r"^SftOptions: unknown field 'stepz', expected one of steps, batch_size, "):
        lm.SftOptions(stepz=1)
    with pytest.raises(TypeError, match=r"^OptimizerOptions: unknown field 'optimizer\.rate', expected one of lr, "):
        lm.SftOptions(optimizer={"rate": 1})
    with pytest.raises(TypeError):
        lm.SftOptions(100)  # keywords only
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^metrics: unknown metric name 'kl'"):
        _core.DivergenceOptions(metrics=["kl"])
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^metrics: got 3, expected None, a metric name or a list"):
        _core.DivergenceOptions(metrics=3)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^mask: got a int, expected a torch.Tensor or None$"):
        _core.DivergenceOptions(mask=3)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^reduction: unknown value 'sum'"):
        _core.DivergenceOptions(reduction="sum")


def test_validate_and_the_typed_calls_reject_out_of_range_values():
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^steps: got -1, expected >= 0$"):
        lm.SftOptions(steps=-1).validate()
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^optimizer\.lr: got -1\.000000, expected a finite"):
        lm.GrpoOptions(optimizer={"lr": -1.0}).validate()
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^top_k: got -1, expected >= 0"):
        lm.GenerateOptions(top_k=-1).validate()
    lm.SftOptions().validate()
    m = lm.TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^batch_size: got 0, expected >= 1$"):
        _lm.sft_train(m._model, [("a", "b")], lm.SftOptions(batch_size=0))
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^clip_eps: got 1\.000000"):
        _lm.grpo_train(m._model, ["a"], lambda c, i: 0.0, lm.GrpoOptions(clip_eps=1.0))
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^max_new_tokens: got 0, expected >= 1$"):
        _lm.generate(m._model, ["a"], lm.GenerateOptions(max_new_tokens=0))
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^temperature: got -1\.000000"):
        m.generate("a", temperature=-1.0)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^temperature: got 'hot' \(str\), expected a float$"):
        m.grpo(["a"], lambda c, i: 0.0, temperature="hot")


# --- the typed calls give the results of the loose calls they replaced ------------------------------------------------

def _digest(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_RECORDED = r"""
import hashlib, json
import torch
torch.set_num_threads(1)
from metaprobe import lm

def digest(model):
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

m = lm.TinyLM(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64, seed=5)
ex = [(f"{a}+{b}=", str(a + b)) for a in range(4) for b in range(4)]
h = m.sft(ex, steps=6, batch_size=4, lr=3e-3, warmup=2, seed=1, loss_on="all")
out = {"sft_loss": h.losses[-1].hex(), "sft_grad_norm": h.steps[-1]["grad_norm"].hex(), "sft_digest": digest(m),
       "sft_keys": list(h.steps[0]), "tokens_int": isinstance(h.steps[0]["tokens"], int)}
g = m.generate(["1+2=", "3+3="], max_new_tokens=4, temperature=0.8, top_k=5, seed=4, stop=["\n"])
out["completions"] = [x.completion for x in g]
out["logprobs"] = [x.logprobs[0].hex() for x in g]
prompts = [f"{a}+{a}=" for a in range(4)]
hg = m.grpo(prompts, lambda c, i: float(c[:1] == str(2 * i)[:1]), steps=3, prompts_per_step=2, group_size=4,
            max_new_tokens=2, lr=1e-3, kl_coef=0.1, inner_steps=2, seed=3, temperature=0.9, stop=["\n"])
out.update(grpo_loss=hg.steps[-1]["loss"].hex(), grpo_kl=hg.steps[-1]["kl"].hex(),
           rewards=[s["mean_reward"] for s in hg.steps], grpo_digest=digest(m),
           indices_list=isinstance(hg.steps[0]["prompt_indices"], list))
print(json.dumps(out))
"""


def test_typed_lm_calls_match_the_loose_calls_of_main_bitwise():
    # Numbers recorded with main's loose-argument bindings (230645d, one thread) on the same script, with
    # ATen's AVX2 kernels. ATen picks its AVX-512 kernels on a CPU that has them, and their reductions (the
    # gradient norm's sum of squares) add in another order: the last bits of the norm, and through the clip
    # the weights, differ there. So the script runs in a child pinned to ATEN_CPU_CAPABILITY=avx2.
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    done = subprocess.run([sys.executable, "-c", _RECORDED], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["sft_loss"] == "0x1.05b6ae0000000p+2"
    assert got["sft_grad_norm"] == "0x1.1643fdae961fbp+1"
    assert got["sft_digest"] == "3d3bd257b4f3313a"
    assert got["completions"] == ["2+22", "3"]
    assert got["logprobs"] == ["-0x1.7cf05ffedf424p+0", "-0x1.5a7ff270245c8p+0"]
    assert got["grpo_loss"] == "0x1.7658ce0000000p-14"
    assert got["grpo_kl"] == "0x1.d3ef000000000p-11"
    assert got["rewards"] == [0.125, 0.0, 0.0]
    assert got["grpo_digest"] == "f34e3a67ff5321e1"
    # the step records keep their keys and types
    assert got["sft_keys"] == ["step", "loss", "lr", "grad_norm", "tokens"]
    assert got["tokens_int"] and got["indices_list"]


def test_the_binding_called_with_one_options_object_equals_the_keyword_face(one_thread):
    ex = [(f"{a}*2=", str(2 * a)) for a in range(6)]
    a = lm.TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32, seed=2)
    b = a.clone()
    hist = a.sft(ex, steps=3, batch_size=2, lr=2e-3, seed=4)
    opts = lm.SftOptions(steps=3, batch_size=2, seed=4)
    opts.optimizer.lr = 2e-3
    seen = []
    records = _lm.sft_train(b._model, ex, opts, seen.append)
    assert [r["loss"] for r in records] == hist.losses and len(seen) == 3
    assert _digest(a) == _digest(b)


def test_divergence_options_reach_the_kernel():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(3, 5, 37, generator=g)
    q = torch.randn(3, 5, 37, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.2
    t = torch.randint(0, 37, (3, 5), generator=g)
    t[0, 1] = -7
    kw = dict(mask=mask, targets=t, temperature=1.5, metrics=["js", "kl_qp", "target_rank_q"], reduction="row",
              beta=0.3, ignore_index=-7)
    typed = _core.divergence(p, q, _core.DivergenceOptions(base="2", **kw))
    public = divergence(p, q, base=2, **kw)
    assert set(typed) == {"js", "kl_qp", "target_rank_q", "count"} and typed["count"] == public.count
    for k in ("js", "kl_qp", "target_rank_q"):
        assert torch.equal(typed[k], public[k])
    nats = divergence(p, q, base="e", **kw)
    assert torch.allclose(nats.kl_qp / math.log(2), public.kl_qp, rtol=1e-12, atol=0)
    assert not torch.equal(divergence(p, q, metrics="js", beta=0.5).js, divergence(p, q, metrics="js", beta=0.3).js)
    assert typed["count"] == int((mask & (t != -7)).sum())


# --- probe items ---------------------------------------------------------------------------------------------------

def test_to_pandas_is_the_item_field_list_converted_once():
    suite = probes.generate(n_per_cell=2, seed=1, noop_share=0.5)
    df = suite.to_pandas()
    assert tuple(df.columns) == probes.ITEM_FIELDS
    assert probes.ITEM_FIELDS[:3] == ("id", "skill", "domain") and probes.ITEM_FIELDS[-2:] == ("meta", "extra")
    for row, it in zip(df.itertuples(index=False), suite):
        for col in probes.ITEM_FIELDS:
            assert getattr(row, col) == getattr(it, col), col
    assert df["noop"].any() and isinstance(df["choices"][0], list) and isinstance(df["meta"][0], dict)
    assert list(probes.ProbeSet().to_pandas().columns) == list(probes.ITEM_FIELDS)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"^items\[1\]: got a dict, expected a metaprobe Item$"):
        _core._probes_item_columns([suite[0], {}])


def test_item_pickles_as_its_fields_not_as_text():
    import pickle

    it = probes.generate_item("math.recurrence", difficulty=2)
    it.extra = {"source": "lab", "n": [1, 2]}
    state = it.__getstate__()
    assert isinstance(state, dict) and tuple(state) == probes.ITEM_FIELDS
    back = pickle.loads(pickle.dumps(it))
    assert back == it and back.extra == {"source": "lab", "n": [1, 2]}


def test_spectral_options_are_one_bound_struct():
    # _core.params.SpectralOptions is the C++ struct (metaprobe/params/spectral.hpp); the Python keywords of
    # params.spectral_stats & co. become one such object, and the unknown-key message lists its fields.
    o = _core.params.SpectralOptions()
    assert (o.k, o.method, o.flatten, o.tolerance, o.power_iterations, o.randomize) == (0, "auto", True, 1e-3, 6, False)
    with pytest.raises(metaprobe.InvalidArgumentError, match="method: 'qr', expected one of auto, gram, svd"):
        _core.params.SpectralOptions(method="qr")
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match="spectral option 'oversample': unknown, expected one of k, flatten, method, "):
        metaprobe.params.spectral_stats(torch.randn(4, 3), oversample=3)
    w = torch.randn(12, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = metaprobe.params.spectral_stats(w, method="svd")
    b = _core.params.spectral_stats(w, _core.params.SpectralOptions(method="svd"))
    assert a["svd_method"] == b["svd_method"] == "svd" and a["stable_rank"] == b["stable_rank"]


def test_compare_and_describe_options_are_bound_structs():
    c = _core.params.CompareOptions()
    assert (c.update.atol, c.update.eta, c.nonfinite, c.spectra, c.subspace_k, c.release_pages) == (
        1e-5, 1e-3, "nan", False, 16, True)
    assert c.spectral == _core.params.SpectralOptions()
    c2 = _core.params.CompareOptions(update={"atol": 1e-4}, spectral={"method": "svd"})
    assert c2.update.atol == 1e-4 and c2.update.eta == 1e-3 and c2.spectral.method == "svd"
    with pytest.raises(metaprobe.InvalidArgumentError, match="nonfinite: 'drop', expected one of nan, error"):
        _core.params.CompareOptions(nonfinite="drop")
    assert sorted(_core.params.DescribeOptions().to_dict()) == ["max_spectral_side", "release_pages", "spectra",
                                                                "spectral"]
    w = {"a": torch.randn(6, 4, generator=torch.Generator().manual_seed(1))}
    w1 = {"a": w["a"] + 1e-3}
    got = metaprobe.params.compare_checkpoints(w, w1, progress=False, atol=1e-2)
    assert got.tensors.loc["a", "sparsity_abs"] == 1.0


def test_suite_spec_is_the_cpp_struct():
    spec = _core.SuiteSpec()
    assert spec.skills == list(probes.SKILLS) and spec.domains == list(probes.DOMAINS)
    assert (spec.n_per_cell, spec.difficulties, spec.seed, spec.on_short_supply) == (50, [1, 2, 3], 0, "raise")
    assert spec.surface == _core.SurfaceOptions() and spec.surface.phrasing == "varied"
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"skills\[1\]"):
        _core.SuiteSpec(skills=["calculation", "juggling"])
    with pytest.raises(metaprobe.InvalidArgumentError, match="expected a list of str"):
        _core.SuiteSpec(skills="calculation")
    typed = _core.SuiteSpec(skills=["enumeration"], domains=["math"], n_per_cell=4, difficulties=[1], seed=9,
                            surface={"phrasing": "canonical"})
    items, shortfalls = _core._probes_generate(typed)
    ref = probes.generate(skills="enumeration", domains="math", n_per_cell=4, difficulties=[1], seed=9,
                          phrasing="canonical")
    assert [it.id for it in items] == ref.ids and shortfalls == []
