"""The end-to-end demo study (``metaprobe demo`` / ``make demo``): SFT versus RL on one target slice, meta-probed.

1. A probe suite of all 20 cells at difficulty 1 (held out: it is generated with the run's seed, the training
   pool with another one).
2. A base :class:`metaprobe.lm.TinyLM` trained from scratch (C++ SFT) on a mixture of probe items of every cell
   with their reference solutions, in the text format the meta run uses: the ``plain`` prompt
   ``Question: …\\nAnswer:`` followed by ``" " + reference_solution`` (``MetaOptions.solution_separator``).
3. Two arms from the base on the target slice (default ``diagnostic/math``): SFT on the gold reference
   solutions, and GRPO with the reward ``metaprobe.probes.check(item, completion)``; each saves checkpoints.
4. The meta-probe (:class:`metaprobe.MetaProbe`) over the base and every checkpoint.
5. A summary table per arm and step, a findings paragraph computed from the measured numbers, ``report.json``,
   ``report.html`` and the plots.

>>> result = metaprobe.demo.run_demo("runs/demo", fast=True)
>>> print(result.summary_text())

See ``docs/demo.md``.
"""
from __future__ import annotations

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

__all__ = ["DemoConfig", "DemoResult", "run_demo", "summary_table", "findings",
           "comparable_report"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class DemoConfig:
    """Every knob of the demo. :meth:`default` (≤ 10 min on 2 cores) and :meth:`fast` (≤ 2 min) are the presets."""

    seed: int = 0
    threads: int = 1                       #: torch intra-op threads (1 is faster for these tiny models)
    # model
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 384
    max_len: int = 768                     #: the longest difficulty-1 prompt + solution is ~630 characters
    # data
    difficulties: Tuple[int, ...] = (1,)
    train_per_cell: int = 150              #: training pool items per cell (generated with seed + 1)
    eval_per_cell: int = 5                 #: probe items per cell for the meta-probe (seed)
    target: str = "diagnostic/math"        #: "skill/domain" of the post-training slice
    # base pre-training (C++ SFT over the mixture)
    base_steps: int = 240
    base_batch: int = 16
    base_lr: float = 3e-3
    base_loss_on: str = "completion"
    # SFT arm
    sft_steps: int = 40
    sft_batch: int = 8
    sft_lr: float = 1e-3
    # RL arm (GRPO)
    rl_steps: int = 40
    rl_prompts_per_step: int = 4
    rl_group_size: int = 8
    rl_lr: float = 3e-4
    rl_temperature: float = 0.7            #: sampling at 0.7 keeps the tiny model's answers parseable
    rl_max_new_tokens: int = 96
    rl_kl_coef: float = 0.0
    rl_inner_steps: int = 1
    checkpoints: int = 4                   #: per arm, evenly spaced (the last step included)
    # meta-probe
    max_new_tokens: int = 110
    batch_size: int = 16
    collapse_delta: float = 0.1

    @classmethod
    def default(cls, **overrides: Any) -> "DemoConfig":
        """The ``metaprobe demo`` preset."""
        return replace(cls(), **overrides)

    @classmethod
    def fast(cls, **overrides: Any) -> "DemoConfig":
        """The ``--fast`` preset (the tests and the notebook run it)."""
        base = cls(train_per_cell=60, eval_per_cell=2, base_steps=100, base_batch=12, sft_steps=16, rl_steps=16)
        return replace(base, **overrides)

    def target_cell(self) -> Tuple[str, str]:
        parts = self.target.split("/")
        if len(parts) != 2:
            raise InvalidArgumentError(f"target: got {self.target!r}, expected 'skill/domain' such as 'diagnostic/math'")
        return parts[0], parts[1]

    def checkpoint_steps(self, steps: int) -> List[int]:
        """The steps at which an arm of ``steps`` updates saves a checkpoint."""
        if self.checkpoints < 1 or steps < self.checkpoints:
            raise InvalidArgumentError(
                f"checkpoints: got {self.checkpoints} for {steps} steps, expected 1 <= checkpoints <= steps")
        return sorted({round(steps * (k + 1) / self.checkpoints) for k in range(self.checkpoints)})


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the report, the training histories, the tables and the files written."""

    out: str
    config: DemoConfig
    report: "Report"
    summary: "pd.DataFrame"
    findings: List[str]
    histories: Dict[str, Any]
    files: Dict[str, str]
    timings: Dict[str, float]
    checkpoints: Dict[str, List[Tuple[int, str]]] = field(default_factory=dict)

    def summary_text(self) -> str:
        """The summary table and the findings as printed by ``metaprobe demo``."""
        return format_summary(self.summary) + "\n\n" + "\n".join(f"- {f}" for f in self.findings)


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from ._progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="phase")


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


def _reward_windows(rewards: Sequence[float]) -> Tuple[float, float]:
    """Mean reward of the first and the last quarter of the steps (at least 2 steps each)."""
    k = max(2, len(rewards) // 4)
    return float(sum(rewards[:k]) / k), float(sum(rewards[-k:]) / k)


def run_demo(out: PathLike = "runs/demo", fast: bool = False, seed: int = 0, threads: int = 1,
             config: Optional[DemoConfig] = None, progress: bool = True,
             log: Optional[Callable[[str], None]] = None) -> DemoResult:
    """Runs the whole study and writes it to ``out``; returns a :class:`DemoResult`.

    Files: ``base.safetensors``, ``sft/step-N.safetensors``, ``rl/step-N.safetensors`` and the same models as
    Hugging Face checkpoint directories ``hf/base``, ``hf/sft/step-N``, ``hf/rl/step-N`` (``transformers``'
    ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` open them), ``probes.jsonl``,
    ``report.json``, ``report.html``, ``plots/*.png``, ``summary.csv``, ``summary.txt`` and ``training.json``
    (per-step SFT losses and GRPO rewards). ``config`` overrides the preset chosen by ``fast`` (its ``seed`` and
    ``threads`` are then used as given).
    """
    from . import plot, probes
    from .lm import TinyLM
    from .meta import MetaOptions, MetaProbe

    if config is None:
        config = (DemoConfig.fast if fast else DemoConfig.default)(seed=seed, threads=threads)
    cfg = config
    if cfg.threads < 1:
        raise InvalidArgumentError(f"threads: got {cfg.threads}, expected an integer >= 1")
    skill, domain = cfg.target_cell()
    if skill not in probes.SKILLS or domain not in probes.DOMAINS:
        raise InvalidArgumentError(f"target: got {cfg.target!r}, expected 'skill/domain' with a skill of "
                                   f"{probes.SKILLS} and a domain of {probes.DOMAINS}")
    say = log or (lambda s: None)
    out = os.fspath(out)
    os.makedirs(os.path.join(out, "sft"), exist_ok=True)
    os.makedirs(os.path.join(out, "rl"), exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    timings: Dict[str, float] = {}
    bar = _progress(progress, 5, "demo")
    try:
        t0 = time.perf_counter()
        # 1. probe suite (held out) and training pool
        suite = probes.generate(n_per_cell=cfg.eval_per_cell, difficulties=list(cfg.difficulties), seed=cfg.seed)
        suite.to_jsonl(os.path.join(out, "probes.jsonl"))
        pool = probes.generate(n_per_cell=cfg.train_per_cell, difficulties=list(cfg.difficulties), seed=cfg.seed + 1)
        eval_prompts = set(it.prompt for it in suite)
        pool_items = [it for it in pool if it.prompt not in eval_prompts]
        mixture = [(_plain_prompt(it), " " + it.reference_solution) for it in pool_items]
        target_items = [it for it in pool_items if it.skill == skill and it.domain == domain]
        say(f"probe suite: {len(suite)} items; training pool: {len(mixture)} items "
            f"({len(target_items)} in the target slice {cfg.target})")
        timings["data"] = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix_str("base"), bar.update(1)

        # 2. base model from scratch
        t0 = time.perf_counter()
        base = TinyLM(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                      max_len=cfg.max_len, seed=cfg.seed)
        base_hist = base.sft(mixture, steps=cfg.base_steps, batch_size=cfg.base_batch, lr=cfg.base_lr,
                             warmup=max(1, cfg.base_steps // 20), loss_on=cfg.base_loss_on, seed=cfg.seed,
                             progress=progress)
        base_path = os.path.join(out, "base.safetensors")
        base.save(base_path)
        base.save_pretrained(os.path.join(out, "hf", "base"))  # opens with transformers (docs/demo.md)
        timings["base"] = time.perf_counter() - t0
        say(f"base: {base.num_parameters()} parameters, {cfg.base_steps} steps, loss "
            f"{base_hist.losses[0]:.3f} -> {base_hist.losses[-1]:.3f} ({timings['base']:.1f} s)")
        if bar is not None:
            bar.set_postfix_str("arms"), bar.update(1)

        # 3. the two arms on the target slice
        t0 = time.perf_counter()
        ckpts: Dict[str, List[Tuple[int, str]]] = {"sft": [], "rl": []}

        def saver(arm: str, model: TinyLM, steps: int) -> Callable[[Dict[str, Any]], bool]:
            at = set(cfg.checkpoint_steps(steps))
            counter = {"n": 0}

            def on_step(_: Dict[str, Any]) -> bool:
                counter["n"] += 1
                if counter["n"] in at:
                    path = os.path.join(out, arm, f"step-{counter['n']:04d}.safetensors")
                    model.save(path)
                    model.save_pretrained(os.path.join(out, "hf", arm, f"step-{counter['n']:04d}"))
                    ckpts[arm].append((counter["n"], path))
                return True

            return on_step

        sft = base.clone()
        sft_examples = [(_plain_prompt(it), " " + it.reference_solution) for it in target_items]
        sft_hist = sft.sft(sft_examples, steps=cfg.sft_steps, batch_size=cfg.sft_batch, lr=cfg.sft_lr,
                           loss_on="completion", seed=cfg.seed + 2, on_step=saver("sft", sft, cfg.sft_steps),
                           progress=progress)
        timings["sft"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rl = base.clone()
        rl_prompts = [_plain_prompt(it) for it in target_items]

        def reward(completion: str, index: int) -> float:
            return 1.0 if probes.check(target_items[index], completion) else 0.0

        rl_hist = rl.grpo(rl_prompts, reward, steps=cfg.rl_steps, prompts_per_step=cfg.rl_prompts_per_step,
                          group_size=cfg.rl_group_size, lr=cfg.rl_lr, temperature=cfg.rl_temperature,
                          max_new_tokens=cfg.rl_max_new_tokens, kl_coef=cfg.rl_kl_coef,
                          inner_steps=cfg.rl_inner_steps, seed=cfg.seed + 3,
                          on_step=saver("rl", rl, cfg.rl_steps), progress=progress)
        timings["rl"] = time.perf_counter() - t0
        r0, r1 = _reward_windows(rl_hist.mean_rewards)
        say(f"SFT arm: loss {sft_hist.losses[0]:.3f} -> {sft_hist.losses[-1]:.3f} ({timings['sft']:.1f} s); "
            f"RL arm: mean reward {r0:.3f} -> {r1:.3f} (first/last quarter, {timings['rl']:.1f} s)")
        if bar is not None:
            bar.set_postfix_str("meta-probe"), bar.update(1)

        # 4. the meta-probe
        t0 = time.perf_counter()
        options = MetaOptions(max_new_tokens=cfg.max_new_tokens, stop=(), target_cells=(cfg.target,),
                              collapse_delta=cfg.collapse_delta, batch_size=cfg.batch_size,
                              reference_mode="exact", divergence_on="gold")
        mp = MetaProbe(suite, reference="base", options=options, tokenizer="char")
        mp.add_stage("base", arm="base", step=0, source=base, checkpoint=base_path)
        for arm in ("sft", "rl"):
            for step, path in ckpts[arm]:
                mp.add_stage(f"{arm}-{step}", arm=arm, step=step,
                             loader=lambda p=path: TinyLM.load(p), checkpoint=path)
        report = mp.run(progress=progress)
        # Paths relative to the output folder: the report travels with its checkpoints and two runs compare.
        for s in report.data["stages"]:
            if s["info"].get("checkpoint"):
                s["info"]["checkpoint"] = _rel(s["info"]["checkpoint"], out)
        timings["meta"] = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix_str("report"), bar.update(1)

        # 5. tables, findings, files
        t0 = time.perf_counter()
        histories = {"base": base_hist.steps, "sft": sft_hist.steps, "rl": rl_hist.steps}
        table = summary_table(report, histories)
        report.add_differences()  # paired stage differences with bootstrap intervals (docs/meta.md)
        found = findings(report, table, rl_hist.mean_rewards)
        files = {"report.json": os.path.join(out, "report.json"), "report.html": os.path.join(out, "report.html"),
                 "summary.csv": os.path.join(out, "summary.csv"), "summary.txt": os.path.join(out, "summary.txt"),
                 "training.json": os.path.join(out, "training.json"), "probes.jsonl": os.path.join(out, "probes.jsonl"),
                 "base.safetensors": base_path}
        report.save(files["report.json"])
        for name, path in plot.save_all(report, os.path.join(out, "plots")).items():
            files[f"plots/{os.path.basename(path)}"] = path
        report.to_html(files["report.html"], title=f"metaprobe demo: SFT vs RL on {cfg.target} (seed {cfg.seed})")
        _write_text(files["summary.csv"], table.to_csv(index=False, float_format="%.6g"))
        result = DemoResult(out=out, config=cfg, report=report, summary=table, findings=found, histories=histories,
                            files=files, timings=timings, checkpoints=ckpts)
        _write_text(files["summary.txt"], result.summary_text() + "\n")
        _write_text(files["training.json"], json.dumps(
            {"config": asdict(cfg), "histories": histories, "checkpoints":
             {arm: [[s, _rel(p, out)] for s, p in v] for arm, v in ckpts.items()}}, indent=1, allow_nan=False) + "\n")
        for arm, v in ckpts.items():
            for s, p in v:
                files[_rel(p, out)] = p
        timings["report"] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
        return result
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(prev_threads)


def _write_text(path: str, text: str) -> None:
    from ._atomic import write_bytes_atomic

    write_bytes_atomic(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
def summary_table(report: "Report", histories: Optional[Dict[str, Any]] = None) -> "pd.DataFrame":
    """One row per stage (arm, step): accuracy on the target slice and off it, mean JS and KL(ref‖stage) off
    target (nats, token-weighted), the total update norm ‖ΔW‖_F and ‖ΔW‖_F/‖W₀‖_F, drift L2, collapsed cells, and
    the training signal at that step (SFT loss, GRPO mean reward) when ``histories`` are given."""
    import pandas as pd

    s = report.summary
    params = report.params
    tot = params[params.level == "total"].set_index("stage") if not params.empty else None
    rows = []
    for r in s.itertuples():
        arm = r.arm
        signal = float("nan")
        if histories is not None and arm in ("sft", "rl") and r.step >= 1:
            h = histories[arm]
            if r.step <= len(h):
                signal = float(h[r.step - 1]["loss" if arm == "sft" else "mean_reward"])
        rows.append({
            "arm": arm, "step": int(r.step),
            "acc_target": r.acc_target, "acc_off_target": r.acc_off_target,
            "js_off_target": r.js_off_target, "kl_off_target": r.kl_ref_stage_off_target,
            "update_fro": float(tot.loc[r.stage, "delta_fro"]) if tot is not None and r.stage in tot.index else 0.0,
            "rel_update": r.rel_update_norm, "drift_l2": r.drift_l2, "collapsed": int(r.collapsed),
            "train_signal": signal,
        })
    return pd.DataFrame(rows)


def format_summary(table: "pd.DataFrame") -> str:
    """The summary table as fixed-width text."""
    cols = [("arm", "arm", "{}"), ("step", "step", "{}"), ("acc_target", "acc tgt", "{:.3f}"),
            ("acc_off_target", "acc off", "{:.3f}"), ("js_off_target", "JS off", "{:.4f}"),
            ("kl_off_target", "KL off", "{:.4f}"), ("update_fro", "|dW|", "{:.3f}"), ("rel_update", "|dW|/|W0|", "{:.4f}"),
            ("collapsed", "collapsed", "{}"), ("train_signal", "loss|reward", "{:.3f}")]
    cells = [[h for _, h, _ in cols]]
    for r in table.to_dict("records"):
        row = []
        for key, _, fmt in cols:
            v = r[key]
            row.append("–" if isinstance(v, float) and math.isnan(v) else fmt.format(v))
        cells.append(row)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].rjust(widths[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def findings(report: "Report", table: "pd.DataFrame", rl_rewards: Sequence[float] = ()) -> List[str]:
    """Sentences stating what this run measured (never canned): which arm drifted more off target, the
    target/off-target accuracy changes, collapsed cells, update sizes, the RL reward trend and RL's Razor."""
    out: List[str] = []
    base = table[table.arm == "base"].iloc[0]
    last = {arm: table[table.arm == arm].sort_values("step").iloc[-1]
            for arm in ("sft", "rl") if (table.arm == arm).any()}
    if "sft" in last and "rl" in last:
        js_s, js_r = float(last["sft"].js_off_target), float(last["rl"].js_off_target)
        mean_s = float(table[table.arm == "sft"].js_off_target.mean())
        mean_r = float(table[table.arm == "rl"].js_off_target.mean())
        if math.isnan(js_s) or math.isnan(js_r):
            out.append("Off-target JS could not be compared (missing divergence).")
        elif js_s == js_r:
            out.append(f"Both arms ended with the same mean JS off target ({js_s:.4f} nats).")
        else:
            more, less = ("SFT", "RL") if js_s > js_r else ("RL", "SFT")
            hi, lo = max(js_s, js_r), min(js_s, js_r)
            ratio = f"{hi / lo:.2f}x" if lo > 0 else "from zero"
            lead = (f"{more} drifted more off target" if lo == 0 or hi / lo >= 1.1 else
                    f"{more} drifted more off target, but only slightly")
            out.append(f"{lead}: mean JS off target at its last checkpoint {hi:.4f} nats vs {lo:.4f} for {less} "
                       f"({ratio}); averaged over checkpoints {mean_s:.4f} (SFT) vs {mean_r:.4f} (RL).")
        for arm, name in (("sft", "SFT"), ("rl", "RL")):
            r = last[arm]
            out.append(f"{name} (step {int(r.step)}): target accuracy {base.acc_target:.3f} -> {r.acc_target:.3f} "
                       f"({r.acc_target - base.acc_target:+.3f}), off target {base.acc_off_target:.3f} -> "
                       f"{r.acc_off_target:.3f} ({r.acc_off_target - base.acc_off_target:+.3f}); "
                       f"update ||dW||/||W0|| = {r.rel_update:.4f}.")
        us, ur = float(last["sft"].rel_update), float(last["rl"].rel_update)
        if not (math.isnan(us) or math.isnan(ur)) and us != ur:
            out.append(f"{'SFT' if us > ur else 'RL'} moved the weights more ({max(us, ur):.4f} vs {min(us, ur):.4f} "
                       "relative update norm).")
    drift = report.drift
    coll = drift[drift.collapsed]
    if coll.empty:
        out.append(f"No cell collapsed (accuracy drop > {report.data['options'].get('collapse_delta', 0.1)} with "
                   "non-overlapping Wilson intervals) in any checkpoint.")
    else:
        for arm in dict.fromkeys(coll.arm):
            sub = coll[coll.arm == arm]
            cells = sorted(dict.fromkeys(sub.skill + "/" + sub.domain))
            out.append(f"Collapsed cells in the {arm.upper()} arm: {', '.join(cells)} "
                       f"(at steps {', '.join(str(s) for s in sorted(set(sub.step)))}).")
    if len(rl_rewards) >= 4:
        r0, r1 = _reward_windows(rl_rewards)
        trend = "rose" if r1 > r0 else ("fell" if r1 < r0 else "stayed flat")
        out.append(f"The RL arm's mean sampled reward on the target slice {trend}: {r0:.3f} (first quarter of the "
                   f"steps) -> {r1:.3f} (last quarter).")
    for r in report.razor.itertuples():
        if not math.isnan(r.pearson):
            out.append(f"RL's Razor, {r.arm.upper()} arm: Pearson r = {r.pearson:+.2f} between {r.metric} on the "
                       f"target cells and the off-target accuracy change over {r.points} points.")
    finals: Dict[str, Tuple[int, str]] = {}
    for s in report.stages_raw:
        i = s["info"]
        if i["arm"] in ("sft", "rl") and (i["arm"] not in finals or i["step"] >= finals[i["arm"]][0]):
            finals[i["arm"]] = (i["step"], i["name"])
    if "sft" in finals and "rl" in finals:
        pair = (finals["sft"][1], finals["rl"][1])
        recs = {d["metric"]: d for d in report.data.get("differences") or [] if (d["a"], d["b"]) == pair}
        for metric, label in (("off_target_change", "off-target accuracy change"),
                              ("accuracy_target", "target accuracy")):
            if metric in recs:
                d = recs[metric]
                out.append(f"SFT - RL {label} at the last checkpoints: {d['diff']:+.3f} (95% bootstrap interval "
                           f"[{d['lo']:+.3f}, {d['hi']:+.3f}] over {d['n_units']} items, permutation "
                           f"p = {d['p_value']:.3f}).")
    return out
