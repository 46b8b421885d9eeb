"""Generate a stage's answers with vLLM and write them as a metaprobe responses file.

    python examples/vllm_generate.py --model ckpt/grpo-900 --probes suite.jsonl --out grpo-900.jsonl \
        --n 4 --temperature 0.6 --top-p 0.95 --max-tokens 2048

then, in the meta-probing run (same tokenizer, same options)::

    mp.add_stage("grpo-900", arm="rl", step=900, source=backends.hf(model, tok),
                 responses=metaprobe.responses.from_jsonl("grpo-900.jsonl"))

The prompts are the run's own for ``prompt_format="chat_template"`` (metaprobe's HFTokenizer.chat_prompt: the
tokenizer's chat template with the generation prompt), passed to vLLM as token ids so both see the same
prompt. vLLM is not installed on the machines this project is tested on, so this script is not run in CI;
what it writes is read by ``responses.from_vllm``, which the tests run on objects of vLLM's documented
``RequestOutput``/``CompletionOutput`` shape (docs/responses.md).
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


if __name__ == "__main__":
    main()
