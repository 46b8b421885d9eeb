"""Builders of tiny, real Hugging Face models and tokenizers for the tests (no download, deterministic).

Every model is a real ``transformers`` class built with ``from_config`` under a fixed torch seed; the
tokenizer is a byte-level BPE trained offline with ``tokenizers`` on probe text and wrapped in a
``PreTrainedTokenizerFast`` with BOS/EOS/PAD, a second end-of-turn token and a ChatML chat template. Both
can be saved and reloaded through ``save_pretrained``/``from_pretrained`` so that tests exercise the same
code path as a hub checkpoint.

    tok = hf_tiny.bpe_tokenizer()
    model = hf_tiny.tiny_model("llama", vocab_size=len(tok))
    model_dir = hf_tiny.save(model, tok, tmp_path / "llama")       # then AutoModelForCausalLM.from_pretrained
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable, List, Optional

import torch

transformers = __import__("pytest").importorskip("transformers")
tokenizers = __import__("pytest").importorskip("tokenizers")

# ChatML, the template of Qwen2.5 instruct models (system turn optional, generation prompt opens the
# assistant turn). Kept as data: tests compare our prompts with apply_chat_template byte for byte.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ARCHITECTURES = ("llama", "qwen2", "gpt2")


def probe_corpus(n_per_cell: int = 3, seed: int = 0) -> List[str]:
    """Prompts and worked solutions of a small probe suite: the text the tokenizer is trained on."""
    from metaprobe import probes

    suite = probes.generate(n_per_cell=n_per_cell, difficulties=(1, 2), seed=seed)
    texts: List[str] = []
    for item in suite:
        texts.append(item.prompt)
        texts.append(item.reference_solution)
    texts.append("<think>Let me work it out step by step.</think>\nAnswer: 42\nThe answer is 7.")
    return texts


@functools.lru_cache(maxsize=None)
def _tokenizer_json(vocab_size: int, seed: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(probe_corpus(seed=seed), trainer=trainer)
    # Llama-style: BOS is prepended when special tokens are added.
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A $B", special_tokens=[("<|bos|>", tok.token_to_id("<|bos|>"))])
    return tok.to_str()


def bpe_tokenizer(vocab_size: int = 512, seed: int = 0, add_bos: bool = True, chat_template: Optional[str] = CHATML_TEMPLATE):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on probe text: ``<|bos|>`` (prepended when
    ``add_bos``), ``<|endoftext|>`` as EOS, ``<|im_end|>`` as the end-of-turn token, ``<|pad|>``, ChatML."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_str(_tokenizer_json(vocab_size, seed))
    if not add_bos:
        raw.post_processor = None
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<|endoftext|>",
                                  pad_token="<|pad|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                  clean_up_tokenization_spaces=False)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def end_of_turn_ids(tok) -> List[int]:
    """The EOS ids a chat checkpoint stops on: ``<|endoftext|>`` and ``<|im_end|>``."""
    return [tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")]


def tiny_config(arch: str, vocab_size: int, *, layers: int = 2, hidden: int = 32, heads: int = 4,
                max_positions: int = 512, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0):
    """A seeded-size config of a real architecture: ``"llama"``, ``"qwen2"`` or ``"gpt2"``."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                           max_position_embeddings=max_positions, bos_token_id=bos_id, eos_token_id=eos_id,
                           pad_token_id=pad_id, tie_word_embeddings=False)
    if arch == "qwen2":
        return Qwen2Config(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                           max_position_embeddings=max_positions, bos_token_id=bos_id, eos_token_id=eos_id,
                           pad_token_id=pad_id, tie_word_embeddings=True)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=hidden, n_layer=layers, n_head=heads,
                          n_positions=max_positions, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    raise ValueError(f"arch: unknown {arch!r}, expected one of {ARCHITECTURES}")


def tiny_model(arch: str, vocab_size: int, seed: int = 0, **config_fields):
    """A real ``*ForCausalLM`` with random weights drawn under ``torch.manual_seed(seed)``, in eval mode."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch, vocab_size, **config_fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()


def tiny_model_for(arch: str, tok, seed: int = 0, **config_fields):
    """:func:`tiny_model` sized and wired (BOS/EOS/PAD ids) for tokenizer ``tok``."""
    return tiny_model(arch, len(tok), seed=seed, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id,
                      pad_id=tok.pad_token_id, **config_fields)


def save(model, tok, directory: os.PathLike | str, max_shard_size: Optional[str] = None) -> Path:
    """``save_pretrained`` of both into ``directory`` (sharded when ``max_shard_size`` is given)."""
    path = Path(directory)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    if tok is not None:
        tok.save_pretrained(path)
    return path


def load(directory: os.PathLike | str):
    """``(AutoModelForCausalLM, AutoTokenizer)`` from a local directory, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    return model, tok


def encode_batch(tok, texts: Iterable[str], padding_side: str = "left"):
    """``tok(texts, padding=True, return_tensors="pt")`` with the given padding side (restored after)."""
    old = tok.padding_side
    tok.padding_side = padding_side
    try:
        return tok(list(texts), padding=True, return_tensors="pt")
    finally:
        tok.padding_side = old
