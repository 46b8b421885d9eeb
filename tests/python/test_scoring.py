"""Tests of probe scoring (metaprobe.scoring; re-exported as metaprobe.probes.score/extract/check)."""
from __future__ import annotations

import math
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

import metaprobe
from metaprobe import _core, scoring


def item(answer: str, answer_type: str = "integer", **kw) -> dict:
    d = {
        "id": kw.pop("id", f"t-{answer_type}-{answer}"),
        "skill": kw.pop("skill", "calculation"),
        "domain": kw.pop("domain", "math"),
        "prompt": "q",
        "answer": answer,
        "answer_type": answer_type,
    }
    d.update(kw)
    return d


def choice(options: list[str], gold: int, **kw) -> dict:
    return item(chr(ord("A") + gold), "choice", choices=options, gold_index=gold, **kw)


# --- extraction -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "output, answer_type, expected",
    [
        (r"so \boxed{\frac{3}{4}} it is", "number", (r"\frac{3}{4}", "boxed")),
        (r"\boxed{1} then \boxed{2}", "number", ("2", "boxed")),
        ("step\n#### 1,234\n#### 9", "integer", ("9", "gsm8k")),  # the last marker wins
        ("step\n#### 1,234", "integer", ("1234", "gsm8k")),  # '$' and separators dropped
        ("We add. The answer is -17. Check: 3", "integer", ("-17", "the_answer_is")),
        ("Answer: 3\nno wait\nAnswer: 4", "integer", ("4", "answer_colon")),
        ("**Final Answer:** 12", "integer", ("12", "answer_colon")),
        ("3 apples, 5 pears, 17 in all", "integer", ("17", "last_number")),
        ("I choose (C).", "choice", ("C", "choice_letter")),
        ("the answer is B", "choice", ("B", "the_answer_is")),
        ("Answer: Mr. Smith", "string", ("Mr. Smith", "answer_colon")),
        ("thinking\nParis\n", "string", ("Paris", "last_line")),
        ("", "number", ("", "none")),
        ("no number at all", "integer", ("", "none")),
        ("H2O and x2", "integer", ("", "none")),
        ("BAD CABBAGE", "choice", ("", "none")),
        ("日本語", "number", ("", "none")),
    ],
)
def test_extract_conventions(output: str, answer_type: str, expected: tuple[str, str]) -> None:
    choices = ["red", "green", "blue", "black"] if answer_type == "choice" else []
    assert scoring.extract(output, answer_type, choices) == expected
    assert expected[1] in scoring.STRATEGIES


def test_extract_priority_and_fallthrough() -> None:
    text = "the answer is 3. Answer: 4\n#### 2\n\\boxed{1} and 5"
    assert scoring.extract(text, "integer") == ("1", "boxed")
    assert scoring.extract(r"\boxed{\text{none}} so the answer is 6", "integer") == ("6", "the_answer_is")
    assert scoring.extract("The answer is below.\nAnswer: 8", "integer") == ("8", "answer_colon")


def test_extract_rejects_unknown_answer_type() -> None:
    with pytest.raises(metaprobe.InvalidArgumentError, match="answer_type: unknown name 'float'"):
        scoring.extract("42", "float")
    with pytest.raises(metaprobe.InvalidArgumentError, match="answer_type: got a int"):
        scoring.extract("42", 3)


# --- checking ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "answer, answer_type, tol, output, ok",
    [
        ("1234", "integer", 0, "The total is $1,234.", True),
        ("1234", "integer", 0, "values 1,23,4", False),
        ("-5", "integer", 0, "x = \u22125", True),
        ("42", "integer", 0, "42.0", True),
        ("42", "integer", 0, "42.5", False),
        ("0.75", "number", 0, "3/4", True),
        ("0.75", "number", 0, r"\dfrac{3}{4}", True),
        ("3/4", "number", 0, "0.75", True),
        ("0.75", "number", 0, "4/3", False),
        ("0.5", "number", 0, "50%", True),
        ("50", "number", 0, "50%", True),
        ("50%", "number", 0, "0.5", True),
        ("0.5", "number", 0, "51%", False),
        ("0.0015", "number", 0, "1.5e-3", True),
        ("1500", "number", 0, r"1.5 \times 10^{3}", True),
        ("9.81", "number", 0.01, "Answer: g = 9.9 m/s^2", True),
        ("9.81", "number", 0.01, "Answer: g = 9.92 m/s^2", False),
        ("New York", "string", 0, r"Answer: $\text{new   york}$.", True),
        ("New York", "string", 0, "Answer: New Yorks", False),
        ("café au lait", "string", 0, "Answer: CAFÉ au lait", True),  # Latin-1 capitals fold too
        ("Ωmega", "string", 0, "Answer: ωmega", False),  # other scripts are compared as written
        ("café au lait", "string", 0, "Answer: café\u00a0au lait.", True),
    ],
)
def test_check_numbers_and_strings(answer: str, answer_type: str, tol: float, output: str, ok: bool) -> None:
    assert scoring.check(item(answer, answer_type, tolerance=tol), output) is ok


def test_check_lists_and_choices() -> None:
    ordered = item("2, 3, 5", "list", ordered=True)
    assert scoring.check(ordered, "Answer: [2, 3, 5]")
    assert scoring.check(ordered, "Answer: 2; 3 and 5")
    assert not scoring.check(ordered, "Answer: 3, 2, 5")
    assert not scoring.check(ordered, "Answer: 2, 3")
    unordered = item("apple, banana, cherry", "list", ordered=False)
    assert scoring.check(unordered, "Answer: cherry, Apple and banana")
    assert not scoring.check(unordered, "Answer: cherry, apple, apple")
    mc = choice(["Newton", "Joule", "Watt"], 1)
    for out in ["Answer: B", "(B)", "The answer is Joule.", "Answer: b", "B) Joule"]:
        assert scoring.check(mc, out), out
    for out in ["Answer: A", "(C)", "The answer is Watt.", "Because", ""]:
        assert not scoring.check(mc, out), out


def test_bad_items_are_errors_naming_the_item() -> None:
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"item 't-integer-forty'.*'forty'.*not a number"):
        scoring.check(item("forty"), "40")
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"'2\.5' of answer_type integer is not an integer"):
        scoring.check(item("2.5"), "2.5")
    with pytest.raises(TypeError, match="item is a int, expected a metaprobe Item or a dict"):
        scoring.check(3, "x")


def _perturb(it) -> list[str]:
    """Wrong answers for an item: off by one, another option, a changed or swapped list element."""
    t = getattr(it.answer_type, "name", str(it.answer_type)).split(".")[-1]
    a = it.answer
    if t == "integer" and a == "none":  # a diagnostic item without an error
        return ["1", "3"]
    if t == "integer":
        return [str(int(a) + 1), str(int(a) - 1)] + (["none"] if it.skill == "diagnostic" else [])
    if t == "number":
        x = float(eval(a.replace("^", "**"))) if "/" in a else float(a)
        return [repr(x + 10 * max(it.tolerance, 1e-9) * max(1.0, abs(x)) + 1e-6 * max(1.0, abs(x)))]
    if t == "choice":
        return [chr(ord("A") + k) for k in range(len(it.choices)) if k != it.gold_index]
    if t == "list":
        parts = [p.strip() for p in a.split(",")]
        last = parts[-1]
        changed = str(int(last) + 1) if last.lstrip("-").isdigit() else last + "x"
        wrong = [parts[:-1] + [changed]]
        if it.ordered and len(parts) > 1 and parts[0] != parts[1]:
            wrong.append([parts[1], parts[0]] + parts[2:])
        return [", ".join(w) for w in wrong]
    return [a + " not", "x" + a]


def test_generated_suite_gold_right_and_perturbed_wrong() -> None:
    """Every generated item: its gold answer and reference solution score right, perturbed answers wrong."""
    from metaprobe import probes

    suite = probes.generate(n_per_cell=10, difficulties=(1, 2, 3), seed=7)
    items = list(suite)
    assert len(items) >= 200
    gold = scoring.score(suite, [f"Answer: {it.answer}" for it in items])
    bad = gold.items[~gold.items["correct"]]
    assert bad.empty, bad.head().to_dict("records")
    ref = scoring.score(suite, {it.id: it.reference_solution for it in items})
    bad = ref.items[~ref.items["correct"]]
    assert bad.empty, bad.head().to_dict("records")
    for it in items:
        for wrong in _perturb(it):
            assert not scoring.check(it, f"Answer: {wrong}"), (it.family, it.answer, wrong)


# --- score ------------------------------------------------------------------------------------------

def _batch() -> tuple[list[dict], list[str]]:
    probes = [
        item("1", id="a", skill="calculation", domain="math"),
        item("2", id="b", skill="calculation", domain="math"),
        item("3", id="c", skill="calculation", domain="physics"),
        item("4", id="d", skill="simulation", domain="math"),
        choice(["x", "y"], 0, id="e", skill="fact_retrieval", domain="general"),
    ]
    outputs = ["Answer: 1", "Answer: 3", r"\boxed{3}", "nothing", "I pick (A)"]
    return probes, outputs


def test_score_frames() -> None:
    probes, outputs = _batch()
    s = scoring.score(probes, outputs)
    items = s.items
    assert list(items.columns) == ["id", "skill", "domain", "extracted", "strategy", "correct"]
    assert items["correct"].dtype == bool
    assert items["correct"].tolist() == [True, False, True, False, True]
    assert items["strategy"].tolist() == ["answer_colon", "answer_colon", "boxed", "none", "choice_letter"]
    assert items["extracted"].tolist() == ["1", "3", "3", "", "A"]
    cells = s.by_cell()
    assert list(cells.columns) == ["n", "correct", "acc", "lo", "hi"]
    assert cells.index.names == ["skill", "domain"]
    assert cells.loc[("calculation", "math"), "n"] == 2
    assert cells.loc[("calculation", "math"), "correct"] == 1
    assert s.by_skill().loc["calculation", "correct"] == 2
    assert s.by_skill().loc["calculation", "n"] == 3
    assert s.by_domain().loc["math", "n"] == 3
    assert "coding" not in s.by_domain().index
    assert (s.overall.n, s.overall.correct) == (5, 3)
    assert s.accuracy == pytest.approx(0.6)
    assert len(s) == 5
    lo, hi = _wilson_reference(1, 2)
    assert cells.loc[("calculation", "math"), "lo"] == pytest.approx(lo, abs=1e-12)
    assert cells.loc[("calculation", "math"), "hi"] == pytest.approx(hi, abs=1e-12)


def test_score_outputs_as_mapping_and_items_as_objects() -> None:
    probes, outputs = _batch()
    objs = [_core.Item.from_dict(p) for p in probes]
    by_id = {p["id"]: o for p, o in zip(probes, outputs)}
    a = scoring.score(objs, by_id)
    b = scoring.score(probes, tuple(outputs))
    assert a.items.equals(b.items)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"no entry for 1 of 5 item ids \(e\.g\. 'e'\)"):
        scoring.score(probes, {k: v for k, v in by_id.items() if k != "e"})
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"1 ids that are not among the probes \(e\.g\. 'zz'\)"):
        scoring.score(probes, {**by_id, "zz": "1"})
    with pytest.raises(metaprobe.InvalidArgumentError, match="outputs has 4 entries for 5 items"):
        scoring.score(probes, outputs[:4])
    with pytest.raises(TypeError, match=r"outputs\[1\] is a NoneType, expected str"):
        scoring.score(probes, [outputs[0], None] + outputs[2:])
    with pytest.raises(TypeError, match="outputs is a str"):
        scoring.score(probes, "Answer: 1")
    with pytest.raises(TypeError, match=r"probes\[0\] is a int"):
        scoring.score([1], ["x"])


def test_score_empty_and_threads() -> None:
    e = scoring.score([], [])
    assert e.items.empty and e.by_cell().empty and e.overall.n == 0
    probes, outputs = _batch()
    objs = [_core.Item.from_dict(p) for p in probes] * 2000
    outs = outputs * 2000
    results: list = [None, None]

    def run(k: int) -> None:
        results[k] = scoring.score(objs, outs)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0].items.equals(results[1].items)
    assert results[0].overall.correct == 3 * 2000


# --- Wilson -----------------------------------------------------------------------------------------

def _wilson_reference(c: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The textbook closed form, float64, written independently of the C++ one."""
    p = c / n
    root = z * math.sqrt(z * z + 4 * n * p * (1 - p))
    return max(0.0, (2 * n * p + z * z - root) / (2 * (n + z * z))), min(1.0, (2 * n * p + z * z + root) / (2 * (n + z * z)))


def test_wilson_against_float64_and_scipy() -> None:
    from scipy import stats

    z = float(stats.norm.ppf(0.975))
    assert z == pytest.approx(1.959963984540054, abs=1e-15)
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 5000)
        c = rng.randint(0, n)
        a = scoring.wilson(c, n)
        lo, hi = _wilson_reference(c, n)
        assert (a.n, a.correct) == (n, c)
        assert a.acc == pytest.approx(c / n, abs=1e-15)
        assert a.lo == pytest.approx(lo, abs=1e-12) and a.hi == pytest.approx(hi, abs=1e-12)
        ci = stats.binomtest(c, n).proportion_ci(0.95, method="wilson")
        assert a.lo == pytest.approx(ci.low, abs=1e-9) and a.hi == pytest.approx(ci.high, abs=1e-9)
    assert (scoring.wilson(0, 0).lo, scoring.wilson(0, 0).hi) == (0.0, 1.0)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"correct = 3 and n = 2 are invalid"):
        scoring.wilson(3, 2)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"z = -1 is invalid"):
        scoring.wilson(1, 2, -1.0)


# --- multiple choice from log-likelihoods ----------------------------------------------------------

def test_score_choice_matches_lm_eval_formula() -> None:
    rng = np.random.default_rng(0)
    words = ["a", "bb", "ccc dd", "éé", "日本語です", "x" * 40, "Paris", "  spaced  "]
    for _ in range(300):
        k = int(rng.integers(2, 6))
        opts = [words[int(i)] for i in rng.choice(len(words), size=k, replace=False)]
        gold = int(rng.integers(0, k))
        lls = (-rng.gamma(2.0, 5.0, size=k)).tolist()
        got = scoring.score_choice(choice(opts, gold), lls)
        # lm-evaluation-harness: completion_len = [float(len(i)) for i in choices]
        completion_len = np.array([float(len(c)) for c in opts])
        assert got.pred == int(np.argmax(lls))
        assert got.pred_norm == int(np.argmax(np.array(lls) / completion_len))
        assert got.acc == (got.pred == gold) and got.acc_norm == (got.pred_norm == gold)
    assert _core.utf8_length("日本語です") == 5


def test_score_choice_errors() -> None:
    mc = choice(["x", "yy"], 1)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"loglikelihoods has 3 entries .* with 2 choices"):
        scoring.score_choice(mc, [-1.0, -2.0, -3.0])
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"loglikelihoods\[0\] .* is nan"):
        scoring.score_choice(mc, [float("nan"), -2.0])


def test_import_does_not_load_pandas() -> None:
    code = "import sys, metaprobe; assert 'pandas' not in sys.modules and 'scipy' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=None)
    assert out.stdout.strip() == "ok", out.stderr
