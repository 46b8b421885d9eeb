"""The report of a meta-probing run: its JSON document (schema in ``docs/report-schema.md``), pandas tables,
and one self-contained HTML page.

``Report.load(path)`` validates the document with the C++ parser (a :class:`metaprobe.FormatError` names the
bad field); ``report.save(path)`` writes it atomically. Tables are built on demand (pandas is imported lazily).
"""
from __future__ import annotations

import base64
import html
import io as _io
import json
import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Union

from . import _core
from ._atomic import write_bytes_atomic

if TYPE_CHECKING:
    import pandas as pd

    from .responses import Responses

__all__ = ["Report", "SCHEMA", "SCHEMA_VERSION"]

SCHEMA: str = _core.meta.SCHEMA
SCHEMA_VERSION: int = _core.meta.SCHEMA_VERSION
PathLike = Union[str, "os.PathLike[str]"]


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _fields(record: str, exclude: tuple[str, ...]) -> list[str]:
    """The numeric columns of one report record: its keys as the C++ field list declares them
    (``_core.meta.RECORD_FIELDS``), in document order, less the non-numeric ones in ``exclude``."""
    return [k for k in _core.meta.RECORD_FIELDS[record] if k not in exclude]


def _cell(c: dict) -> str:
    return f"{c['skill']}/{c['domain']}"


class Report:
    """A meta-probing report. ``data`` is the JSON document as a dict (NaN and ±inf are ``None``)."""

    def __init__(self, data: dict) -> None:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise _core.FormatError(f"report: schema is {data.get('schema') if isinstance(data, dict) else data!r}, "
                                    f"expected {SCHEMA!r}")
        self.data = data

    # --- persistence -------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str) -> "Report":
        """Parses and validates a report document (FormatError naming the bad field); the C++ parser reads the
        text once and hands back the document as a dict."""
        return cls(_core.meta.parse_report(text))

    @classmethod
    def merge(cls, parts: Iterable["Report"], order: Optional[Iterable[str]] = None) -> "Report":
        """Joins the parts of one run — ``MetaProbe.run(stages=...)`` in separate processes or jobs (e.g. one job
        per checkpoint on a cluster) — into the whole run's report: the parts must share the options, the items
        and the reference stage (each part probes it); every other stage must be in one part. Stages come in
        ``order`` (names; default: first appearance); derived metrics and RL's Razor are recomputed, so the
        result equals the single-process report (timings aside). ``differences`` start empty."""
        parts = list(parts)
        for k, p in enumerate(parts):
            if not isinstance(p, Report):
                raise _core.InvalidArgumentError(f"Report.merge: parts[{k}] is a {type(p).__name__}, expected a Report")
        names = [] if order is None else [str(n) for n in order]
        return cls(_core.meta.merge_reports([p.data for p in parts], names))

    @classmethod
    def load(cls, path: PathLike) -> "Report":
        """Reads a report written by :meth:`save` or by ``metaprobe run``."""
        try:
            with open(os.fspath(path), encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise _core.IoError(f"Report.load: cannot read '{os.fspath(path)}': {exc.strerror}") from exc
        return cls.from_json(text)

    def to_json(self, indent: Optional[int] = 1) -> str:
        """The JSON document (no NaN literals: they are null)."""
        return json.dumps(self.data, indent=indent, allow_nan=False)

    def save(self, path: PathLike) -> None:
        """Writes the JSON document whole or not at all (temporary file beside ``path``, then rename)."""
        write_bytes_atomic(os.fspath(path), self.to_json().encode("utf-8") + b"\n")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Report) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        names = ", ".join(s["info"]["name"] for s in self.stages_raw)
        return f"Report(stages=[{names}], reference={self.reference!r}, items={self.data['n_items']})"

    # --- raw access ----------------------------------------------------------------------------------------
    @property
    def reference(self) -> str:
        return self.data["reference"]

    @property
    def stages_raw(self) -> list[dict]:
        return self.data["stages"]

    @property
    def stage_names(self) -> list[str]:
        return [s["info"]["name"] for s in self.stages_raw]

    @property
    def target_cells(self) -> list[str]:
        return [_cell(c) for c in self.data["target_cells"]]

    def stage(self, name: str) -> dict:
        """The raw dict of one stage; KeyError names the valid stages."""
        for s in self.stages_raw:
            if s["info"]["name"] == name:
                return s
        raise KeyError(f"no stage named {name!r}; stages: {', '.join(self.stage_names)}")

    def _sections(self, name: str) -> Iterator[tuple[dict, dict]]:
        """(stage, its section `name`) for every stage whose section is present and non-empty, in stage order."""
        for s in self.stages_raw:
            section = s.get(name)
            if section:
                yield s, section

    @staticmethod
    def _key(s: dict) -> dict:
        i = s["info"]
        return {"stage": i["name"], "arm": i["arm"], "step": i["step"]}

    # --- tables ----------------------------------------------------------------------------------------------
    @property
    def profile(self) -> "pd.DataFrame":
        """One row per (stage, cell): n, correct, acc and its Wilson interval [lo, hi]; for diagnostic cells
        also the error detection ``precision``, ``recall`` and ``f1`` (NaN elsewhere and in reports written
        before they existed)."""
        import pandas as pd

        rows = []
        for s, b in self._sections("behaviour"):
            for c in b["cells"]:
                a = c["accuracy"]
                rows.append({**self._key(s), "skill": c["cell"]["skill"], "domain": c["cell"]["domain"],
                             "n": a["n"], "correct": a["correct"], "acc": _num(a["acc"]), "lo": _num(a["lo"]),
                             "hi": _num(a["hi"]), **{k: _num(c.get(k)) for k in self._DETECTION_COLS}})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "skill", "domain", "n", "correct", "acc", "lo", "hi"]
                            + self._DETECTION_COLS)

    _DETECTION_COLS = _fields("cell_accuracy", exclude=("cell", "accuracy"))

    _DIV_COLS = _fields("cell_divergence", exclude=("cell", "position_counts", "high_js_counts"))

    @property
    def divergence(self) -> "pd.DataFrame":
        """One row per (stage, cell) plus a row per stage with skill = domain = "all": token-weighted means."""
        import pandas as pd

        rows = []
        for s, d in self._sections("divergence"):
            for c in d["cells"] + [dict(d["total"], cell=None)]:
                skill, domain = (c["cell"]["skill"], c["cell"]["domain"]) if c["cell"] else ("all", "all")
                rows.append({**self._key(s), "mode": d["mode"], "skill": skill, "domain": domain,
                             **{k: _num(c.get(k)) for k in self._DIV_COLS}})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "mode", "skill", "domain"] + self._DIV_COLS)

    @property
    def positional(self) -> "pd.DataFrame":
        """The JS positional profile: per (stage, cell or "all", bin of t/T) the positions and those with JS > τ."""
        import pandas as pd

        rows = []
        for s, d in self._sections("divergence"):
            for c in d["cells"] + [dict(d["total"], cell=None)]:
                cell = _cell(c["cell"]) if c["cell"] else "all"
                counts, high = c["position_counts"], c["high_js_counts"]
                bins = len(counts)
                for b in range(bins):
                    rows.append({**self._key(s), "cell": cell, "bin": b, "lo": b / bins, "hi": (b + 1) / bins,
                                 "positions": counts[b], "high_js": high[b],
                                 "fraction": high[b] / counts[b] if counts[b] else float("nan")})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "cell", "bin", "lo", "hi", "positions", "high_js",
                                           "fraction"])

    _GROUP_COLS = _fields("group_stats", exclude=("key", "layer"))

    @property
    def params(self) -> "pd.DataFrame":
        """Update statistics per stage at three levels: "total", "layer" (key = layer index) and "module" (kind)."""
        import pandas as pd

        rows = []
        for s, p in self._sections("params"):
            groups = [("total", p["total"])] + [("layer", g) for g in p["layers"]] + [("module", g) for g in p["modules"]]
            for level, g in groups:
                rows.append({**self._key(s), "level": level, "key": g["key"] if level != "total" else "all",
                             "layer": g["layer"], **{k: _num(g.get(k)) for k in self._GROUP_COLS}})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "level", "key", "layer"] + self._GROUP_COLS)

    @property
    def tensors(self) -> "pd.DataFrame":
        """Update statistics per tensor and stage."""
        import pandas as pd

        rows = []
        for s, p in self._sections("params"):
            for t in p["tensors"]:
                rows.append({**self._key(s), **{k: (_num(v) if k not in ("name", "kind") else v) for k, v in t.items()}})
        return pd.DataFrame(rows)

    @property
    def drift(self) -> "pd.DataFrame":
        """Per (stage, cell): reference accuracy, accuracy, delta with its paired bootstrap interval (delta_lo,
        delta_hi: items resampled, at the run's z) and the collapse flag."""
        import pandas as pd

        rows = []
        for s, d in self._sections("derived"):
            for c in d["cells"]:
                rows.append({**self._key(s), "skill": c["cell"]["skill"], "domain": c["cell"]["domain"],
                             "reference_acc": _num(c["reference_acc"]), "acc": _num(c["acc"]),
                             "delta": _num(c["delta"]), "delta_lo": _num(c.get("delta_lo")),
                             "delta_hi": _num(c.get("delta_hi")), "collapsed": bool(c["collapsed"])})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "skill", "domain", "reference_acc", "acc", "delta",
                                           "delta_lo", "delta_hi", "collapsed"])

    _DERIVED_COLS = _fields("stage_derived", exclude=("cells", "collapsed"))

    @property
    def derived(self) -> "pd.DataFrame":
        """Per stage: profile drift (L1, L2), collapsed cells, target/off-target accuracy and change,
        transferability index (ti_other, ti_non, in %) and the razor divergence on and off target."""
        import pandas as pd

        rows = []
        for s, d in self._sections("derived"):
            rows.append({**self._key(s), **{k: _num(d.get(k)) for k in self._DERIVED_COLS},
                         "n_collapsed": len(d["collapsed"]), "collapsed": ", ".join(d["collapsed"])})
        return pd.DataFrame(rows, columns=["stage", "arm", "step"] + self._DERIVED_COLS + ["n_collapsed", "collapsed"])

    @property
    def razor(self) -> "pd.DataFrame":
        """Per arm: the RL's Razor correlation between off-target divergence and off-target accuracy change."""
        import pandas as pd

        rows = [{"arm": r["arm"], "metric": r["metric"], "points": len(r["stages"]), "pearson": _num(r["pearson"]),
                 "spearman": _num(r["spearman"]), "stages": ", ".join(r["stages"])} for r in self.data["razor"]]
        return pd.DataFrame(rows, columns=["arm", "metric", "points", "pearson", "spearman", "stages"])

    @property
    def differences(self) -> "pd.DataFrame":
        """Paired stage differences with bootstrap intervals and permutation p-values, as stored by
        :meth:`add_differences` (empty when none were computed)."""
        from .stats import differences_frame

        return differences_frame(self.data.get("differences") or [])

    def add_differences(self, runs: Optional[Iterable["Report"]] = None, pairs: Optional[Iterable[tuple[str, str]]] = None,
                        **options: Any) -> "pd.DataFrame":
        """Computes :func:`metaprobe.stats.arm_differences` over this report (plus ``runs``: the same study under
        other seeds), stores the records in the document's ``differences`` and returns them as a DataFrame.
        ``pairs`` defaults to each arm's last stage against the reference and against the other arms'."""
        from .stats import arm_differences, default_pairs

        reports = [self] + list(runs or [])
        self.data["differences"] = arm_differences(reports, pairs if pairs is not None else default_pairs(self),
                                                   **options)
        return self.differences

    @property
    def representation(self) -> "pd.DataFrame":
        """Representation drift per (stage, layer, cell; skill = domain = "all" over every prompt) with the stage's
        arm and step, as stored by :meth:`add_representation` (empty when none was measured)."""
        import pandas as pd

        from .representation import _flat

        info = {s["info"]["name"]: s["info"] for s in self.stages_raw}
        rows = []
        for r in self.data.get("representation") or []:
            i = info.get(r["stage"], {})
            rows.append({"stage": r["stage"], "arm": i.get("arm"), "step": i.get("step"), **{
                k: v for k, v in _flat(r).items() if k != "stage"}})
        return pd.DataFrame(rows, columns=["stage", "arm", "step", "layer", "skill", "domain", "items", "cka", "cosine",
                                           "pca_shift", "pc2_reference", "pc2_stage"])

    def add_representation(self, probes: Any, reference: Any, stages: dict, tokenizer: Any, **options: Any) -> "pd.DataFrame":
        """Measures :func:`metaprobe.representation.drift` of ``stages`` (name -> source; names of this report's
        stages) from ``reference`` on ``probes``, with this report's prompt options, stores the records in the
        document's ``representation`` (replacing any) and returns :attr:`representation`. ``options``:
        ``batch_size``, ``progress``."""
        from .meta import MetaOptions
        from .representation import drift_records

        unknown = [n for n in stages if n not in self.stage_names]
        if unknown:
            raise _core.InvalidArgumentError(f"add_representation: stage {unknown[0]!r} is not in this report "
                                             f"(stages: {', '.join(self.stage_names)})")
        meta_options = MetaOptions.from_dict(self.data.get("options", {}))
        records = drift_records(probes, reference, stages, tokenizer, meta_options, **options)
        self.data["representation"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                        for k, v in r.items()} for r in records]
        return self.representation

    @property
    def items(self) -> "pd.DataFrame":
        """Per (stage, item): mode, output, extracted answer and correctness of the first sample; its finish reason
        ("eos", "stop", "length"; "" in loglikelihood mode), think-block tokens and whether the block closed;
        ``samples`` drawn, ``correct_samples`` and ``score`` = correct_samples / samples (the item's weight in
        the cell accuracy)."""
        import pandas as pd

        cols = ["stage", "arm", "step", "id", "skill", "domain", "mode", "output", "extracted", "correct",
                "generated_tokens", "finish_reason", "think_tokens", "think_closed", "samples", "correct_samples",
                "score", "phrasing", "noop"]
        rows = []
        for s, b in self._sections("behaviour"):
            for it in b["items"]:
                samples = it.get("samples", 1)
                correct_samples = it.get("correct_samples", int(bool(it["correct"])))
                rows.append({**self._key(s), "id": it["id"], "skill": it["cell"]["skill"],
                             "domain": it["cell"]["domain"], "mode": it["mode"], "output": it["output"],
                             "extracted": it["extracted"], "correct": bool(it["correct"]),
                             "generated_tokens": it["generated_tokens"], "finish_reason": it.get("finish_reason", ""),
                             "think_tokens": it.get("think_tokens", 0), "think_closed": bool(it.get("think_closed", True)),
                             "samples": samples, "correct_samples": correct_samples,
                             "score": correct_samples / samples if samples else float("nan"),
                             "phrasing": it.get("phrasing", 0), "noop": bool(it.get("noop", False))})
        return pd.DataFrame(rows, columns=cols)

    def responses(self, stage: str) -> "Responses":
        """Every sample's raw answer of one stage (generate-mode items) as :class:`metaprobe.responses.Responses`,
        ready for ``add_stage(..., responses=...)``: token ids, text and finish reason as the run recorded them."""
        from .responses import Response, Responses

        s = self.stage(stage)
        return Responses([Response(item_id=r["item_id"], sample=r["sample"], text=r["text"],
                                   token_ids=None if r.get("tokens") is None else tuple(r["tokens"]),
                                   finish_reason=r["finish_reason"] or None, stage=stage)
                          for r in s.get("responses", [])], source=f"report:{stage}")

    def export_responses(self, path: PathLike, stages: Optional[Iterable[str]] = None) -> None:
        """Writes the stages' answers (default: every stage) to one JSONL file in the :mod:`metaprobe.responses`
        schema, each line naming its ``stage``; read one back with ``responses.from_jsonl(path, stage=...)``.
        Written whole or not at all."""
        from .responses import to_jsonl

        names = self.stage_names if stages is None else [stages] if isinstance(stages, str) else list(stages)
        to_jsonl([r for name in names for r in self.responses(name)], path)

    @property
    def summary(self) -> "pd.DataFrame":
        """One row per stage: accuracy overall, on and off target, off-target divergence (token-weighted KL(ref‖stage)
        and JS), Huan's sampled-token KL, total relative update norm, profile drift and collapsed cells."""
        import pandas as pd

        target = set(self.target_cells)
        rows = []
        for s in self.stages_raw:
            row: dict[str, Any] = {**self._key(s), "reference": bool(s["info"]["is_reference"])}
            b, d, p, der = s.get("behaviour"), s.get("divergence"), s.get("params"), s.get("derived")
            row["acc"] = _num(b["overall"]["acc"]) if b else float("nan")
            row["acc_target"] = _num(der["acc_target"]) if der else float("nan")
            row["acc_off_target"] = _num(der["acc_off_target"]) if der else float("nan")
            for metric in ("kl_ref_stage", "js"):
                num = den = 0.0
                if d:
                    for c in d["cells"]:
                        if _cell(c["cell"]) not in target and c["positions"]:
                            num += _num(c[metric]) * c["positions"]
                            den += c["positions"]
                row[f"{metric}_off_target"] = num / den if den else (0.0 if s["info"]["is_reference"] else float("nan"))
            row["sampled_kl"] = _num(d["total"]["sampled_kl"]) if d else (0.0 if s["info"]["is_reference"] else float("nan"))
            row["rel_update_norm"] = _num(p["total"]["rel_update_norm"]) if p else (0.0 if s["info"]["is_reference"] else float("nan"))
            row["drift_l2"] = _num(der["drift_l2"]) if der else float("nan")
            row["collapsed"] = len(der["collapsed"]) if der else 0
            row["seconds"] = _num(s["seconds"])
            rows.append(row)
        return pd.DataFrame(rows)

    # --- HTML ------------------------------------------------------------------------------------------------
    def to_html(self, path: PathLike, plots: bool = True, title: str = "metaprobe report",
                preface: str = "") -> None:
        """Writes ONE self-contained HTML file: the tables and the plots as embedded PNGs (no network, no scripts).
        ``preface``: HTML placed right after the title, before every table (e.g. a study's answer, as the demo's
        report leads with its comparison); the caller escapes it."""
        parts = [f"<h1>{html.escape(title)}</h1>", preface,
                 f"<p>reference <b>{html.escape(self.reference)}</b> · {self.data['n_items']} items · "
                 f"target cells {html.escape(', '.join(self.target_cells))} · metaprobe "
                 f"{html.escape(self.data['metaprobe_version'])} · {html.escape(self.data['created'])} · "
                 f"schema {SCHEMA} v{SCHEMA_VERSION}</p>"]

        def table(title: str, df: "pd.DataFrame") -> None:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            if df.empty:
                parts.append("<p>(empty)</p>")
            else:
                parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0,
                                        classes="tbl", escape=True))

        table("Summary", self.summary)
        if plots:
            from . import plot

            parts.append("<h2>Plots</h2>")
            for name, fig in plot.figures(self):
                buf = _io.BytesIO()
                fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
                plot.close(fig)
                data = base64.b64encode(buf.getvalue()).decode("ascii")
                parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(name)}</figcaption></figure>")
        table("Derived metrics", self.derived)
        table("RL's Razor (per arm)", self.razor)
        if self.data.get("differences"):
            table("Differences between stages (a − b, bootstrap interval, permutation p)", self.differences)
        prof = self.profile
        if not prof.empty:
            piv = prof.assign(cell=prof.skill + "/" + prof.domain).pivot_table(
                index="cell", columns="stage", values="acc", sort=False)
            parts.append("<h2>Behavioural profiles (accuracy per cell)</h2>")
            parts.append(piv.reset_index().to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–",
                                                    border=0, classes="tbl"))
        table("Divergence from the reference", self.divergence)
        if self.data.get("representation"):
            rep = self.representation
            table("Representation drift (every prompt; per cell in report.json)", rep[rep.skill == "all"])
        params = self.params
        table("Parameter updates (totals and modules)", params[params.level != "layer"] if not params.empty else params)
        css = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table.tbl{border-collapse:collapse;"
               "font-size:12px}table.tbl td,table.tbl th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
               "figure{display:inline-block;margin:8px}img{max-width:640px}")
        doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               f"<title>{html.escape(title)}</title><style>{css}</style></head><body>\n"
               + "\n".join(parts) + "\n</body></html>\n")
        write_bytes_atomic(os.fspath(path), doc.encode("utf-8"))
