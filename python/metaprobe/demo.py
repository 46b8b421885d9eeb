"""The end-to-end demo study (``metaprobe demo`` / ``make demo``): SFT versus RL on one target slice at a
matched gain, several seeds, effects with bootstrap intervals.

1. A held-out probe suite of all 20 cells (``eval_per_cell`` items each, seed ``seed``), a training pool
   (seed ``seed + 1``) and a held-out **target dev set** (the target cell, seed ``seed + 2``).
2. A base :class:`metaprobe.lm.TinyLM` trained from scratch (C++ SFT) on the whole pool with the reference
   solutions, in the text the meta run uses (``Question: …\\nAnswer:`` + ``" " + reference_solution``).
3. For each of ``n_seeds`` arm seeds, two arms from that base on the target slice:

   * **SFT on off-policy demonstrations**: :func:`teacher_solution` rewrites each reference solution into a
     longer trace in another format with the same final answer (the stand-in for a stronger model's
     distilled reasoning traces, which differ in style and length from what the base writes);
   * **RL on-policy**: GRPO with the probe checker as reward.

   Every ``eval_every`` steps an arm saves a checkpoint and measures its greedy accuracy on the target dev
   set; it stops once that reaches ``base dev accuracy + target_gain``. The **matched** checkpoints of a seed
   are each arm's first checkpoint at the highest dev accuracy both arms reached (capped at the threshold),
   so the arms are compared at equal target accuracy (Shenfeld et al.'s matched new-task performance).
4. One meta-probe (:class:`metaprobe.MetaProbe`) over the base and ``probe_checkpoints`` checkpoints per arm
   and seed (the matched one included).
5. :func:`comparison`: the SFT − RL effects at the matched checkpoints with 95 % bootstrap intervals over
   items (or cells) and seeds; :func:`findings` words them from the intervals; the RL's Razor plot; the
   HTML report leads with all of it.

>>> result = metaprobe.demo.run_demo("runs/demo", fast=True)
>>> print(result.summary_text())

See ``docs/demo.md``.
"""
from __future__ import annotations

import html as _html
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ._core import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

    from .lm import TinyLM
    from .report import Report

__all__ = ["DemoConfig", "DemoResult", "run_demo", "teacher_solution", "summary_table", "format_summary",
           "comparison", "cell_drift", "findings", "razor_points", "razor_fit", "comparable_report",
           "positions_needed"]

PathLike = Union[str, "os.PathLike[str]"]
ARMS = ("sft", "rl")


@dataclass
class DemoConfig:
    """Every knob of the demo. :meth:`default` (≤ 10 min on 2 cores) and :meth:`fast` (≤ 3 min) are the presets."""

    seed: int = 0                          #: suite seed, base seed; arm seeds are seed, seed + 1, ...
    n_seeds: int = 3                       #: arm seeds: each post-trains both arms from the same base
    threads: int = 1                       #: torch intra-op threads (1 is faster for these tiny models)
    # model
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 384
    max_len: int = 0                       #: positions; 0 = from the data (longest training text or prompt + answer)
    # data
    difficulties: Tuple[int, ...] = (1,)
    train_per_cell: int = 150              #: training pool items per cell (generated with seed + 1)
    eval_per_cell: int = 40                #: probe items per cell for the meta-probe (seed)
    dev_items: int = 32                    #: held-out target dev set (seed + 2) that decides the matched gain
    target: str = "diagnostic/math"        #: "skill/domain" of the post-training slice
    # base pre-training (C++ SFT over the mixture)
    base_steps: int = 350
    base_batch: int = 8
    base_lr: float = 3e-3
    base_loss_on: str = "completion"
    # matched gain
    target_gain: float = 0.2               #: arms stop at base dev accuracy + target_gain (capped at 1)
    eval_every: int = 4                    #: steps between checkpoints / dev evaluations
    # SFT arm (off-policy teacher traces)
    sft_max_steps: int = 32
    sft_batch: int = 8
    sft_lr: float = 1e-3
    # RL arm (GRPO, on-policy)
    rl_max_steps: int = 24
    rl_prompts_per_step: int = 4
    rl_group_size: int = 6
    rl_lr: float = 3e-4
    rl_temperature: float = 0.7            #: sampling at 0.7 keeps the tiny model's answers parseable
    rl_kl_coef: float = 0.0
    rl_inner_steps: int = 1
    # meta-probe
    probe_checkpoints: int = 1             #: per arm and seed, evenly spaced up to the matched one (included)
    #: RL's Razor covers every saved checkpoint: the target-cell KL on all target suite items and the off-target
    #: accuracy change on the first ``razor_per_cell`` suite items of each off-target cell (all when >= eval_per_cell)
    razor_per_cell: int = 10
    max_new_tokens: int = 0                #: 0: the longest reference solution / teacher trace + 16 (from data)
    batch_size: int = 16
    collapse_delta: float = 0.1
    #: "native": stages are TinyLMs run by the C++ engine; "hf": every stage is its Hugging Face checkpoint
    #: directory loaded with transformers and wrapped by ``metaprobe.backends.hf``, exactly as a user's model
    #: (slower: Python-side generation)
    backend: str = "native"
    # statistics
    n_boot: int = 2000
    confidence: float = 0.95

    @classmethod
    def default(cls, **overrides: Any) -> "DemoConfig":
        """The ``metaprobe demo`` preset. Its target is ``fact_retrieval/physics``: after 350 base steps the base
        scored 0.50 on the diagnostic/math dev set (near its answer-guessing level) and no arm of three seeds beat
        it, while on fact_retrieval/physics it scored 0.125 and both arms gained in every seed (docs/demo.md,
        "Measured"; on a CPU where ATen runs its AVX-512 kernels the same seeds gained in one of three). The
        ``--fast`` base (150 steps) is weaker and keeps ``diagnostic/math``."""
        return replace(cls(target="fact_retrieval/physics"), **overrides)

    @classmethod
    def fast(cls, **overrides: Any) -> "DemoConfig":
        """The ``--fast`` preset (the tests and the notebook run it): fewer items, seeds and steps, and 4 Razor
        items per off-target cell (the Razor probe of every checkpoint was the largest share of its time)."""
        base = cls(n_seeds=2, train_per_cell=60, eval_per_cell=10, dev_items=20, base_steps=150,
                   sft_max_steps=16, rl_max_steps=12, razor_per_cell=4)
        return replace(base, **overrides)

    def target_cell(self) -> Tuple[str, str]:
        parts = self.target.split("/")
        if len(parts) != 2:
            raise InvalidArgumentError(f"target: got {self.target!r}, expected 'skill/domain' such as 'diagnostic/math'")
        return parts[0], parts[1]

    def arm_seeds(self) -> List[int]:
        """The arm seeds: ``seed, seed + 1, …`` (``n_seeds`` of them)."""
        if self.n_seeds < 1:
            raise InvalidArgumentError(f"n_seeds: got {self.n_seeds}, expected an integer >= 1")
        return [self.seed + k for k in range(self.n_seeds)]

    def check(self) -> None:
        """Raises InvalidArgumentError naming the first field out of range."""
        if self.threads < 1:
            raise InvalidArgumentError(f"threads: got {self.threads}, expected an integer >= 1")
        self.arm_seeds()
        for name in ("eval_per_cell", "dev_items", "eval_every", "sft_max_steps", "rl_max_steps",
                     "probe_checkpoints", "base_steps", "razor_per_cell"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name}: got {getattr(self, name)}, expected an integer >= 1")
        if not 0 < self.target_gain <= 1:
            raise InvalidArgumentError(f"target_gain: got {self.target_gain}, expected a value in (0, 1]")
        if not 0 < self.confidence < 1:
            raise InvalidArgumentError(f"confidence: got {self.confidence}, expected a value in (0, 1)")
        if self.backend not in ("native", "hf"):
            raise InvalidArgumentError(f"backend: got {self.backend!r}, expected 'native' or 'hf'")


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the report, the arms' training records, the comparison and the files."""

    out: str
    config: DemoConfig
    report: "Report"
    summary: "pd.DataFrame"
    effects: List[Dict[str, Any]]
    drift: "pd.DataFrame"
    findings: List[str]
    arms: Dict[str, Any]
    files: Dict[str, str]
    timings: Dict[str, float]
    base_profile: Dict[str, float] = field(default_factory=dict)

    def summary_text(self) -> str:
        """The matched-checkpoint table, the effects and the findings as printed by ``metaprobe demo``."""
        return (format_base_profile(self.base_profile) + "\n\n" + format_summary(self.summary) + "\n\n"
                + format_effects(self.effects) + "\n\n" + "\n".join(f"- {f}" for f in self.findings))


# ---------------------------------------------------------------------------------------------------------------
# The off-policy teacher

#: Step connectives of the teacher's traces (the base's reference solutions use none).
_CONNECTIVES = ("First", "Next", "Then", "After that")


def teacher_solution(item: Any) -> str:
    """An off-policy demonstration for ``item``: its reference solution rewritten, deterministically, into a
    longer trace in another format with the same final answer.

    The reference solutions (what the base is trained on and writes) are terse lines ending in
    ``Answer: <answer>``. The teacher opens with a plan sentence, prefixes each working line with a connective
    ("First, … Next, … Finally, …"), restates the result and ends with the same ``Answer:`` line, as distilled
    reasoning traces of a stronger model differ from a small model's own style and length while agreeing on
    the answer. ``metaprobe.probes.check(item, teacher_solution(item))`` holds for every generated item.
    """
    ref = str(item.reference_solution).rstrip("\n")
    lines = [ln.strip() for ln in ref.split("\n") if ln.strip()]
    # The final "Answer:" line is kept verbatim: its format (lists, choices, units) is what the checker reads.
    last = max((k for k, ln in enumerate(lines) if ln.startswith("Answer:")), default=None)
    if last is None:
        raise InvalidArgumentError(f"item {item.id}: reference_solution has no 'Answer:' line, expected one")
    answer_line = lines[last]
    answer = answer_line[len("Answer:"):].strip()
    work = [ln for k, ln in enumerate(lines) if k != last]
    out = ["Let me work through this carefully, one step at a time."]
    for k, ln in enumerate(work):
        lead = "Finally" if k == len(work) - 1 and len(work) > 1 else _CONNECTIVES[min(k, len(_CONNECTIVES) - 1)]
        out.append(f"{lead}, {ln[0].lower() + ln[1:] if ln[:1].isupper() and not ln[1:2].isupper() else ln}")
    out.append(f"So the result is {answer}.")
    out.append(answer_line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from ._progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="phase")


def _training_pool(**generate_args: Any) -> "probes.ProbeSet":
    """``probes.generate`` for a training or dev pool, which may ask a small family for more items than it has
    distinct prompts: repeats are harmless there (the prompts that also occur in the held-out suite are dropped
    by the caller), so they are kept (``on_short_supply="keep"``) and the pool's ``shortfalls`` record them."""
    from . import probes

    return probes.generate(on_short_supply="keep", **generate_args)


def positions_needed(texts: Sequence[Tuple[str, str]], items: Sequence[Any], max_new: int) -> int:
    """The model's position count (``max_len``) from the data, rounded up to a multiple of 64: every training
    text (``(prompt, completion)``, with BOS and EOS) and the ``plain`` prompt of every item that will be
    generated for, followed by ``max_new`` tokens, must fit (one character is one token). Derived, not fixed,
    because a change of the probe phrasings changes it."""
    longest = max(max(len(p) + len(c) for p, c in texts), max(len(_plain_prompt(it)) for it in items) + max_new)
    return -(-(longest + 2) // 64) * 64


def _plain_prompt(item: Any) -> str:
    from . import probes

    return probes.render(item, template="plain")


def _rel(path: str, out: str) -> str:
    return os.path.relpath(path, out).replace(os.sep, "/")


def comparable_report(data: dict) -> dict:
    """A copy of a report document without what legitimately differs between two runs of the same seed:
    timestamps (``created``) and wall times (``seconds``)."""
    doc = json.loads(json.dumps(data))
    doc.pop("created", None)
    doc.pop("seconds", None)
    for s in doc.get("stages", []):
        s.pop("seconds", None)
    return doc


def _greedy_accuracy(model: "TinyLM", items: Sequence[Any], prompts: Sequence[str], max_new_tokens: int,
                     batch_size: int) -> float:
    from . import probes

    gens = model.generate(list(prompts), max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
    return sum(bool(probes.check(it, g.completion)) for it, g in zip(items, gens)) / max(1, len(items))


def _greedy_correct(model: "TinyLM", items: Sequence[Any], max_new_tokens: int, batch_size: int) -> List[float]:
    """Per item, 1.0 when ``model``'s greedy answer to its ``plain`` prompt passes ``probes.check``, else 0.0."""
    from . import probes

    gens = model.generate([_plain_prompt(it) for it in items], max_new_tokens=max_new_tokens, temperature=0.0,
                          batch_size=batch_size)
    return [float(bool(probes.check(it, g.completion))) for it, g in zip(items, gens)]


class RazorProbe:
    """The cheap probe of RL's Razor that every saved checkpoint gets: forward KL(base‖stage) along the gold
    solutions of the target suite items (the report's ``div_target``, from the per-item parts of
    :func:`item_kl`; the base's logits are computed once) and the off-target greedy accuracy change from the base
    on ``off_items`` (the base's answers computed once)."""

    def __init__(self, base: "TinyLM", target_items: Sequence[Any], off_items: Sequence[Any], max_new_tokens: int,
                 batch_size: int, separator: str = " ") -> None:
        self.target_items, self.off_items = list(target_items), list(off_items)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self._rows = _gold_rows(base, self.target_items, separator)
        self.base_correct = _greedy_correct(base, self.off_items, max_new_tokens, batch_size)

    def __call__(self, stage: "TinyLM") -> Dict[str, Any]:
        """``{"kl_target", "off_target_change", "kl_parts": (sums, counts)}`` for ``stage``."""
        sums, counts = _kl_parts(stage, self._rows)
        got = _greedy_correct(stage, self.off_items, self.max_new_tokens, self.batch_size)
        change = sum(g - b for g, b in zip(got, self.base_correct)) / max(1, len(got))
        return {"kl_target": sum(sums) / max(1, sum(counts)), "off_target_change": change, "kl_parts": (sums, counts)}


def razor_items(suite: Sequence[Any], target: str, per_cell: int) -> List[Any]:
    """The off-target items of the Razor probe: the first ``per_cell`` suite items of every cell but ``target``."""
    taken: Dict[str, int] = {}
    out = []
    for it in suite:
        cell = f"{it.skill}/{it.domain}"
        if cell != target and taken.get(cell, 0) < per_cell:
            taken[cell] = taken.get(cell, 0) + 1
            out.append(it)
    return out


def _pick(n: int, k: int) -> List[int]:
    """``k`` indices of ``0..n-1`` evenly spaced, the last one included."""
    k = min(k, n)
    return sorted({round(n * (j + 1) / k) - 1 for j in range(k)})


def matched_level(base_acc: float, threshold: float, curves: Dict[str, Sequence[Tuple[int, float]]]) -> float:
    """The dev accuracy both arms reached: min(threshold, each arm's best), never below the base's."""
    best = [max((a for _, a in c), default=base_acc) for c in curves.values()]
    return max(base_acc, min([threshold] + best))


def matched_index(curve: Sequence[Tuple[int, float]], level: float) -> int:
    """Index of the first checkpoint of ``curve`` ((step, dev accuracy) pairs) at or above ``level``; the best
    one when none is."""
    for k, (_, a) in enumerate(curve):
        if a >= level - 1e-12:
            return k
    return max(range(len(curve)), key=lambda k: curve[k][1])


def run_demo(out: PathLike = "runs/demo", fast: bool = False, seed: int = 0, threads: int = 1,
             config: Optional[DemoConfig] = None, progress: bool = True,
             log: Optional[Callable[[str], None]] = None) -> DemoResult:
    """Runs the whole study and writes it to ``out``; returns a :class:`DemoResult`.

    Files: ``base.safetensors``, ``seed-S/{sft,rl}/step-N.safetensors`` and the same models as Hugging Face
    checkpoint directories ``hf/base``, ``hf/seed-S/{sft,rl}/step-N`` (``transformers``'
    ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` open them), ``probes.jsonl``, ``report.json``,
    ``report.html``, ``plots/*.png``, ``summary.csv``, ``effects.json``, ``summary.txt`` and ``training.json``
    (per-step SFT losses, GRPO rewards and dev accuracies). ``config`` overrides the preset chosen by ``fast``.
    """
    from . import plot, probes
    from .lm import TinyLM
    from .meta import MetaOptions, MetaProbe

    if config is None:
        config = (DemoConfig.fast if fast else DemoConfig.default)(seed=seed, threads=threads)
    cfg = config
    cfg.check()
    skill, domain = cfg.target_cell()
    if skill not in probes.SKILLS or domain not in probes.DOMAINS:
        raise InvalidArgumentError(f"target: got {cfg.target!r}, expected 'skill/domain' with a skill of "
                                   f"{probes.SKILLS} and a domain of {probes.DOMAINS}")
    say = log or (lambda s: None)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    timings: Dict[str, float] = {}
    bar = _progress(progress, 5, "demo")
    try:
        t0 = time.perf_counter()
        # 1. probe suite (held out), training pool and target dev set (held out from both)
        diffs = list(cfg.difficulties)
        suite = probes.generate(n_per_cell=cfg.eval_per_cell, difficulties=diffs, seed=cfg.seed)
        suite.to_jsonl(os.path.join(out, "probes.jsonl"))
        pool = _training_pool(n_per_cell=cfg.train_per_cell, difficulties=diffs, seed=cfg.seed + 1)
        eval_prompts = set(it.prompt for it in suite)
        pool_items = [it for it in pool if it.prompt not in eval_prompts]
        mixture = [(_plain_prompt(it), " " + it.reference_solution) for it in pool_items]
        target_items = [it for it in pool_items if it.skill == skill and it.domain == domain]
        seen = eval_prompts | set(it.prompt for it in target_items)
        dev_pool = _training_pool(skills=skill, domains=domain, n_per_cell=4 * cfg.dev_items, difficulties=diffs,
                                     seed=cfg.seed + 2)
        dev_items = [it for it in dev_pool if it.prompt not in seen][:cfg.dev_items]
        dev_prompts = [_plain_prompt(it) for it in dev_items]
        teacher = [(_plain_prompt(it), " " + teacher_solution(it)) for it in target_items]
        # Generation lengths from the data: the longest text a stage should write, plus a margin.
        longest_ref = max(len(it.reference_solution) for it in list(suite) + target_items)
        longest_teacher = max(len(c) for _, c in teacher)
        max_new = cfg.max_new_tokens or max(longest_ref, longest_teacher) + 16
        # Each arm's dev answers are cut where its own training text ends (+16): the teacher's traces for SFT,
        # the reference solutions for RL (whose samples keep the base's style); a longer cut only adds the cost of
        # answers that loop.
        dev_new = {"sft": cfg.max_new_tokens or longest_teacher + 16,
                   "rl": cfg.max_new_tokens or max(len(it.reference_solution) for it in target_items) + 16}
        say(f"probe suite: {len(suite)} items; training pool: {len(mixture)} items ({len(target_items)} in the "
            f"target slice {cfg.target}; {len(pool.shortfalls)} family/difficulty pairs repeat prompts: "
            + (", ".join(f"{f.family} d{f.difficulty} {f.requested} asked, {f.capacity} distinct"
                         for f in pool.shortfalls) or "none") + f"); target dev set: {len(dev_items)} items")
        timings["data"] = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix_str("base"), bar.update(1)

        # 2. base model from scratch
        t0 = time.perf_counter()
        max_len = cfg.max_len or positions_needed(mixture + teacher, list(suite) + target_items + dev_items, max_new)
        base = TinyLM(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                      max_len=max_len, seed=cfg.seed)
        base_hist = base.sft(mixture, steps=cfg.base_steps, batch_size=cfg.base_batch, lr=cfg.base_lr,
                             warmup=max(1, cfg.base_steps // 20), loss_on=cfg.base_loss_on, seed=cfg.seed,
                             progress=progress)
        base_path = os.path.join(out, "base.safetensors")
        base.save(base_path)
        base.save_pretrained(os.path.join(out, "hf", "base"))  # opens with transformers (docs/demo.md)
        base_dev = _greedy_accuracy(base, dev_items, dev_prompts, dev_new["rl"], cfg.batch_size)
        threshold = min(1.0, base_dev + cfg.target_gain)
        tgt_suite = [it for it in suite if it.skill == skill and it.domain == domain]
        timings["base"] = time.perf_counter() - t0
        t_razor = time.perf_counter()
        razor = RazorProbe(base, tgt_suite, razor_items(suite, cfg.target, cfg.razor_per_cell), max_new,
                           cfg.batch_size, MetaOptions.solution_separator)
        timings["razor"] = time.perf_counter() - t_razor
        say(f"base: {base.num_parameters()} parameters, {cfg.base_steps} steps, loss "
            f"{base_hist.losses[0]:.3f} -> {base_hist.losses[-1]:.3f}; target dev accuracy {base_dev:.3f}, "
            f"arms stop at {threshold:.3f} ({timings['base']:.1f} s)")
        if bar is not None:
            bar.set_postfix_str("arms"), bar.update(1)

        # 3. the two arms per seed, each until the threshold (or its step budget)
        t0 = time.perf_counter()
        arms: Dict[str, Any] = {"base_dev_acc": base_dev, "threshold": threshold, "seeds": {}}
        razor_base_s, timings["dev"] = timings["razor"], 0.0

        def train_arm(arm: str, s: int) -> Dict[str, Any]:
            model = base.clone()
            folder = os.path.join(out, f"seed-{s}", arm)
            os.makedirs(folder, exist_ok=True)
            curve: List[Tuple[int, float]] = []
            paths: List[str] = []
            probes_at: List[Dict[str, Any]] = []  # the Razor probe of every checkpoint
            n = {"steps": 0}
            total = cfg.sft_max_steps if arm == "sft" else cfg.rl_max_steps

            def on_step(_: Dict[str, Any]) -> bool:
                n["steps"] += 1
                k = n["steps"]
                if k % cfg.eval_every and k != total:
                    return True
                path = os.path.join(folder, f"step-{k:04d}.safetensors")
                model.save(path)
                model.save_pretrained(os.path.join(out, "hf", f"seed-{s}", arm, f"step-{k:04d}"))
                t_dev = time.perf_counter()
                acc = _greedy_accuracy(model, dev_items, dev_prompts, dev_new[arm], cfg.batch_size)
                t_razor = time.perf_counter()
                timings["dev"] += t_razor - t_dev
                curve.append((k, acc))
                paths.append(path)
                probes_at.append(razor(model))
                timings["razor"] += time.perf_counter() - t_razor
                return acc < threshold - 1e-12  # matched gain reached: stop

            if arm == "sft":
                hist = model.sft(teacher, steps=total, batch_size=cfg.sft_batch, lr=cfg.sft_lr, loss_on="completion",
                                 seed=1000 + s, on_step=on_step, progress=progress)
            else:
                def reward(completion: str, index: int) -> float:
                    return 1.0 if probes.check(target_items[index], completion) else 0.0

                hist = model.grpo([_plain_prompt(it) for it in target_items], reward, steps=total,
                                  prompts_per_step=cfg.rl_prompts_per_step, group_size=cfg.rl_group_size,
                                  lr=cfg.rl_lr, temperature=cfg.rl_temperature, max_new_tokens=dev_new["rl"],
                                  kl_coef=cfg.rl_kl_coef, inner_steps=cfg.rl_inner_steps, seed=2000 + s,
                                  on_step=on_step, progress=progress)
            return {"curve": curve, "paths": paths, "history": hist.steps, "razor": probes_at}

        for s in cfg.arm_seeds():
            res = {arm: train_arm(arm, s) for arm in ARMS}
            level = matched_level(base_dev, threshold, {a: res[a]["curve"] for a in ARMS})
            for arm in ARMS:
                res[arm]["matched"] = matched_index(res[arm]["curve"], level)
            res["level"] = level
            arms["seeds"][s] = res
            say(f"seed {s}: " + "; ".join(
                f"{arm.upper()} dev accuracy " + " ".join(f"{a:.2f}" for _, a in res[arm]["curve"])
                + f" (matched at step {res[arm]['curve'][res[arm]['matched']][0]})" for arm in ARMS)
                + f"; matched level {level:.3f}")
        # "arms" is the training (and checkpoint writing) alone: the dev evaluations and Razor probes of its
        # checkpoints are the "dev" and "razor" phases
        timings["arms"] = time.perf_counter() - t0 - timings["dev"] - (timings["razor"] - razor_base_s)
        if bar is not None:
            bar.set_postfix_str("meta-probe"), bar.update(1)

        # 4. the meta-probe: base + probe_checkpoints per arm and seed (the matched one last)
        t0 = time.perf_counter()
        options = MetaOptions(max_new_tokens=max_new, stop=(), target_cells=(cfg.target,),
                              collapse_delta=cfg.collapse_delta, batch_size=cfg.batch_size,
                              reference_mode="exact", divergence_on="gold")
        hf_dir = lambda *parts: os.path.join(out, "hf", *parts)  # noqa: E731
        if cfg.backend == "hf":
            # The path of a user's Hugging Face models: transformers loads each checkpoint directory and
            # metaprobe.backends.hf serves the engine's generate/score requests.
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from . import backends

            def source(directory: str) -> Any:
                model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).eval()
                return backends.hf(model, AutoTokenizer.from_pretrained(directory, local_files_only=True))

            mp = MetaProbe(suite, reference="base", options=options)
            mp.add_stage("base", arm="base", step=0, source=source(hf_dir("base")), checkpoint=base_path)
        else:
            mp = MetaProbe(suite, reference="base", options=options, tokenizer="char")
            mp.add_stage("base", arm="base", step=0, source=base, checkpoint=base_path)
        matched: Dict[int, Dict[str, str]] = {}
        stage_seed: Dict[str, int] = {}
        for s, res in arms["seeds"].items():
            matched[s] = {}
            for arm in ARMS:
                r = res[arm]
                idx = [i for i in _pick(r["matched"] + 1, cfg.probe_checkpoints)]
                r["probed"] = []
                for i in idx:
                    step, path = r["curve"][i][0], r["paths"][i]
                    name = f"{arm}-s{s}-{step:04d}"
                    if cfg.backend == "hf":
                        d = hf_dir(f"seed-{s}", arm, f"step-{step:04d}")
                        mp.add_stage(name, arm=arm, step=step, loader=lambda d=d: source(d), checkpoint=path,
                                     tokenizer=AutoTokenizer.from_pretrained(d, local_files_only=True))
                    else:
                        mp.add_stage(name, arm=arm, step=step, loader=lambda p=path: TinyLM.load(p), checkpoint=path)
                    r["probed"].append(name)
                    stage_seed[name] = s
                matched[s][arm] = r["probed"][-1]
        report = mp.run(progress=progress)
        # Paths relative to the output folder: the report travels with its checkpoints and two runs compare.
        for st in report.data["stages"]:
            if st["info"].get("checkpoint"):
                st["info"]["checkpoint"] = _rel(st["info"]["checkpoint"], out)
        timings["meta"] = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix_str("report"), bar.update(1)

        # 5. comparison, findings, files
        t0 = time.perf_counter()
        base_profile = {f"{r.skill}/{r.domain}": float(r.acc) for r in
                        report.profile[report.profile.stage == "base"].itertuples()}
        table = summary_table(report, arms, stage_seed, matched)
        # the per-item target KL parts of the matched checkpoints, from their Razor probes
        parts = {f"{arm}-s{s}-{st:04d}": tuple(r["kl_parts"]) for s, res in arms["seeds"].items() for arm in ARMS
                 for (st, _), r in zip(res[arm]["curve"], res[arm]["razor"])}
        target_kl = {name: parts[name] for m in matched.values() for name in m.values()}
        effects = comparison(report, matched, n_boot=cfg.n_boot, confidence=cfg.confidence,
                             collapse_delta=cfg.collapse_delta, seed=cfg.seed, target_items=target_kl)
        drift = cell_drift(report, matched, n_boot=cfg.n_boot, confidence=cfg.confidence,
                           collapse_delta=cfg.collapse_delta, seed=cfg.seed)
        points = razor_points(arms, set(stage_seed))
        fit = razor_fit(points)
        found = findings(effects, drift, fit, arms, base_profile, cfg)
        files = {name: os.path.join(out, name) for name in (
            "report.json", "report.html", "summary.csv", "summary.txt", "effects.json", "training.json",
            "probes.jsonl", "base.safetensors")}
        report.save(files["report.json"])
        os.makedirs(os.path.join(out, "plots"), exist_ok=True)
        lead_figs = [("razor", razor_figure(points, fit, cfg.target)),
                     ("cell_drift", cell_drift_figure(drift, base_profile, cfg.target))]
        lead_png: Dict[str, bytes] = {}
        for name, fig in lead_figs:
            lead_png[name] = _png(fig)
            path = os.path.join(out, "plots", f"{name}.png")
            _write_bytes(path, lead_png[name])
            files[f"plots/{name}.png"] = path
        for name, path in plot.save_all(report, os.path.join(out, "plots")).items():
            files[f"plots/{os.path.basename(path)}"] = path
        preface = lead_html(effects, drift, found, lead_png, fit, cfg)
        report.to_html(files["report.html"], title=f"metaprobe demo: SFT vs RL on {cfg.target} at a matched gain "
                       f"(seed {cfg.seed}, {cfg.n_seeds} arm seeds)", preface=preface)
        _write_text(files["summary.csv"], table.to_csv(index=False, float_format="%.6g"))
        evidence = {"effects": effects, "cell_drift": drift.to_dict("records"), "target_item_kl": target_kl,
                    "razor": {"points": points, "fit": fit}}
        _write_text(files["effects.json"], json.dumps(_finite(evidence), indent=1, allow_nan=False) + "\n")
        result = DemoResult(out=out, config=cfg, report=report, summary=table, effects=effects, drift=drift,
                            findings=found, arms=arms, files=files, timings=timings, base_profile=base_profile)
        _write_text(files["summary.txt"], result.summary_text() + "\n")
        _write_text(files["training.json"], json.dumps(
            {"config": asdict(cfg), "pool_shortfalls": [f._asdict() for f in pool.shortfalls],
             "base": {"history": base_hist.steps, "dev_acc": base_dev},
             # wall seconds per phase so far (the report phase, still running here, is in the CLI's timing line)
             "phases_s": {k: round(v, 3) for k, v in timings.items()},
             "threshold": threshold, "seeds": {str(s): {
                 "level": res["level"],
                 **{arm: {"history": res[arm]["history"], "dev_curve": res[arm]["curve"],
                          "matched_step": res[arm]["curve"][res[arm]["matched"]][0], "probed": res[arm]["probed"],
                          "razor": [{k: r[k] for k in ("kl_target", "off_target_change")} for r in res[arm]["razor"]],
                          "checkpoints": [_rel(p, out) for p in res[arm]["paths"]]} for arm in ARMS}}
                 for s, res in arms["seeds"].items()}}, indent=1, allow_nan=False) + "\n")
        for res in arms["seeds"].values():
            for arm in ARMS:
                for p in res[arm]["paths"]:
                    files[_rel(p, out)] = p
        timings["report"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
        return result
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(prev_threads)


def _finite(v: Any) -> Any:
    """``v`` with numpy scalars as Python numbers and NaN/±inf as None (JSON has no NaN)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _write_text(path: str, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: str, data: bytes) -> None:
    from ._atomic import write_bytes_atomic

    write_bytes_atomic(path, data)


def _png(fig: Any) -> bytes:
    import io as _io

    from . import plot

    buf = _io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plot.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Tables

def summary_table(report: "Report", arms: Dict[str, Any], stage_seed: Dict[str, int],
                  matched: Dict[int, Dict[str, str]]) -> "pd.DataFrame":
    """One row per probed stage: arm, seed, step, target dev accuracy at that step, suite accuracy on the target
    cell and off it, off-target JS and KL(ref‖stage), target-cell KL(ref‖stage) (nats, token-weighted), the
    relative update norm ‖ΔW‖_F/‖W₀‖_F, collapsed cells, and whether it is the seed's matched checkpoint."""
    import pandas as pd

    s = report.summary.set_index("stage")
    der = report.derived.set_index("stage")
    rows = []
    for name in report.stage_names:
        r = s.loc[name]
        seed = stage_seed.get(name)
        dev = float(arms["base_dev_acc"]) if name == report.reference else float("nan")
        if seed is not None:
            res = arms["seeds"][seed][r.arm]
            dev = dict(res["curve"]).get(int(r.step), float("nan"))
        rows.append({"stage": name, "arm": r.arm, "seed": -1 if seed is None else seed, "step": int(r.step),
                     "dev_acc": dev, "acc_target": r.acc_target, "acc_off_target": r.acc_off_target,
                     "js_off_target": r.js_off_target, "kl_off_target": r.kl_ref_stage_off_target,
                     "kl_target": float(der.loc[name, "div_target"]) if name != report.reference else 0.0,
                     "rel_update": r.rel_update_norm, "collapsed": int(r.collapsed),
                     "matched": seed is not None and matched[seed][r.arm] == name})
    return pd.DataFrame(rows)


def format_summary(table: "pd.DataFrame") -> str:
    """The summary table as fixed-width text."""
    cols = [("arm", "arm", "{}"), ("seed", "seed", "{}"), ("step", "step", "{}"), ("dev_acc", "dev acc", "{:.3f}"),
            ("acc_target", "acc tgt", "{:.3f}"), ("acc_off_target", "acc off", "{:.3f}"),
            ("js_off_target", "JS off", "{:.4f}"), ("kl_off_target", "KL off", "{:.4f}"),
            ("kl_target", "KL tgt", "{:.4f}"), ("rel_update", "|dW|/|W0|", "{:.4f}"), ("collapsed", "collapsed", "{}"),
            ("matched", "matched", "{}")]
    cells = [[h for _, h, _ in cols]]
    for r in table.to_dict("records"):
        row = []
        for key, _, fmt in cols:
            v = r[key]
            if key == "seed" and v < 0:
                row.append("–")
            elif key == "matched":
                row.append("*" if v else "")
            else:
                row.append("–" if isinstance(v, float) and math.isnan(v) else fmt.format(v))
        cells.append(row)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].rjust(widths[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_base_profile(profile: Dict[str, float]) -> str:
    """The base's greedy accuracy per cell as a skills × domains grid."""
    from . import probes

    if not profile:
        return ""
    head = "base accuracy".ljust(15) + "".join(d.rjust(9) for d in probes.DOMAINS)
    lines = [head]
    for sk in probes.SKILLS:
        lines.append(sk.ljust(15) + "".join(
            (f"{profile[f'{sk}/{d}']:.3f}" if f"{sk}/{d}" in profile else "–").rjust(9) for d in probes.DOMAINS))
    n = sum(v >= 0.3 for v in profile.values())
    lines.append(f"cells with accuracy >= 0.3: {n} of {len(profile)}")
    return "\n".join(lines)


def format_effects(effects: Sequence[Dict[str, Any]]) -> str:
    """The effects table as fixed-width text: per metric the SFT and RL values and SFT − RL, with intervals."""
    def ci(v: float, lo: float, hi: float, fmt: str) -> str:
        return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"

    rows = [["metric", "unit", "SFT", "RL", "SFT - RL"]]
    for e in effects:
        f = e.get("fmt", "{:+.3f}")
        rows.append([e["label"], f"{e['n_units']} {e['unit']} x {e['n_seeds']} seeds",
                     ci(e["sft"], e["sft_lo"], e["sft_hi"], f), ci(e["rl"], e["rl_lo"], e["rl_hi"], f),
                     ci(e["diff"], e["lo"], e["hi"], f)])
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i]) for i in range(5)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The comparison at the matched checkpoints

def item_kl(reference: "TinyLM", stage: "TinyLM", items: Sequence[Any],
            separator: str = " ") -> Tuple[List[float], List[int]]:
    """Per item, the summed forward KL(reference‖stage) over its reference-solution tokens and their count,
    teacher-forced exactly as the meta run's ``divergence_on="gold"`` does (BOS + plain prompt, then
    ``separator + reference_solution``; the positions that predict the solution tokens). The report keeps only
    per-cell sums; these per-item parts let the target cell's KL be bootstrapped over items: their ratio
    Σ sums / Σ counts is the report's token-weighted cell value."""
    return _kl_parts(stage, _gold_rows(reference, items, separator))


def _gold_rows(reference: "TinyLM", items: Sequence[Any], separator: str) -> List[Tuple[Any, slice, Any]]:
    """Per item: the token ids (BOS + plain prompt + separator + reference solution), the rows that predict the
    solution tokens and the reference's float64 logits at those rows (computed once, reused for every stage)."""
    from .lm import CharTokenizer

    tok = CharTokenizer()
    out = []
    with torch.no_grad():
        for it in items:
            prompt = tok.encode(_plain_prompt(it))  # BOS + prompt
            sol = tok.encode(separator + it.reference_solution, add_special_tokens=False)
            ids = torch.tensor([prompt + sol], dtype=torch.long)
            rows = slice(len(prompt) - 1, len(prompt) - 1 + len(sol))
            out.append((ids, rows, reference(ids)[0, rows].double()))
    return out


def _kl_parts(stage: "TinyLM", gold_rows: Sequence[Tuple[Any, slice, Any]]) -> Tuple[List[float], List[int]]:
    from .divergence import divergence

    sums, counts = [], []
    with torch.no_grad():
        for ids, rows, ref in gold_rows:
            kl = divergence(ref, stage(ids)[0, rows].double(), metrics="kl_pq")
            sums.append(float(kl["kl_pq"].sum()))
            counts.append(rows.stop - rows.start)
    return sums, counts


def _correct(report: "Report", stage: str) -> Dict[str, Tuple[str, float]]:
    b = report.stage(stage)["behaviour"]
    return {it["id"]: (f"{it['cell']['skill']}/{it['cell']['domain']}", float(bool(it["correct"])))
            for it in b["items"]}


def _cell_div(report: "Report", stage: str, metric: str) -> Dict[str, float]:
    d = report.stage(stage).get("divergence")
    if not d:
        raise InvalidArgumentError(f"stage {stage!r}: no divergence, expected a stage with divergence")
    return {f"{c['cell']['skill']}/{c['cell']['domain']}": float(c[metric]) for c in d["cells"]
            if c["positions"] and c[metric] is not None}


def _units(report: "Report", matched: Dict[int, Dict[str, str]], metric: str,
           target_items: Optional[Dict[str, Tuple[List[float], List[int]]]] = None) -> Dict[str, Any]:
    """Per arm, an array [seeds, units] of what each unit contributes to ``metric`` at the matched checkpoints
    (and, for ratio metrics, the weights its mean divides by), and the unit name."""
    import numpy as np

    if metric == "kl_target" and target_items is not None:
        out: Dict[str, Any] = {"unit": "items"}
        for arm in ARMS:
            parts = [target_items[matched[s][arm]] for s in sorted(matched)]
            sums = np.asarray([p[0] for p in parts], dtype=np.float64)
            counts = np.asarray([p[1] for p in parts], dtype=np.float64)
            out[arm] = sums / np.maximum(counts, 1.0)  # per-item mean KL, weighted by its token count
            out[arm + "_w"] = counts
        return out

    target = set(report.target_cells)
    ref = _correct(report, report.reference)
    seeds = sorted(matched)
    out: Dict[str, Any] = {}
    for arm in ARMS:
        rows = []
        for s in seeds:
            name = matched[s][arm]
            if metric in ("off_target_change", "target_change"):
                got = _correct(report, name)
                keys = sorted(k for k in ref if (ref[k][0] in target) == (metric == "target_change"))
                rows.append([got[k][1] - ref[k][1] for k in keys])
                unit = "items"
            elif metric in ("kl_off_target", "js_off_target", "kl_target"):
                key = "js" if metric.startswith("js") else "kl_ref_stage"
                vals = _cell_div(report, name, key)
                keys = sorted(c for c in vals if (c in target) == (metric == "kl_target"))
                rows.append([vals[c] for c in keys])
                unit = "cells"
            elif metric == "rel_update":
                rows.append([float(report.stage(name)["params"]["total"]["rel_update_norm"])])
                unit = "model"
            else:
                raise InvalidArgumentError(f"metric: got {metric!r}, expected one of {list(_EFFECTS)}")
        out[arm] = np.asarray(rows, dtype=np.float64)
    out["unit"] = unit
    return out


#: metric → (label, which sign of SFT − RL means SFT is worse, verb, number format)
_EFFECTS = {
    "target_change": ("target accuracy change", +1, "gained more on the target", "{:+.3f}"),
    "off_target_change": ("off-target accuracy change", -1, "forgot more", "{:+.3f}"),
    "kl_off_target": ("off-target KL(base||stage)", +1, "drifted more off target (KL)", "{:.4f}"),
    "js_off_target": ("off-target JS", +1, "drifted more off target (JS)", "{:.4f}"),
    "kl_target": ("target-cell KL(base||stage)", +1, "moved further on the target cell (KL)", "{:.4f}"),
    "rel_update": ("update norm |dW|/|W0|", +1, "moved the weights more", "{:.4f}"),
    "dropped_cells": ("off-target cells dropped by >= delta", +1, "lost more cells", "{:+.2f}"),
}


def _interval(boot: Any, confidence: float) -> Tuple[float, float]:
    import numpy as np

    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _boot_indices(rng: Any, n_seeds: int, n_units: int, n_boot: int) -> Tuple[Any, Any]:
    """Two-level bootstrap draws: seeds with replacement, then units with replacement within each drawn seed."""
    import numpy as np

    rows = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else np.zeros((n_boot, 1), dtype=np.int64)
    cols = rng.integers(0, n_units, size=(n_boot, n_seeds, n_units))
    return rows, cols


def comparison(report: "Report", matched: Dict[int, Dict[str, str]], *, n_boot: int = 2000,
               confidence: float = 0.95, collapse_delta: float = 0.1, seed: int = 0,
               target_items: Optional[Dict[str, Tuple[List[float], List[int]]]] = None) -> List[Dict[str, Any]]:
    """SFT versus RL at the matched checkpoints (``matched[seed] = {"sft": stage, "rl": stage}``), pooled over
    seeds: per metric each arm's mean and SFT − RL, each with a percentile bootstrap interval at
    ``confidence`` that resamples seeds, then units within each drawn seed (items for accuracy changes, cells
    for divergences; the update norm has one unit per seed). The same draws serve SFT, RL and their difference
    (paired). ``dropped_cells`` counts the cells whose accuracy fell by at least ``collapse_delta`` from the
    base, recomputed in every replicate from resampled items of each cell. ``target_items`` (stage →
    :func:`item_kl` of its target-cell items) makes the target-cell KL a ratio over items (Σ KL / Σ tokens of
    the drawn items) instead of one cell per seed."""
    import numpy as np

    out: List[Dict[str, Any]] = []
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    for metric in ("target_change", "off_target_change", "kl_off_target", "js_off_target", "kl_target",
                   "rel_update"):
        u = _units(report, matched, metric, target_items)
        a, b = u["sft"], u["rl"]
        wa, wb = u.get("sft_w", np.ones_like(a)), u.get("rl_w", np.ones_like(b))
        rows, cols = _boot_indices(rng, a.shape[0], a.shape[1], n_boot)

        def pick(x: Any, w: Any) -> Any:
            # weighted mean of the drawn units (weights 1: the plain mean; token counts: the ratio estimator)
            return (x * w)[rows[:, :, None], cols].sum(axis=(1, 2)) / w[rows[:, :, None], cols].sum(axis=(1, 2))

        ba, bb = pick(a, wa), pick(b, wb)
        out.append(_record(metric, u["unit"], a, b, ba, bb, confidence,
                           float((a * wa).sum() / wa.sum()), float((b * wb).sum() / wb.sum())))
    out.append(_dropped_cells(report, matched, n_boot, confidence, collapse_delta, rng))
    return out


def _record(metric: str, unit: str, a: Any, b: Any, ba: Any, bb: Any, confidence: float,
            mean_a: Optional[float] = None, mean_b: Optional[float] = None) -> Dict[str, Any]:
    label, worse, verb, fmt = _EFFECTS[metric]
    mean_a = float(a.mean()) if mean_a is None else mean_a
    mean_b = float(b.mean()) if mean_b is None else mean_b
    sl, sh = _interval(ba, confidence)
    rl, rh = _interval(bb, confidence)
    lo, hi = _interval(ba - bb, confidence)
    return {"metric": metric, "label": label, "unit": unit, "n_units": int(a.shape[1]), "n_seeds": int(a.shape[0]),
            "sft": mean_a, "sft_lo": sl, "sft_hi": sh, "rl": mean_b, "rl_lo": rl, "rl_hi": rh,
            "diff": mean_a - mean_b, "lo": lo, "hi": hi, "confidence": confidence,
            "worse_sign": worse, "verb": verb, "fmt": fmt}


def _cell_arrays(report: "Report", matched: Dict[int, Dict[str, str]]) -> Tuple[List[str], Dict[str, Any]]:
    """Per cell: arrays [seeds, items] of correct(arm) − correct(base) for each arm."""
    import numpy as np

    ref = _correct(report, report.reference)
    cells = list(dict.fromkeys(c for c, _ in ref.values()))
    seeds = sorted(matched)
    per: Dict[str, Any] = {}
    for arm in ARMS:
        got = {s: _correct(report, matched[s][arm]) for s in seeds}
        per[arm] = {c: np.asarray([[got[s][k][1] - ref[k][1] for k in sorted(ref) if ref[k][0] == c] for s in seeds],
                                  dtype=np.float64) for c in cells}
    return cells, per


def _dropped_cells(report: "Report", matched: Dict[int, Dict[str, str]], n_boot: int, confidence: float,
                   delta: float, rng: Any) -> Dict[str, Any]:
    import numpy as np

    cells, per = _cell_arrays(report, matched)
    cells = [c for c in cells if c not in report.target_cells]  # forgetting: the cells not trained on
    n_seeds = len(matched)
    counts = {arm: np.zeros(n_boot) for arm in ARMS}
    for c in cells:
        n_items = per["sft"][c].shape[1]
        rows, cols = _boot_indices(rng, n_seeds, n_items, n_boot)
        for arm in ARMS:
            m = per[arm][c][rows[:, :, None], cols].mean(axis=(1, 2))
            counts[arm] += (m <= -delta + 1e-12)
    obs = {arm: float(sum(per[arm][c].mean() <= -delta + 1e-12 for c in cells)) for arm in ARMS}
    rec = _record("dropped_cells", "cells", np.zeros((n_seeds, len(cells))), np.zeros((n_seeds, len(cells))),
                  counts["sft"], counts["rl"], confidence)
    rec.update({"sft": obs["sft"], "rl": obs["rl"], "diff": obs["sft"] - obs["rl"], "delta": delta})
    return rec


def cell_drift(report: "Report", matched: Dict[int, Dict[str, str]], *, n_boot: int = 2000,
               confidence: float = 0.95, collapse_delta: float = 0.1, seed: int = 0) -> "pd.DataFrame":
    """Per cell and arm: the accuracy change from the base at the matched checkpoints, pooled over seeds, with
    its two-level bootstrap interval; ``drifted``: the interval excludes 0; ``collapsed``: a drop of at least
    ``collapse_delta`` whose interval lies below 0."""
    import numpy as np
    import pandas as pd

    cells, per = _cell_arrays(report, matched)
    rng = np.random.Generator(np.random.PCG64(int(seed) + 1))
    rows = []
    for c in cells:
        n_seeds, n_items = per["sft"][c].shape
        r_idx, c_idx = _boot_indices(rng, n_seeds, n_items, n_boot)
        for arm in ARMS:
            x = per[arm][c]
            lo, hi = _interval(x[r_idx[:, :, None], c_idx].mean(axis=(1, 2)), confidence)
            d = float(x.mean())
            rows.append({"cell": c, "arm": arm, "delta": d, "lo": lo, "hi": hi, "n_items": n_items,
                         "n_seeds": n_seeds, "target": c in report.target_cells,
                         "drifted": bool(lo > 0 or hi < 0), "collapsed": bool(d <= -collapse_delta + 1e-12 and hi < 0)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# RL's Razor over every checkpoint of both arms and every seed

def razor_points(arms: Dict[str, Any], probed: Optional[set] = None) -> List[Dict[str, Any]]:
    """One point per saved checkpoint of both arms and every seed, from the Razor probe each got while its arm
    trained (``arms["seeds"][s][arm]["razor"]``, aligned with its ``curve``): the target-cell forward
    KL(base‖stage), the off-target accuracy change from the base on the Razor items, its arm, seed, step, and
    whether the meta-probe also probed it (its name is in ``probed``)."""
    pts = []
    for s, res in sorted(arms["seeds"].items()):
        for arm in ARMS:
            for (step, _), r in zip(res[arm]["curve"], res[arm]["razor"]):
                name = f"{arm}-s{s}-{step:04d}"
                pts.append({"stage": name, "arm": arm, "seed": int(s), "step": int(step),
                            "kl_target": float(r["kl_target"]), "off_target_change": float(r["off_target_change"]),
                            "probed": name in (probed or set())})
    return pts


def razor_fit(points: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Least-squares line off_target_change = a + b · kl_target over all points and per arm, with Pearson r."""
    import numpy as np

    def fit(ps: Sequence[Dict[str, Any]]) -> Dict[str, float]:
        x = np.asarray([p["kl_target"] for p in ps], dtype=np.float64)
        y = np.asarray([p["off_target_change"] for p in ps], dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) < 3 or float(np.ptp(x)) == 0.0:
            return {"n": int(len(x)), "slope": float("nan"), "intercept": float("nan"), "pearson": float("nan")}
        b, a = np.polyfit(x, y, 1)
        r = float(np.corrcoef(x, y)[0, 1]) if float(np.ptp(y)) > 0 else float("nan")
        return {"n": int(len(x)), "slope": float(b), "intercept": float(a), "pearson": r}

    return {"all": fit(points), **{arm: fit([p for p in points if p["arm"] == arm]) for arm in ARMS}}


_COLORS = {"sft": "#d62728", "rl": "#1f77b4"}


def razor_figure(points: Sequence[Dict[str, Any]], fit: Dict[str, Any], target: str) -> Any:
    """Off-target accuracy change against target-cell forward KL for every checkpoint (colour: arm, marker
    size: step), with the pooled least-squares line."""
    import numpy as np

    from .plot import _plt

    fig = _plt()(figsize=(5.6, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for arm in ARMS:
        ps = [p for p in points if p["arm"] == arm]
        if not ps:
            continue
        steps = [p["step"] for p in ps]
        top = max(steps) or 1
        ax.scatter([p["kl_target"] for p in ps], [p["off_target_change"] for p in ps], c=_COLORS[arm],
                   s=[18 + 40 * st / top for st in steps], alpha=0.8,
                   label=f"{arm.upper()} (r = {fit[arm]['pearson']:+.2f})" if math.isfinite(fit[arm]["pearson"])
                   else arm.upper())
    f = fit["all"]
    if math.isfinite(f["slope"]):
        xs = np.linspace(0.0, max(p["kl_target"] for p in points), 50)
        ax.plot(xs, f["intercept"] + f["slope"] * xs, "k--", lw=1,
                label=f"fit: {f['intercept']:+.3f} {f['slope']:+.3f}·KL (r = {f['pearson']:+.2f})")
    ax.axhline(0.0, color="#999", lw=0.6)
    ax.set_xlabel(f"forward KL(base||stage) on the target cell {target} (nats/token)")
    ax.set_ylabel("off-target accuracy change")
    ax.set_title("RL's Razor: every checkpoint, both arms, every seed", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cell_drift_figure(drift: "pd.DataFrame", base_profile: Dict[str, float], target: str) -> Any:
    """Per-cell accuracy change of both arms side by side (skills × domains heatmaps, pooled over seeds);
    cells whose interval excludes 0 are outlined, the target cell is starred."""
    from . import probes
    from .plot import _plt

    fig = _plt()(figsize=(9.0, 3.6))
    for k, arm in enumerate(ARMS):
        ax = fig.add_subplot(1, 2, k + 1)
        sub = drift[drift.arm == arm].set_index("cell")
        grid = [[float(sub.loc[f"{s}/{d}", "delta"]) if f"{s}/{d}" in sub.index else math.nan
                 for d in probes.DOMAINS] for s in probes.SKILLS]
        im = ax.imshow(grid, cmap="RdBu", vmin=-0.5, vmax=0.5)
        for i, s in enumerate(probes.SKILLS):
            for j, d in enumerate(probes.DOMAINS):
                c = f"{s}/{d}"
                if c not in sub.index:
                    continue
                r = sub.loc[c]
                ax.text(j, i, f"{r.delta:+.2f}" + ("*" if c == target else ""), ha="center", va="center",
                        fontsize=7, fontweight="bold" if r.drifted else "normal")
                if r.drifted:
                    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="k"))
        ax.set_xticks(range(len(probes.DOMAINS)), probes.DOMAINS, fontsize=7)
        ax.set_yticks(range(len(probes.SKILLS)), probes.SKILLS if k == 0 else [""] * len(probes.SKILLS), fontsize=7)
        ax.set_title(f"{arm.upper()}: accuracy change vs base", fontsize=9)
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    fig.suptitle("per-cell drift at the matched checkpoints (boxed: 95% interval excludes 0; *: target)",
                 fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Findings, worded from the intervals

def effect_sentence(e: Dict[str, Any]) -> str:
    """One effect in words chosen by its interval: SFT worse (interval on SFT's side of 0), RL worse (the
    reverse), or no difference distinguishable (the interval contains 0). For the accuracy changes the verb
    also follows the sign of the worse arm's own change (:func:`_change_verb`): a lower off-target change is
    "forgot more" only when that arm's accuracy fell, "gained less off target" when it rose."""
    f = e["fmt"]
    pct = f"{round(100 * e['confidence'])}%"
    arm_ci = lambda a: f"{f.format(e[a])} [{f.format(e[a + '_lo'])}, {f.format(e[a + '_hi'])}]"  # noqa: E731
    nums = (f"SFT − RL = {f.format(e['diff'])} [{f.format(e['lo'])}, {f.format(e['hi'])}] ({pct} interval; "
            f"SFT {arm_ci('sft')}, RL {arm_ci('rl')}; {e['n_units']} {e['unit']} × {e['n_seeds']} seeds)")
    side = e["worse_sign"]
    sft_worse = (side > 0 and e["lo"] > 0) or (side < 0 and e["hi"] < 0)
    rl_worse = (side > 0 and e["hi"] < 0) or (side < 0 and e["lo"] > 0)
    if sft_worse:
        return f"{e['label']}: SFT {_change_verb(e, 'sft')}: {nums}."
    if rl_worse:
        return f"{e['label']}: RL {_change_verb(e, 'rl')} (the reverse of SFT drifting more): {nums}."
    return f"{e['label']}: no difference distinguishable between SFT and RL: {nums}."


def _change_verb(e: Dict[str, Any], arm: str) -> str:
    """The verb for ``arm`` on the worse side of ``e``. Accuracy changes are worded from the sign of the arm's
    own change: off target, the lower arm "forgot more" when its accuracy fell (< 0) and "gained less off
    target" when it did not (both arms rose or stayed); on target, the higher arm "gained more" when it rose and
    "lost less" when it did not. Every other metric keeps its verb from ``_EFFECTS``."""
    v = float(e[arm])
    if e["metric"] == "off_target_change" and v >= 0:
        return "gained less off target (neither arm's off-target accuracy fell)"
    if e["metric"] == "target_change" and v <= 0:
        return "lost less on the target (neither arm's target accuracy rose)"
    return e["verb"]


def findings(effects: Sequence[Dict[str, Any]], drift: "pd.DataFrame", fit: Dict[str, Any], arms: Dict[str, Any],
             base_profile: Dict[str, float], cfg: DemoConfig) -> List[str]:
    """Sentences stating what this run measured, each computed from the numbers (never canned): the base's
    profile, the matched gain per seed, every effect worded from its interval, the drifted and collapsed cells
    of each arm, and the Razor fit."""
    out: List[str] = []
    n_ok = sum(v >= 0.3 for v in base_profile.values())
    out.append(f"Base: greedy accuracy >= 0.3 in {n_ok} of {len(base_profile)} cells (mean "
               f"{sum(base_profile.values()) / max(1, len(base_profile)):.3f}); target dev accuracy "
               f"{arms['base_dev_acc']:.3f}, arms trained until {arms['threshold']:.3f}.")
    parts, short = [], []
    for s, res in sorted(arms["seeds"].items()):
        st = {arm: res[arm]["curve"][res[arm]["matched"]] for arm in ARMS}
        parts.append(f"seed {s}: dev {res['level']:.3f} (SFT step {st['sft'][0]}, RL step {st['rl'][0]})")
        if res["level"] < arms["threshold"] - 1e-12:
            short.append(s)
    out.append("Matched checkpoints: " + "; ".join(parts) + "." + (
        f" In seed(s) {', '.join(map(str, short))} an arm stopped short of the threshold, so the match is at the "
        "lower accuracy both reached." if short else ""))
    for s, res in sorted(arms["seeds"].items()):
        if res["level"] <= arms["base_dev_acc"] + 1e-12:
            out.append(f"Seed {s}: no gain was matched (one arm never beat the base's dev accuracy), so its "
                       "comparison is at the base's level.")
    rl_gain = [res["rl"]["curve"][res["rl"]["matched"]][1] - arms["base_dev_acc"] for res in arms["seeds"].values()]
    out.append("RL's greedy target dev accuracy " + ("rose" if all(g > 0 for g in rl_gain) else
                                                     "did not rise in every seed") +
               ": " + ", ".join(f"{g:+.3f}" for g in rl_gain) + " over the base at the matched checkpoints.")
    for e in effects:
        out.append(effect_sentence(e))
    for arm in ARMS:
        sub = drift[drift.arm == arm]
        down = sub[(sub.hi < 0) & ~sub.target]
        up = sub[(sub.lo > 0) & ~sub.target]
        col = sub[sub.collapsed & ~sub.target]
        out.append(f"{arm.upper()} off-target cells whose pooled accuracy change excludes 0: "
                   + (", ".join(f"{r.cell} {r.delta:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]" for r in down.itertuples())
                      or "none fell")
                   + ("; rose: " + ", ".join(f"{r.cell} {r.delta:+.2f}" for r in up.itertuples()) if len(up) else "")
                   + f"; collapsed (drop >= {cfg.collapse_delta}, interval below 0): "
                   + (", ".join(col.cell) if len(col) else "none") + ".")
    f = fit["all"]
    if math.isfinite(f["slope"]):
        out.append(f"RL's Razor over {f['n']} checkpoints (both arms, all seeds): off-target accuracy change = "
                   f"{f['intercept']:+.3f} {f['slope']:+.3f} × target KL"
                   + (f", Pearson r = {f['pearson']:+.2f}" if math.isfinite(f["pearson"]) else
                      " (no spread in the accuracy change: r undefined)")
                   + "".join(f"; {arm.upper()} alone r = {fit[arm]['pearson']:+.2f}" for arm in ARMS
                             if math.isfinite(fit[arm]["pearson"])) + ".")
    else:
        out.append("RL's Razor: too few checkpoints or no spread in target KL for a fit.")
    return out


def lead_html(effects: Sequence[Dict[str, Any]], drift: "pd.DataFrame", found: Sequence[str],
              png: Dict[str, bytes], fit: Dict[str, Any], cfg: DemoConfig) -> str:
    """The first screen of the demo's report.html: the findings, the effects table with intervals, the RL's
    Razor plot and the per-cell drift of both arms side by side."""
    import base64

    esc = _html.escape
    rows = []
    for e in effects:
        f = e["fmt"]
        cells = [f"{f.format(e[k])} [{f.format(e[k + '_lo'])}, {f.format(e[k + '_hi'])}]" for k in ARMS]
        diff = f"{f.format(e['diff'])} [{f.format(e['lo'])}, {f.format(e['hi'])}]"
        excl = e["lo"] > 0 or e["hi"] < 0
        rows.append(f"<tr><td style='text-align:left'>{esc(e['label'])}</td><td>{esc(cells[0])}</td>"
                    f"<td>{esc(cells[1])}</td><td style='font-weight:{'bold' if excl else 'normal'}'>{esc(diff)}</td>"
                    f"<td>{e['n_units']} {esc(e['unit'])} × {e['n_seeds']}</td></tr>")
    img = lambda k: (f'<img style="max-width:48%;vertical-align:top" alt="{k}" '  # noqa: E731
                     f'src="data:image/png;base64,{base64.b64encode(png[k]).decode("ascii")}">')
    pct = round(100 * cfg.confidence)
    return ("<h2>The answer: SFT vs RL at a matched target gain</h2>"
            f"<table class='tbl'><tr><th>effect (matched checkpoints, pooled over seeds)</th><th>SFT [{pct}%]</th>"
            f"<th>RL [{pct}%]</th><th>SFT − RL [{pct}%]</th><th>units × seeds</th></tr>" + "".join(rows) +
            "</table>" + f"<div>{img('razor')} {img('cell_drift')}</div>"
            + "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in found) + "</ul>"
            + "<p>Intervals: percentile bootstrap resampling seeds, then items (cells for divergences) within each "
            "seed; bold differences exclude 0. Raw tables follow.</p><hr>")
