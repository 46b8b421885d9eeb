"""TinyLM.save_pretrained: the embedded model as a real Hugging Face checkpoint (transformers opens it)."""
from __future__ import annotations

import json
import os
import stat

import pytest
import torch

transformers = pytest.importorskip("transformers")

from metaprobe import lm  # noqa: E402
from metaprobe import hf_format  # noqa: E402

TEXTS = [
    "Question: What is 12 * 7?\nAnswer: 84",
    "",
    "tabs\tand é non-ASCII ü bytes, <eos> and <bos> as text",
    "  leading spaces and trailing  \n\nnewlines\n",
    "~!@#$%^&*()_+`-=[]{}|;':\",./<>?",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = lm.TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=128, seed=3)
    directory = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(directory)
    return model, directory


def test_directory_holds_the_hugging_face_files(exported):
    _, directory = exported
    names = set(os.listdir(directory))
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json"} <= names
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == 100
    # Files are written with the mode a plain open() gives (0666 & ~umask), not mkstemp's 0600.
    umask = os.umask(0)
    os.umask(umask)
    for name in names:
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o666 & ~umask, name


def test_transformers_reproduces_the_cpp_logits(exported):
    model, directory = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    tok = lm.CharTokenizer()
    batch = tok(["Question: 2+2?\nAnswer:", "The quick brown fox jumps over the lazy dog."], padding=True,
                return_tensors="pt")
    ours = model(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-5


def test_perturbed_weights_are_detected(exported, tmp_path):
    # The parity test can fail: a checkpoint with one weight nudged no longer matches.
    model, _ = exported
    other = model.clone()
    with torch.no_grad():
        other.state_dict()["model.layers.1.mlp.down_proj.weight"][0, 0] += 0.5
    other.save_pretrained(tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    ids = lm.CharTokenizer()(["Question: 2+2?\nAnswer:"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        diff = (model(ids) - hf(input_ids=ids).logits).abs().max().item()
    assert diff > 1e-3


@pytest.mark.parametrize("text", TEXTS)
def test_auto_tokenizer_encodes_and_decodes_as_the_char_tokenizer(exported, text):
    _, directory = exported
    hf_tok = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    ours = lm.CharTokenizer()
    assert hf_tok(text)["input_ids"] == ours.encode(text)
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ours.encode(text, add_special_tokens=False)
    ids = ours.encode(text) + [ours.eos_token_id]
    assert hf_tok.decode(ids, skip_special_tokens=True) == ours.decode(ids, skip_special_tokens=True)
    if "é" not in text and "ü" not in text:  # <unk> renders alike only where the text has no unknown bytes
        assert hf_tok.decode(ids, skip_special_tokens=False) == ours.decode(ids, skip_special_tokens=False)
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (1, 2, 0)


def test_generate_config_and_greedy_generation_agree(exported):
    model, directory = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).eval()
    assert hf.generation_config.eos_token_id == 2 and hf.generation_config.pad_token_id == 0
    prompt = "Question: 3+4?\nAnswer:"
    ids = lm.CharTokenizer()([prompt], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = hf.generate(ids, max_new_tokens=12, do_sample=False)
    ours = model.generate(prompt, max_new_tokens=12, stop_at_eos=True)[0]
    assert out[0, ids.shape[1]:].tolist()[: len(ours.token_ids)] == list(ours.token_ids)


def test_from_pretrained_round_trips(exported):
    model, directory = exported
    back = lm.TinyLM.from_pretrained(directory)
    assert back.config == model.config
    ids = lm.CharTokenizer()(["Answer: 7"], return_tensors="pt")["input_ids"]
    assert torch.equal(back(ids), model(ids))


def test_from_pretrained_rejects_other_layouts(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(hf_format._core.FormatError, match="model_type is 'gpt2', expected 'llama'"):
        lm.TinyLM.from_pretrained(tmp_path)
    with pytest.raises(hf_format._core.IoError, match="holds no config.json"):
        lm.TinyLM.from_pretrained(tmp_path / "missing")
