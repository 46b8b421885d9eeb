"""Supply, difficulty and shortcuts of the generator families (issue 11, requirements 4 and 5).

- capacity: ``families(supply=N)`` reports each family's distinct prompts per difficulty, and a suite that
  asks a family for more than it has raises (or warns, ``on_short_supply="warn"``);
- no prompt repeats within a whole suite;
- every difficulty level of a family is a different distribution of items;
- the most common gold answer of a family at a level is at most 1.5x its chance level (plus the sampling
  error of the estimate), except where the answer space is a structural count (EXCEPTIONS, each justified);
- diagnostic families: 30-50% of the items have no error, and the prompts no longer promise one.
"""
from __future__ import annotations

import collections
import json
import math
import re
import warnings

import pytest

import metaprobe
from metaprobe import probes

N = 600  # items per family and difficulty for the distribution checks


@pytest.fixture(scope="module")
def table():
    return probes.families(supply=N).set_index("name")


# --- capacity and short supply ----------------------------------------------------------------------------

def test_families_report_capacity_per_difficulty(table):
    for d in range(1, 6):
        assert table[f"capacity_{d}"].between(1, N).all()
    # a table family without cues shows its table: math_theorems has 50 entries, so 50 distinct prompts
    assert table.loc["math.theorem_name", "capacity_3"] == 50
    # lattice_paths d1 is the 5 x 5 space of grids
    assert table.loc["math.lattice_paths", "capacity_1"] == 25
    assert table.loc["general.shopping_total", "capacity_3"] == N  # open: as many as drawn


def test_request_beyond_capacity_raises_naming_family_difficulty_requested_and_capacity():
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"family 'math\.stars_and_bars' at difficulty 2 has 20 distinct prompts .* asks for 40 "
                             r"of them; expected at most 20"):
        probes.generate(skills="enumeration", domains="math", n_per_cell=240, difficulties=[1, 2, 3])


def test_short_supply_warn_keeps_repeats_and_warns_once_per_family_and_level():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ps = probes.generate(skills="enumeration", domains="math", n_per_cell=240, difficulties=[1, 2, 3],
                             on_short_supply="warn")
    got = sorted(str(w.message).split(":")[0] for w in caught if issubclass(w.category, probes.ProbeSupplyWarning))
    assert got == ["family 'math.lattice_paths' at difficulty 1", "family 'math.stars_and_bars' at difficulty 1",
                   "family 'math.stars_and_bars' at difficulty 2"]
    assert len(ps) == 240 and len({it.prompt for it in ps}) < 240
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"on_short_supply: got 'ignore', expected 'raise', 'warn' or 'keep'"):
        probes.generate(on_short_supply="ignore")


def test_shortfalls_are_data_on_the_probe_set_and_keep_is_silent():
    args = dict(skills="enumeration", domains="math", n_per_cell=240, difficulties=[1, 2, 3], phrasing="canonical")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warned = probes.generate(on_short_supply="warn", **args)
        kept = probes.generate(on_short_supply="keep", **args)
    assert sum(issubclass(w.category, probes.ProbeSupplyWarning) for w in caught) == 3  # from "warn" only
    assert kept == warned and kept.shortfalls == warned.shortfalls
    got = sorted((s.family, s.difficulty) for s in kept.shortfalls)
    assert got == [("math.lattice_paths", 1), ("math.stars_and_bars", 1), ("math.stars_and_bars", 2)]
    prompts = collections.Counter(it.prompt for it in kept)
    for s in kept.shortfalls:
        assert isinstance(s, probes.Shortfall) and s.requested > s.capacity and s.repeats == s.requested - s.capacity
        fam = [it.prompt for it in kept if it.family == s.family and it.difficulty == s.difficulty]
        assert len(fam) == s.requested and len(set(fam)) == s.capacity  # canonical: one prompt per task
    assert sum(prompts.values()) - len(prompts) == sum(s.repeats for s in kept.shortfalls)
    # a set within capacity, and sets not made by generate, have none
    assert probes.generate(n_per_cell=5).shortfalls == [] and probes.ProbeSet(list(kept)).shortfalls == []


def test_no_prompt_repeats_within_a_whole_suite():
    for s in (probes.generate(), probes.generate(n_per_cell=120, difficulties=[1, 2, 3, 4, 5], seed=3)):
        prompts = [it.prompt for it in s]
        assert len(prompts) == len(set(prompts))


# --- every difficulty level distinct ----------------------------------------------------------------------

def _signature(family: str, d: int):
    items = [probes.generate_item(family, d, 11, k) for k in range(200)]
    mean_len = sum(len(it.prompt) for it in items) / len(items)
    numeric = collections.defaultdict(list)
    for it in items:
        nums = [abs(float(x)) for x in re.findall(r"\d+(?:\.\d+)?", it.prompt)]
        numeric["prompt#numbers"].append(len(nums))
        numeric["prompt#magnitude"].append(sum(math.log1p(x) for x in nums) / max(1, len(nums)))
        for k, v in it.meta.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                numeric[k].append(v)
            elif isinstance(v, (list, str)):
                numeric[k + "#len"].append(len(v))
        answer_nums = [abs(float(x)) for x in re.findall(r"\d+(?:\.\d+)?", it.answer)]
        numeric["answer#magnitude"].append(sum(math.log1p(x) for x in answer_nums) / max(1, len(answer_nums)))
        numeric["answer#len"].append(len(it.answer))
    return mean_len, {k: sum(v) / len(v) for k, v in numeric.items()}, {json.dumps(sorted(it.meta)) for it in items}


@pytest.mark.parametrize("family", list(probes.families()["name"]))
def test_every_difficulty_level_is_distinct(family):
    """Consecutive levels differ in prompt length (by 3%), in the mean of a numeric generator parameter (by
    5%), or in the parameters they record: a level that only re-draws the previous one fails."""
    sigs = [_signature(family, d) for d in range(1, 6)]
    for d in range(1, 5):
        (la, ma, ka), (lb, mb, kb) = sigs[d - 1], sigs[d]
        length = abs(la - lb) > 0.03 * max(la, lb)
        param = any(abs(ma[k] - mb[k]) > 0.05 * max(abs(ma[k]), abs(mb[k]), 1e-9) for k in ma.keys() & mb.keys())
        assert length or param or ka != kb, (family, d, d + 1)


# --- shortcuts: the majority answer against the chance level ----------------------------------------------

# Families whose answer at some levels is a count fixed by the structure of the task, so a uniform
# distribution over the answers is not attainable without distorting the task: the bound is the share named.
EXCEPTIONS: dict[str, tuple[float, str]] = {
    "physics.punnett": (0.60, "a cross of 1-2 genes has 2-9 possible counts, most crosses give the same few"),
    "physics.spectral_lines": (0.40, "C(n,2) lines minus coincidences: few level counts, so few answers"),
    "math.lattice_paths": (0.20, "path counts of small grids cluster on a few binomials"),
    "math.stars_and_bars": (0.20, "solution counts of small (n, k) cluster on a few binomials"),
    "coding.loop_count": (0.25, "iteration counts of small nested ranges cluster (products of small ranges)"),
    "coding.predicate_count": (0.25, "counts over 10-30 values cluster at small counts"),
    "general.count_words": (0.40, "the count is drawn from 1..4; combined properties leave the same range"),
}


def _bound(chance: float, n: int) -> float:
    # 1.5x the chance level plus two standard errors of a share estimated from n items
    return 1.5 * chance + 2 * math.sqrt(chance * (1 - chance) / n)


def test_majority_answer_at_most_one_and_a_half_times_chance(table):
    failures = []
    for name, row in table.iterrows():
        for d in range(1, 6):
            m, c = row[f"majority_{d}"], row[f"chance_{d}"]
            n = N if row["skill"] != "diagnostic" else round(N * (1 - row[f"none_{d}"]))
            if name in EXCEPTIONS:
                ok = m <= EXCEPTIONS[name][0]
            elif math.isnan(c):  # an open answer space: no answer may take a quarter of the items
                ok = m <= 0.25
            else:
                ok = m <= _bound(c, n)
            if not ok:
                failures.append((name, d, round(m, 3), c))
    assert not failures, failures


def test_exceptions_are_real(table):
    """Every listed exception exceeds the general bound somewhere (else it should leave the list)."""
    for name in EXCEPTIONS:
        row = table.loc[name]
        assert any(row[f"majority_{d}"] > _bound(row[f"chance_{d}"], N) if not math.isnan(row[f"chance_{d}"])
                   else row[f"majority_{d}"] > 0.25 for d in range(1, 6)), name


# --- diagnostics ------------------------------------------------------------------------------------------

def test_diagnostic_items_without_an_error_are_30_to_50_percent(table):
    diag = table[table["skill"] == "diagnostic"]
    assert len(diag) == 9 and "math.problem_drift" in diag.index
    for name, row in diag.iterrows():
        shares = [row[f"none_{d}"] for d in range(1, 6)]
        assert all(0.30 <= s <= 0.50 for s in shares), (name, shares)


def test_diagnostic_prompts_no_longer_promise_one_error():
    for name in probes.families().query("skill == 'diagnostic'")["name"]:
        for d in (1, 3, 5):
            for k in range(30):
                it = probes.generate_item(name, d, 2, k)
                assert "exactly one" not in it.prompt.lower(), (name, it.prompt)
                assert "none" in it.prompt, (name, it.prompt)
                assert it.meta["error"] == (it.answer != "none")
                assert probes.check(it, it.reference_solution)


@pytest.mark.parametrize("output, none_item, error_item", [
    ("Answer: none", True, False),
    ("Every step checks out, so there is no error.", True, False),
    ("$\\boxed{\\text{None}}$", True, False),
    ("**Answer:** All steps are correct.", True, False),
    ("Correct.", True, False),
    ("none", True, False),
    ("Answer: No error in the first steps, but step 2 is wrong.", False, True),
    ("Answer: 2", False, True),
    ("Step 2 is wrong.", False, True),
    ("<think>so there is no error", False, False),
])
def test_no_error_answers_are_read_for_diagnostic_items(output, none_item, error_item):
    base = {"id": "x", "skill": "diagnostic", "domain": "math", "prompt": "Which step is wrong, or none?",
            "answer_type": "integer"}
    assert probes.check(probes.Item.from_dict({**base, "answer": "none"}), output) is none_item
    assert probes.check(probes.Item.from_dict({**base, "answer": "2"}), output) is error_item
    # outside diagnostics "none" is no answer of an integer item, and a gold "none" is a broken item
    calc = probes.Item.from_dict({**base, "skill": "calculation", "answer": "none"})
    with pytest.raises(metaprobe.InvalidArgumentError, match="answer 'none' of answer_type integer is not a number"):
        probes.check(calc, "Answer: none")
