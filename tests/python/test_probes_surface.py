"""Surface variety (issue 11, requirement 6): three phrasings per family drawn per item, an option that pins
the canonical one, and NoOp distractor clauses; both recorded per item and neither changing the task."""
from __future__ import annotations

import collections
import json

import pytest

import metaprobe
from metaprobe import probes

FAMILIES = list(probes.families()["name"])


@pytest.mark.parametrize("family", FAMILIES)
def test_three_phrasings_per_family_with_the_task_unchanged(family):
    seen = collections.Counter()
    for d in range(1, 6):
        for k in range(24):
            it = probes.generate_item(family, d, 9, k)
            canon = probes.generate_item(family, d, 9, k, phrasing="canonical")
            seen[it.phrasing] += 1
            assert canon.phrasing == 0 and not canon.noop
            # same task: id, answer, solution and parameters; the prompt differs exactly when rephrased
            assert (it.id, it.answer, it.reference_solution, it.meta) == (canon.id, canon.answer,
                                                                          canon.reference_solution, canon.meta)
            assert (it.prompt != canon.prompt) == (it.phrasing != 0), (it.phrasing, it.prompt)
            assert probes.check(it, it.reference_solution)
    assert set(seen) == {0, 1, 2}, seen  # every phrasing occurs, and none falls back to the canonical one
    assert seen[0] <= 60, seen


def test_noop_clauses_are_optional_recorded_and_harmless():
    plain = probes.generate(n_per_cell=6, seed=2)
    assert not any(it.noop for it in plain)  # default: none
    noop = probes.generate(n_per_cell=6, seed=2, noop_share=1.0)
    for a, b in zip(plain, noop):
        assert b.noop and b.prompt.endswith(a.prompt) and len(b.prompt) > len(a.prompt) + 20
        assert (a.id, a.answer, a.phrasing) == (b.id, b.answer, b.phrasing)
    half = probes.generate(n_per_cell=20, seed=2, noop_share=0.5)
    share = sum(it.noop for it in half) / len(half)
    assert 0.4 < share < 0.6
    for bad in (-0.1, 1.5, True, "x"):
        with pytest.raises(metaprobe.InvalidArgumentError, match="noop_share: got"):
            probes.generate(n_per_cell=1, noop_share=bad)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"phrasing: got 'fancy', expected 'varied' or 'canonical'"):
        probes.generate(n_per_cell=1, phrasing="fancy")


def test_canonical_option_pins_the_surface_form():
    ps = probes.generate(n_per_cell=10, phrasing="canonical")
    assert {it.phrasing for it in ps} == {0}
    varied = probes.generate(n_per_cell=10)
    assert {it.phrasing for it in varied} == {0, 1, 2}
    assert [it.id for it in ps] == [it.id for it in varied]  # the same tasks


def test_phrasing_and_noop_round_trip_through_jsonl(tmp_path):
    ps = probes.generate(n_per_cell=3, noop_share=0.5, seed=1)
    path = tmp_path / "s.jsonl"
    ps.to_jsonl(path)
    back = probes.ProbeSet.from_jsonl(path)
    assert [(it.phrasing, it.noop) for it in back] == [(it.phrasing, it.noop) for it in ps]
    line = json.loads(ps[0].to_json())
    for bad, msg in ((3, r"phrasing.*got 3, expected an integer in 0\.\.2"), ("1", "phrasing.*expected an integer")):
        with pytest.raises(metaprobe.FormatError, match=msg):
            probes.Item.from_dict({**line, "phrasing": bad})
    with pytest.raises(metaprobe.FormatError, match="noop.*expected a boolean"):
        probes.Item.from_dict({**line, "noop": 1})
