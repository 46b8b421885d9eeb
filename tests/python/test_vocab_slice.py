"""MetaOptions.vocab_size: stages whose vocabularies differ only in a padded or added tail (a base and its chat
model) share the slice [0, vocab_size): a model with extra embedding rows and a tokenizer with an added token
give exactly the base model's answers and zero divergence on the slice; without it they are refused."""
from __future__ import annotations

import pytest
import torch

import metaprobe
from metaprobe import InvalidArgumentError, MetaOptions, MetaProbe, backends

hf_tiny = pytest.importorskip("hf_tiny")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def models():
    tok = hf_tiny.bpe_tokenizer()
    base = hf_tiny.tiny_model_for("llama", tok, seed=1)
    chat = hf_tiny.tiny_model_for("llama", tok, seed=1)
    chat.load_state_dict(base.state_dict())
    v = base.get_input_embeddings().weight.shape[0]
    chat.resize_token_embeddings(v + 8, mean_resizing=False)  # 8 padded rows, random
    with torch.no_grad():
        chat.get_output_embeddings().weight[v:] = 5.0 * torch.randn(8, chat.get_output_embeddings().weight.shape[1])
    chat_tok = hf_tiny.bpe_tokenizer()
    chat_tok.add_tokens(["<|tool_call|>"])  # an added token at id v
    return tok, base, chat, chat_tok, v


def _run(models, **over):
    tok, base, chat, chat_tok, v = models
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation", "enumeration"])
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=10, stop=(), parameters=False, do_sample=True, seed=4,
                                               **over))
    mp.add_stage("base", source=backends.hf(base, tok))
    mp.add_stage("chat", arm="sft", step=1, source=backends.hf(chat, chat_tok))
    return mp.run(progress=False)


def test_the_shared_slice_makes_a_padded_model_equal_to_its_base(models):
    v = models[4]
    rep = _run(models, vocab_size=v)
    items = rep.items
    assert list(items[items.stage == "chat"].output) == list(items[items.stage == "base"].output)
    div = rep.divergence
    assert (div.kl_ref_stage.abs() < 1e-6).all() and (div.js.abs() < 1e-7).all() and (div.top1_agree == 1).all()
    assert (div.sampled_kl.abs() < 1e-6).all()
    assert "(ids < " in rep.stage("chat")["info"]["source"]


def test_without_the_slice_the_tails_are_refused(models):
    with pytest.raises(InvalidArgumentError, match="vocabulary differs .*MetaOptions.vocab_size=N compares only ids < N"):
        _run(models)
    tok, base, chat, _, v = models
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation"])
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False))
    mp.add_stage("base", source=backends.hf(base, tok))
    mp.add_stage("chat", arm="sft", step=1, source=backends.hf(chat, tok))
    with pytest.raises(InvalidArgumentError, match=f"vocabulary size {v + 8}, expected {v}"):
        mp.run(progress=False)
    with pytest.raises(InvalidArgumentError, match="vocab_size is -1"):
        MetaProbe(probes, options=MetaOptions(vocab_size=-1))
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False, vocab_size=v + 100))
    mp.add_stage("base", source=backends.hf(base, tok))
    with pytest.raises(InvalidArgumentError, match=f"logits per position, expected at least vocab_size = {v + 100}"):
        mp.run(progress=False)
