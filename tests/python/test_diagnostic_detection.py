"""Diagnostic cells report error detection (precision, recall, F1) beside accuracy in the meta run's
behavioural profile (issue 11, requirement 5), and reports written before these fields existed still load."""
from __future__ import annotations

import json
import math

import pytest

import metaprobe
from metaprobe import MetaOptions, MetaProbe, probes


def _run(answer_of):
    ps = probes.generate(n_per_cell=20, difficulties=[1, 2], seed=4, skills=["diagnostic", "calculation"],
                         domains=["math", "general"])
    rows = [{"item_id": it.id, "text": answer_of(it)} for it in ps]
    m = MetaProbe(ps, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False, divergence=False),
                  tokenizer="char")
    m.add_stage("base", responses=rows)
    return ps, m.run(progress=False)


def _expected(ps, answer_of):
    """Counts by hand: flagged = the model names a location; tp = flagged and right."""
    out = {}
    for dom in ("math", "general"):
        its = [it for it in ps if it.skill == "diagnostic" and it.domain == dom]
        flagged = [it for it in its if answer_of(it) != "Answer: none"]
        errors = [it for it in its if it.answer != "none"]
        tp = [it for it in flagged if probes.check(it, answer_of(it)) and it.answer != "none"]
        p = len(tp) / len(flagged) if flagged else math.nan
        r = len(tp) / len(errors)
        out[dom] = (p, r, 2 * len(tp) / (len(flagged) + len(errors)))
    return out


def test_profile_reports_precision_recall_f1_of_diagnostic_cells():
    # a model that always flags step 1: high recall only where the error is at 1, precision diluted by clean items
    always_one = lambda it: "Answer: 1"  # noqa: E731
    ps, rep = _run(always_one)
    prof = rep.profile.set_index(["skill", "domain"])
    want = _expected(ps, always_one)
    for dom in ("math", "general"):
        row = prof.loc[("diagnostic", dom)]
        assert (row.precision, row.recall, row.f1) == pytest.approx(want[dom])
        assert row.precision < 0.5
    assert prof.loc[("calculation", "math")][["precision", "recall", "f1"]].isna().all()
    # Report.items records each item's surface form
    by_id = {it.id: it for it in ps}
    assert [(by_id[i].phrasing, by_id[i].noop) for i in rep.items.id] == list(zip(rep.items.phrasing, rep.items.noop))
    assert set(rep.items.phrasing) == {0, 1, 2}
    # a model that is right everywhere: P = R = F1 = 1 and accuracy 1
    ps, rep = _run(lambda it: "Answer: " + it.answer)
    prof = rep.profile.set_index(["skill", "domain"])
    for dom in ("math", "general"):
        row = prof.loc[("diagnostic", dom)]
        assert (row.acc, row.precision, row.recall, row.f1) == (1.0, 1.0, 1.0, 1.0)
    # a model that never flags: accuracy = the share of clean items, recall 0, precision undefined
    ps, rep = _run(lambda it: "Answer: none")
    row = rep.profile.set_index(["skill", "domain"]).loc[("diagnostic", "math")]
    clean = sum(it.answer == "none" for it in ps if it.cell == ("diagnostic", "math"))
    assert row.acc == pytest.approx(clean / 20) and row.recall == 0 and math.isnan(row.precision) and row.f1 == 0


def test_reports_without_detection_fields_still_load():
    _, rep = _run(lambda it: "Answer: 1")
    d = json.loads(rep.to_json())
    for c in d["stages"][0]["behaviour"]["cells"]:
        for k in ("precision", "recall", "f1"):
            c.pop(k)
    old = metaprobe.Report.from_json(json.dumps(d))
    assert old.profile[["precision", "recall", "f1"]].isna().all().all()
    assert list(old.profile.acc) == list(rep.profile.acc)
