"""Generate a stage's answers with vLLM and write them as a metaprobe responses file; for the reference, also
teacher-force its answers through ``prompt_logprobs`` into a top-k reference cache file.

    python examples/vllm_generate.py --model ckpt/grpo-900 --probes suite.jsonl --out grpo-900.jsonl \
        --n 4 --temperature 0.6 --top-p 0.95 --max-tokens 2048
    python examples/vllm_generate.py --model ckpt/base --probes suite.jsonl --out base.jsonl \
        --temperature 1.0 --reference-cache base.topk.safetensors --cache-k 32

then, in the meta-probing run (same tokenizer, same options; reference_mode="topk_cache")::

    mp.add_stage("base", responses=metaprobe.responses.from_jsonl("base.jsonl"),
                 reference_cache="base.topk.safetensors")          # no reference model needed
    mp.add_stage("grpo-900", arm="rl", step=900, source=backends.hf(model, tok),
                 responses=metaprobe.responses.from_jsonl("grpo-900.jsonl"))

(with ``sampled_estimator=False``: the estimator would score every stage's answers under the reference model).

The prompts are the run's own for ``prompt_format="chat_template"`` (metaprobe's HFTokenizer.chat_prompt: the
tokenizer's chat template with the generation prompt), passed to vLLM as token ids so both see the same
prompt. vLLM is not installed on the machines this project is tested on, so this script is not run in CI;
what it writes is read by ``responses.from_vllm``, which the tests run on objects of vLLM's documented
``RequestOutput``/``CompletionOutput`` shape, and by ``add_stage(reference_cache=...)``, which the tests run on
a cache file computed in torch from the reference model (tests/python/test_reference_cache.py; docs/responses.md).
"""
from __future__ import annotations

import argparse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a Hugging Face checkpoint directory")
    p.add_argument("--probes", required=True, help="the probe suite (JSONL)")
    p.add_argument("--out", required=True, help="the responses JSONL to write")
    p.add_argument("--n", type=int, default=1, help="samples per item (the run's n_samples)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=512, help="the run's max_new_tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--system-prompt", default="")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--reference-cache", default=None,
                   help="also write the top-k cache of this model along its first answer per item (the reference)")
    p.add_argument("--cache-k", type=int, default=32, help="tokens cached per position (the run's cache_k)")
    args = p.parse_args()

    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    import metaprobe
    from metaprobe.backends import HFTokenizer

    probes = metaprobe.probes.ProbeSet.from_jsonl(args.probes)
    tok = HFTokenizer(AutoTokenizer.from_pretrained(args.model))
    prompts = [{"prompt_token_ids": tok.chat_prompt(args.system_prompt, item.prompt)} for item in probes]
    params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                            seed=args.seed, logprobs=0)  # logprobs=0: the sampled token's log-probability only
    llm = LLM(model=args.model, tensor_parallel_size=args.tensor_parallel_size, seed=args.seed)
    outputs = llm.generate(prompts, params)
    answers = metaprobe.responses.from_vllm(outputs, item_ids=[item.id for item in probes])
    answers.to_jsonl(args.out)
    print(f"wrote {len(answers)} answers for {len(probes)} items to {args.out}")
    if args.reference_cache:
        write_reference_cache(llm, tok, probes, prompts, answers, args)


def write_reference_cache(llm, tok, probes, prompts, answers, args) -> None:
    """Teacher forcing: prompt + answer as one prompt, one generated token, prompt_logprobs=k. Position t of
    prompt_logprobs holds the top-k (plus the actual token) of the distribution that predicts token t, at
    temperature 1 (vLLM's raw log-probabilities), so the answer's rows are those after the prompt."""
    import torch
    from vllm import SamplingParams

    import metaprobe

    first = {r.item_id: r for r in answers if r.sample == 0}
    eos = set(tok.eos_ids)
    sequences, entries = [], []
    for item, prompt in zip(probes, prompts):
        ids = list(first[item.id].token_ids or [])
        if ids and ids[-1] in eos:
            ids = ids[:-1]  # the run drops a trailing end-of-generation id: the cache must cover the same tokens
        if ids:
            sequences.append((item.id, prompt["prompt_token_ids"], ids))
    outs = llm.generate([{"prompt_token_ids": p + a} for _, p, a in sequences],
                        SamplingParams(max_tokens=1, prompt_logprobs=args.cache_k, temperature=1.0))
    for (item_id, prompt, answer), out in zip(sequences, outs):
        rows = out.prompt_logprobs[len(prompt): len(prompt) + len(answer)]
        indices, logprobs = [], []
        for row in rows:
            top = sorted(row.items(), key=lambda kv: -kv[1].logprob)[: args.cache_k]
            indices.append([t for t, _ in top])
            logprobs.append([lp.logprob for _, lp in top])
        entries.append({"item_id": item_id, "indices": torch.tensor(indices), "logprobs": torch.tensor(logprobs,
                        dtype=torch.float64)})  # no entropy: vLLM returns only the top-k
    metaprobe.meta.save_topk_cache(args.reference_cache, entries, temperature=1.0)
    print(f"wrote the top-{args.cache_k} cache of {len(entries)} answers to {args.reference_cache}")


if __name__ == "__main__":
    main()
