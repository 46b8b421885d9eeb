"""The embedded tiny model in the Hugging Face checkpoint layout.

:meth:`metaprobe.lm.TinyLM.save_pretrained` writes a directory that ``transformers`` opens with
``AutoModelForCausalLM.from_pretrained(dir)`` (a ``LlamaForCausalLM``) and ``AutoTokenizer.from_pretrained(dir)``
(a ``PreTrainedTokenizerFast`` that encodes and decodes exactly as :class:`metaprobe.lm.CharTokenizer`):

* ``config.json`` — a Llama config (RMSNorm, rotary, SwiGLU, untied head: the TinyTransformer's layout);
* ``model.safetensors`` — the float32 weights under their Llama names (metaprobe's atomic writer);
* ``generation_config.json`` — BOS/EOS/PAD ids, greedy by default;
* ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` — the character vocabulary.

Writing needs the ``tokenizers`` package (the ``[hf]`` extra); ``transformers`` is never imported here.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Union

from . import _core
from ._atomic import write_text_atomic

PathLike = Union[str, "os.PathLike[str]"]

# The character vocabulary of cpp/src/lm/tokenizer.cpp: specials 0..3, '\n' = 4, ASCII 32..126 = 5..99.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID, NEWLINE_ID, FIRST_PRINTABLE_ID = 0, 1, 2, 3, 4, 5


def _bytes_to_unicode() -> Dict[int, str]:
    """The byte -> printable character map of byte-level BPE (GPT-2's): printable Latin-1 bytes map to
    themselves, the other 68 to chr(256 + k) in byte order. Needed because the tokenizers ByteLevel
    pre-tokenizer emits these characters, and our vocabulary is keyed by them."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out: Dict[int, str] = {}
    extra = 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def char_vocab() -> Dict[str, int]:
    """Token string -> id of the character vocabulary, keyed by byte-level characters."""
    table = _bytes_to_unicode()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab[table[ord("\n")]] = NEWLINE_ID
    for b in range(32, 127):
        vocab[table[b]] = FIRST_PRINTABLE_ID + (b - 32)
    return vocab


def char_tokenizer_json() -> str:
    """``tokenizer.json`` text of the character tokenizer: one token per byte (bytes outside ``'\\n'`` and
    printable ASCII become ``<unk>``), ``<bos>`` prepended when special tokens are added, byte-level decoding."""
    try:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
        from tokenizers import AddedToken
    except ImportError as exc:  # pragma: no cover - the [hf] extra is installed in every test environment
        raise _core.UnsupportedError(
            "save_pretrained: the 'tokenizers' package is required (pip install 'metaprobe[hf]')") from exc
    tok = Tokenizer(models.WordLevel(vocab=char_vocab(), unk_token="<unk>"))
    # ByteLevel without its regex turns the text into byte characters; Split then isolates each one.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        pre_tokenizers.Split(Regex("."), behavior="isolated"),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", BOS_ID)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok.to_str()


def llama_config(config: Any) -> Dict[str, Any]:
    """``config.json`` of a TransformerConfig as a ``LlamaForCausalLM`` (``rope_theta`` written both the
    transformers 4 way and as the 5.x ``rope_parameters``)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(config.vocab_size),
        "hidden_size": int(config.d_model),
        "intermediate_size": int(config.d_ff),
        "num_hidden_layers": int(config.n_layers),
        "num_attention_heads": int(config.n_heads),
        "num_key_value_heads": int(config.n_heads),
        "head_dim": int(config.d_model) // int(config.n_heads),
        "max_position_embeddings": int(config.max_len),
        "rms_norm_eps": float(config.norm_eps),
        "rope_theta": float(config.rope_theta),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(config.rope_theta)},
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": True,
        # Read back by TinyLM.from_pretrained: fields a Llama config has no place for.
        "metaprobe_tiny": {"seed": int(config.seed)},
    }


def tokenizer_config() -> Dict[str, Any]:
    """``tokenizer_config.json``: the special tokens, right padding, and ``split_special_tokens`` so that the
    text ``"<eos>"`` is five characters, as for the C++ tokenizer."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "padding_side": "right",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": True,
        "model_max_length": 1_000_000,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def save_pretrained(model: Any, directory: PathLike) -> None:
    """Writes ``model`` (a :class:`metaprobe.lm.TinyLM`) as a Hugging Face checkpoint directory. Each file is
    written atomically; the directory is created if missing."""
    from . import io as mp_io

    path = os.fspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise _core.InvalidArgumentError(f"directory: {path!r} exists and is not a directory")
    os.makedirs(path, exist_ok=True)
    tokenizer_json = char_tokenizer_json()
    config = model.config
    mp_io.save({k: v.detach().contiguous() for k, v in model.state_dict().items()},
               os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    files = {
        "config.json": llama_config(config),
        "generation_config.json": {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
                                   "do_sample": False},
        "tokenizer_config.json": tokenizer_config(),
        "special_tokens_map.json": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                                    "unk_token": "<unk>"},
    }
    for name, content in files.items():
        write_text_atomic(os.path.join(path, name), json.dumps(content, indent=2, sort_keys=True) + "\n")
    write_text_atomic(os.path.join(path, "tokenizer.json"), tokenizer_json)


def load_config(directory: PathLike) -> Dict[str, Any]:
    """The TransformerConfig fields of a directory written by :func:`save_pretrained` (or any Llama checkpoint
    of the TinyTransformer's layout: no GQA, untied head, no biases)."""
    path = os.path.join(os.fspath(directory), "config.json")
    try:
        with open(path, "rb") as fh:
            raw = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError as exc:
        raise _core.IoError(f"directory: {os.fspath(directory)!r} holds no config.json") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _core.FormatError(f"{path}: not a JSON config ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("model_type") != "llama":
        got = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise _core.FormatError(f"{path}: model_type is {got!r}, expected 'llama'")
    for key, want in (("num_key_value_heads", raw.get("num_attention_heads")), ("tie_word_embeddings", False),
                      ("attention_bias", False), ("mlp_bias", False), ("hidden_act", "silu")):
        if key in raw and raw[key] != want:
            raise _core.UnsupportedError(
                f"{path}: {key} is {raw[key]!r}, the TinyTransformer supports only {want!r}")
    rope = raw.get("rope_parameters") or {}
    theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
    return {
        "vocab_size": int(raw["vocab_size"]),
        "d_model": int(raw["hidden_size"]),
        "d_ff": int(raw["intermediate_size"]),
        "n_layers": int(raw["num_hidden_layers"]),
        "n_heads": int(raw["num_attention_heads"]),
        "max_len": int(raw["max_position_embeddings"]),
        "rope_theta": float(theta),
        "norm_eps": float(raw.get("rms_norm_eps", 1e-5)),
        "seed": int((raw.get("metaprobe_tiny") or {}).get("seed", 0)),
    }
