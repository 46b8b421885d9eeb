"""metaprobe.lm: tokenizer (HF convention), TinyLM forward/padding, save/load, torch twin + TorchScript,
generation, SFT and GRPO through the bindings (Python callables as rewards and callbacks)."""
from __future__ import annotations

import json
import struct

import pytest
import torch

import metaprobe
from metaprobe import lm

SMALL = dict(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64, seed=5)


@pytest.fixture(scope="module")
def model() -> lm.TinyLM:
    return lm.TinyLM(**SMALL)


# -- tokenizer -------------------------------------------------------------------------------------------

def test_tokenizer_ids_are_fixed():
    tok = lm.CharTokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, len(tok)) == (0, 1, 2, 100)
    text = "\n" + "".join(chr(c) for c in range(32, 127))
    ids = tok.encode(text, add_special_tokens=False)
    assert ids == list(range(4, 100))
    assert tok.decode(ids) == text
    assert tok.encode("a") == [1, 5 + ord("a") - 32]
    assert tok.encode("\t", add_special_tokens=False) == [3]
    assert tok.decode([1, 70, 2], skip_special_tokens=False) == "<bos>" + chr(70 - 5 + 32) + "<eos>"


def test_tokenizer_hf_call_convention_pads_both_sides():
    tok = lm.CharTokenizer()
    enc = tok(["abc", "a"], padding=True, return_tensors="pt")
    assert enc["input_ids"].shape == (2, 4) and enc.input_ids.dtype == torch.long
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    tok.padding_side = "left"
    enc = tok(["abc", "a"], padding=True, return_tensors="pt")
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert enc["input_ids"][1].tolist() == [0, 0, 1, tok.encode("a", False)[0]]
    assert tok.decode(enc["input_ids"][1]) == "a"
    assert tok.batch_decode(enc["input_ids"]) == ["abc", "a"]
    single = tok("hi")
    assert single["input_ids"] == tok.encode("hi")


def test_tokenizer_errors_name_the_argument():
    tok = lm.CharTokenizer()
    with pytest.raises(metaprobe.InvalidArgumentError, match="padding_side: unknown value 'middle'"):
        tok.padding_side = "middle"
    with pytest.raises(metaprobe.InvalidArgumentError, match="value 100 at index 1"):
        tok.decode([5, 100])
    with pytest.raises(metaprobe.InvalidArgumentError, match="need padding=True"):
        tok(["ab", "a"], padding=False, return_tensors="pt")
    with pytest.raises(metaprobe.UnsupportedError, match="return_tensors: got 'np'"):
        tok("a", return_tensors="np")


# -- model -----------------------------------------------------------------------------------------------

def test_padding_and_batching_do_not_change_real_token_logits(model):
    tok = lm.CharTokenizer()
    texts = ["x=7; y=12. Answer: 19", "ab", "the quick brown fox"]
    singles = [model(torch.tensor([tok.encode(t)]))[0] for t in texts]
    for side in ("right", "left"):
        tok.padding_side = side
        enc = tok(texts, padding=True, return_tensors="pt")
        logits = model(enc["input_ids"], enc["attention_mask"])
        assert logits.shape == (3, enc["input_ids"].shape[1], 100) and logits.dtype == torch.float32
        for i, t in enumerate(texts):
            real = enc["attention_mask"][i].bool()
            torch.testing.assert_close(logits[i][real], singles[i], atol=1e-5, rtol=0)


def test_state_dict_shares_memory_and_uses_llama_names(model):
    clone = model.clone()
    sd = clone.state_dict()
    assert list(sd)[:3] == ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                            "model.layers.0.self_attn.q_proj.weight"]
    assert list(sd)[-1] == "lm_head.weight"
    ids = torch.tensor([[1, 40, 50]])
    before = clone(ids)
    sd["lm_head.weight"].zero_()
    assert torch.count_nonzero(clone(ids)) == 0
    assert torch.equal(model(ids), before)
    assert not sd["lm_head.weight"].requires_grad


def test_forward_errors(model):
    with pytest.raises(metaprobe.InvalidArgumentError, match="expected a 2-D tensor"):
        model(torch.tensor([1, 2]))
    with pytest.raises(metaprobe.InvalidArgumentError, match="value 100 is outside the vocabulary"):
        model(torch.tensor([[1, 100]]))
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"config.d_model: got 30 with n_heads 4"):
        lm.TinyLM(d_model=30, n_heads=4)


def test_save_load_roundtrip_and_metadata(model, tmp_path):
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = lm.TinyLM.load(path)
    assert back.config == model.config
    ids = torch.randint(4, 100, (2, 11))
    assert torch.equal(back(ids), model(ids))
    assert torch.equal(lm.TinyLM(str(path))(ids), model(ids))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    config = json.loads(header["__metadata__"][lm.CONFIG_METADATA_KEY])
    assert config["d_model"] == 32 and config["n_layers"] == 2
    with pytest.raises(metaprobe.IoError):
        lm.TinyLM.load(tmp_path / "absent.safetensors")


def test_torch_twin_matches_and_scripts(model, tmp_path):
    tok = lm.CharTokenizer(padding_side="left")
    enc = tok(["hello world", "x=1"], padding=True, return_tensors="pt")
    twin = model.to_torch()
    assert set(twin.state_dict()) == set(model.state_dict())
    with torch.no_grad():
        ref = model(enc["input_ids"], enc["attention_mask"])
        torch.testing.assert_close(twin(enc["input_ids"], enc["attention_mask"]), ref, atol=1e-5, rtol=0)
        path = tmp_path / "m.pt"
        model.to_torchscript(path)
        scripted = torch.jit.load(str(path))
        torch.testing.assert_close(scripted(enc["input_ids"], enc["attention_mask"]), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(scripted(enc["input_ids"]), model(enc["input_ids"]), atol=1e-5, rtol=0)
    file = tmp_path / "w.safetensors"
    model.save(file)
    with torch.no_grad():
        torch.testing.assert_close(lm.TinyTransformerTorch.from_file(file)(enc["input_ids"]),
                                   model(enc["input_ids"]), atol=1e-5, rtol=0)


def test_hf_facade(model):
    hf = model.as_hf()
    tok = lm.CharTokenizer()
    enc = tok(["abc", "a"], padding=True, return_tensors="pt")
    out = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert torch.equal(out.logits, model(enc["input_ids"], enc["attention_mask"]))
    assert hf.config.vocab_size == 100 and hf.eval() is hf


# -- generation and training ----------------------------------------------------------------------------

def test_generate_greedy_matches_manual_decoding(model):
    gens = model.generate(["x=3:", "a longer prompt"], max_new_tokens=6, stop_at_eos=False)
    tok = lm.CharTokenizer()
    for prompt, g in zip(["x=3:", "a longer prompt"], gens):
        ids = tok.encode(prompt)
        for k in range(6):
            logits = model(torch.tensor([ids]))[0, -1].double()
            nxt = int(logits.argmax())
            assert g.token_ids[k] == nxt
            assert g.logprobs[k] == pytest.approx(float(torch.log_softmax(logits, 0)[nxt]), abs=1e-5)
            ids.append(nxt)
        assert g.finish_reason == "length"


def test_generate_is_seeded_and_batch_independent(model):
    prompts = ["a", "bb", "ccc", "a"]
    a = model.generate(prompts, max_new_tokens=8, temperature=1.0, seed=3)
    b = model.generate(prompts, max_new_tokens=8, temperature=1.0, seed=3, batch_size=1)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    with pytest.raises(metaprobe.InvalidArgumentError, match="temperature"):
        model.generate("a", temperature=-1.0)


def test_sft_lowers_loss_and_reports_progress():
    m = lm.TinyLM(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=32, seed=1)
    examples = [(f"{a}+{b}=", str(a + b)) for a in range(10) for b in range(10)]
    seen = []
    hist = m.sft(examples, steps=40, batch_size=16, lr=3e-3, seed=2, on_step=seen.append)
    assert len(hist) == 40 and len(seen) == 40
    assert sum(hist.losses[-5:]) / 5 < 0.7 * sum(hist.losses[:5]) / 5
    frame = hist.to_frame()
    assert list(frame.columns[:2]) == ["step", "loss"]
    stopped = m.sft(examples, steps=10, on_step=lambda r: r["step"] < 2)
    assert len(stopped) == 2
    with pytest.raises(metaprobe.InvalidArgumentError, match="loss_on: unknown value 'prompt'"):
        m.sft(examples, loss_on="prompt")


def test_grpo_with_python_reward_raises_reward_and_propagates_errors():
    prompts = [f"x={d}:" for d in range(10)]
    m = lm.TinyLM(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=32, seed=21)
    m.sft([(p, str(k)) for p in prompts for k in range(10)], steps=60, batch_size=20, lr=1e-2)
    checkpoints = []

    def reward(completion: str, index: int) -> float:
        return 1.0 if completion == str(index) else 0.0

    def on_step(record):
        if record["step"] % 10 == 0:
            checkpoints.append({k: v.clone() for k, v in m.state_dict().items()})

    hist = m.grpo(prompts, reward, steps=40, prompts_per_step=10, group_size=8, max_new_tokens=1, lr=1e-2,
                  inner_steps=2, kl_coef=0.01, seed=4, on_step=on_step)
    r = hist.mean_rewards
    assert sum(r[-5:]) / 5 > sum(r[:5]) / 5 + 0.3
    assert len(checkpoints) == 4
    assert not torch.equal(checkpoints[0]["lm_head.weight"], checkpoints[-1]["lm_head.weight"])

    def bad_reward(completion: str, index: int) -> float:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        m.grpo(prompts, bad_reward, steps=1, max_new_tokens=1)
    with pytest.raises(metaprobe.InvalidArgumentError, match="reward_fn: returned 'x', expected a float"):
        m.grpo(prompts, lambda c, i: "x", steps=1, max_new_tokens=1)
    with pytest.raises(metaprobe.InvalidArgumentError, match="reward_fn: expected a callable"):
        m.grpo(prompts, 3, steps=1)
