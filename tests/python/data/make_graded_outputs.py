"""Writes graded_outputs.jsonl: realistic model outputs for probe items, each with the verdict a careful
human grader gives it (does the output's final answer, as a reader would take it, equal the gold answer?).

The outputs imitate what instruct and reasoning models write: markdown prose, ``\\boxed{}``, ``<think>``
blocks (closed, and cut off before any answer), terse replies, GSM8K ``####`` lines, and wrong answers in
each style, including the right answer mentioned before a wrong final one. The verdict of every line was set
when its style was written and checked by reading the file; the items are stored whole (``item``), so the
corpus does not move when generators change. Rerun only to extend the corpus:

    python tests/python/data/make_graded_outputs.py   # needs an importable metaprobe

``--extend`` only appends: rows for families the file lacks and for diagnostic items without an error (gold
"none"), keeping every existing row and its verdict.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from metaprobe import probes

OUT = Path(__file__).with_name("graded_outputs.jsonl")

WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
         9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}


def wrong_of(it, rng: random.Random) -> str:
    """A plausible wrong answer of the item's type."""
    t = it.answer_type
    if t in ("integer", "number"):
        v = float(it.answer)
        if t == "integer":
            return str(int(v) + rng.choice([-2, -1, 1, 2, 10]))
        return f"{v * 1.5 + 1:.3f}".rstrip("0").rstrip(".")
    if t == "choice":
        k = (it.gold_index + rng.randint(1, len(it.choices) - 1)) % len(it.choices)
        return "ABCDEFGH"[k]
    if t == "list":
        parts = [p.strip() for p in it.answer.split(",")]
        if len(parts) > 1 and len(set(parts)) > 1 and it.ordered:
            return ", ".join(reversed(parts)) if parts != parts[::-1] else ", ".join(parts[1:] + parts[:1])
        try:
            return ", ".join(str(int(p) + 1) for p in parts)
        except ValueError:
            return ", ".join(parts + parts[:1])
    # string: another word of the prompt that is not the gold
    cands = [w.strip(".,?:;\"'()") for w in it.prompt.split()]
    cands = [w for w in cands if w.isalpha() and w.lower() != it.answer.lower() and len(w) > 3]
    return rng.choice(cands) if cands else it.answer + "x"


def option_text(it, letter: str) -> str:
    return it.choices["ABCDEFGH".index(letter)]


def gold_surface(it) -> str:
    return "ABCDEFGH"[it.gold_index] if it.answer_type == "choice" else it.answer


def styles(it, rng: random.Random):
    """(style, output, human verdict) triples for one item."""
    g = gold_surface(it)
    w = wrong_of(it, rng)
    t = it.answer_type
    sol = it.reference_solution.rsplit("Answer:", 1)[0].strip() or "Let me work through it."
    out = []
    # 1. instruct prose with markdown, bold final answer
    if t == "choice":
        out.append(("instruct_markdown", f"Let's look at each option.\n\n{sol}\n\n**Answer: {g}. {option_text(it, g)}**", True))
        out.append(("instruct_markdown_wrong",
                    f"Looking at the options, the best fit is **{w}. {option_text(it, w)}**.\n\nAnswer: {w}", False))
    else:
        out.append(("instruct_markdown", f"Sure! Here's the working.\n\n**Working:**\n{sol}\n\n**Final answer:** {g}", True))
        out.append(("instruct_markdown_wrong", f"Sure! Here's the working.\n\n**Working:**\n{sol.splitlines()[0]}\n\n**Final answer:** {w}", False))
    # 2. boxed
    box = f"\\text{{{g}}}" if t in ("choice", "string") and rng.random() < 0.5 else g
    out.append(("boxed", f"{sol}\n\nTherefore, the final answer is $\\boxed{{{box}}}$.", True))
    out.append(("boxed_wrong", f"We compute step by step.\n\nSo the final answer is $\\boxed{{{w}}}$.", False))
    # 3. reasoning model, block closed: a wrong guess inside the block, the gold after it
    out.append(("think_closed", f"<think>\nFirst guess: the answer is {w}. Hmm, let me re-check.\n{sol}\n</think>\n\nAnswer: {g}", True))
    out.append(("think_closed_wrong", f"<think>\n{sol}\nSo the answer is {g}? Not sure, I'll go with my first idea.\n</think>\n\nThe answer is {w}.", False))
    # 4. reasoning cut off before the block closes: no answer, whatever the last value says
    out.append(("think_cutoff", f"<think>\nOkay, let's see. {sol}\nSo the answer is {g}. But wait, let me double", False))
    # 5. terse
    if t == "choice":
        out.append(("terse", f"{g}", True))
        out.append(("terse_text", f"{option_text(it, g)}", True))
        out.append(("terse_wrong", f"({w})", False))
    else:
        out.append(("terse", f"{g}", True))
        out.append(("terse_wrong", f"{w}.", False))
    # 6. right answer mentioned before a wrong final one, and the reverse
    out.append(("right_then_wrong", f"I think the answer is {g}, but after recounting I get something else.\nAnswer: {w}", False))
    out.append(("wrong_then_right", f"At first glance it looks like {w}, but that misses a step.\n{sol}\n\nAnswer: {g}", True))
    # 7. type-specific realistic surfaces
    if t == "integer":
        v = int(float(it.answer))
        if 0 <= v <= 12:
            out.append(("number_word", f"Counting carefully, there are **{WORDS[v]}** in total.", True))
        out.append(("gsm8k", f"{sol}\n#### {v}", True))
        out.append(("sentence", f"The result is {v}.", True))
    elif t == "number":
        out.append(("gsm8k", f"{sol}\n#### {it.answer}", True))
        out.append(("bold_with_aside", f"The result comes to **{it.answer}** (to the precision asked).", True))
    elif t == "string":
        if it.family == "general.object_moves":
            obj = it.prompt.rsplit("Where is the ", 1)[-1].split()[0]
            out.append(("sentence", f"Tracking each move, the {obj} is now in the {it.answer}.", True))
            out.append(("sentence_wrong", f"Tracking each move, the {obj} is now in the {w}.", False))
            out.append(("negated", f"The {obj} is not in the {it.answer} any more.", False))
        elif it.family == "general.passage_fact":
            out.append(("sentence", f"According to the passage, the answer is a {it.answer}.", True))
            out.append(("sentence_wrong", f"According to the passage, the answer is {w}.", False))
            out.append(("negated", f"It is not {it.answer}.", False))
        elif it.family.endswith("_name"):  # closed-book recall: a sentence, and another form of the answer
            out.append(("sentence", f"From memory: it is {it.answer}.", True))
            out.append(("sentence_wrong", f"From memory: it is {w}.", False))
            if it.aliases:
                out.append(("alias", f"Answer: {it.aliases[0]}", True))
        else:
            out.append(("sentence", f"The slice evaluates to `'{it.answer}'`.", True))
            out.append(("sentence_wrong", f"The slice evaluates to `'{w}'`.", False))
    elif t == "list":
        parts = [p.strip() for p in it.answer.split(",")]
        out.append(("one_per_line", "Answer:\n" + "\n".join(parts), True))
        out.append(("and_list", "The answer is " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]) + ".", True))
    elif t == "choice":
        out.append(("option_text_sentence", f"The correct option is {option_text(it, g)}.", True))
    return out


# Hand-written outputs in the shapes that misled the old grader (issue 11), per family: (output, verdict).
HAND: dict[str, list[tuple[str, str, bool]]] = {
    "physics.kinematics_units": [
        ("aside", "Distance = speed × time = 29 m/s × 13 s = **377 metres** (0.377 km).", True),
        ("aside", "The car covers 29 × 13 = 377 m, i.e. about 0.38 km.", False),  # the last number is the aside
        ("think_closed", "<think>29*13... 29*10=290, 29*3=87, total 377. Or did I mean 29*12=348?</think>\n\nIt travels **377 m**.", True),
        ("think_cutoff", "<think>\nSpeed 29, time 13. 29 × 13 = 377. So the distance is 377", False),
        ("instruct_markdown", "### Solution\n\nUsing $d = vt$:\n\n$$d = 29 \\times 13 = 377\\,\\text{m}$$\n\n**Answer:** 377 m", True),
        ("right_then_wrong", "29 × 13 = 377? Let me redo it: 29 × 13 = 367.\n\nThe car travels 367 metres.", False),
    ],
    "physics.ohms_law": [
        ("instruct_markdown", "I = V/R = 17/33 A = 0.515152 A, which is **515.152 mA**.", True),
        ("boxed", "$I = \\frac{17}{33} \\approx 0.515152$ A, so the current is $\\boxed{515.152 \\text{ mA}}$.", True),
        ("unit_confusion", "I = 17 / 33 = 0.515 A.\n\nAnswer: 0.515", False),
        ("restated", "Answer: 515.152 mA (0.515 A)", True),
    ],
    "general.shopping_total": [
        ("currency", "2 × $12.45 = $24.90 and 1 × $4.65 = $4.65, so the total is **$29.55**.", True),
        ("currency_wrong", "2 × $12.45 = $24.90; adding $4.65 gives $29.45.\n\n**Total: $29.45**", False),
        ("gsm8k", "24.90 + 4.65 = 29.55\n#### 29.55", True),
        ("the_answer_is", "The answer is $29.55.", True),
    ],
    "general.passage_fact": [
        ("sentence", "Ivan works as a cook.", True),
        ("sentence", "According to the passage, Ivan is a cook.", True),
        ("article", "Answer: a cook", True),
        ("sentence_wrong", "Ivan works as a lawyer.", False),
        ("negated", "Ivan is not a lawyer; the passage doesn't say he is a cook either.", False),
        ("think_closed", "<think>Lena is the lawyer. Ivan... works as a cook.</think>\nCook", True),
    ],
    "general.object_moves": [
        ("sentence", "The cup ends up back in the hall.", True),
        ("preposition", "Answer: in the hall", True),
        ("trace_then_answer", "Ann: hall → study. Dev: study → garage. Ben: garage → hall.\n\nThe cup is in the **hall**.", True),
        ("trace_wrong", "Ann: hall → study. Dev: study → garage.\n\nSo the cup is in the garage.", False),
        ("right_then_wrong", "At first it was in the hall, but after the moves the cup is in the study.", False),
    ],
    "coding.complexity": [
        ("option_text", "Inserting at the front shifts every element, so it is O(n).", True),
        ("letter_paren", "The answer is (B) O(n), because all n items shift right.", True),
        ("boxed_text", "All elements move one slot, so $\\boxed{\\text{B}}$.", True),
        ("wrong_option_text", "Python lists are arrays, so inserting at index 0 is O(1) amortised.", False),
        ("restates_options", "A. O(n^2) is too slow, C. O(1) is for append, so the answer is O(n).", True),
    ],
    "physics.si_units": [
        ("option_text", "Solid angle is measured in steradians (sr).", True),
        ("answer_text", "Answer: steradian", True),
        ("letter_inside_option", "Answer: metre per second (m/s)", False),
        ("think_closed", "<think>The answer is A? No, m/s is speed. Solid angle is the steradian.</think>\n\nAnswer: C", True),
    ],
    "general.capitals": [
        ("sentence", "The capital of the Czech Republic is Prague.", True),
        ("letter_text", "**B. Prague**", True),
        ("wrong", "The capital of the Czech Republic is Brussels (D).", False),
        ("think_cutoff", "<think>Czech Republic... capital is Prague, option B. Let me make sure it is not Brno", False),
    ],
    "math.formula_recall": [
        ("spacing", "The variance of a binomial is np(1 − p), option B.", True),
        ("option_spacing", "Answer: np(1-p)", True),
        ("wrong", "Answer: n p", False),
    ],
    "math.eigenvalues_2x2": [
        ("named", "The matrix is upper triangular, so λ₁ = -1 and λ₂ = 2.", True),
        ("named_colon", "Answer: λ = -1, 2", True),
        ("per_line", "The eigenvalues are:\n-1\n2", True),
        ("wrong", "Answer: λ = -1, 6", False),
    ],
    "math.prime_factorisation": [
        ("product", "15 = 3 × 5\n\nAnswer: 3 × 5", True),
        ("powers", "Answer: $3^1 \\cdot 5^1$", True),
        ("wrong_product", "15 = 3 × 5 × 5, so the factors are 3, 5, 5.", False),
    ],
    "general.count_words": [
        ("number_word", "Only **one** word starts with p: \"pencil\".", True),
        ("wrong_word", "Two words start with p: pencil and ... actually just those two.\n\nAnswer: two", False),
        ("bold_aside", "**1** — \"pencil\" (in the second sentence, 2 of 5 words there start with s).", True),
    ],
    "coding.buggy_line": [
        ("bold_line", "**Line 4** — `result *= e` should multiply by `b`; with that fixed, power(0, 2) gives 0 as 2 of the tests expect.", True),
        ("line_word", "The bug is on line 4: it multiplies by e instead of b.", True),
        ("wrong", "Line 3 is wrong: the loop should run e - 1 times.\n\nAnswer: 3", False),
    ],
    "general.receipt_error": [
        ("bold_line", "**Line 3** — 4 × $11.05 is $44.20, not $48.20; the total of $107.75 adds the printed amounts correctly.", True),
        ("wrong", "Line 4: the total should be $103.75.\n\nAnswer: 4", False),
    ],
}


# Diagnostic items without an error (gold "none"), and an error item answered "none" (issue 11, req. 5).
NONE_STYLES: list[tuple[str, str, bool]] = [
    ("none_colon", "I checked every step against the one before it; each one is right.\n\nAnswer: none", True),
    ("no_error_sentence", "Every line checks out, so there is no error.", True),
    ("boxed_none", "All consistent.\n\n$\\boxed{\\text{None}}$", True),
    ("all_correct", "**Answer:** All steps are correct.", True),
    ("no_error_bold", "**No error** — everything follows.", True),
    ("flags_one", "The second one looks off to me.\n\nAnswer: 2", False),
    ("think_cutoff_none", "<think>Checking the first... fine. The second... fine. So there is no error", False),
    ("hedge_but", "Answer: No error in the first lines, but line 3 is wrong.", False),
]
ERROR_SAYS_NONE: list[tuple[str, str, bool]] = [
    ("says_none", "Everything adds up as far as I can tell.\n\nAnswer: none", False),
    ("no_error_sentence_wrong", "I could not find anything wrong: there is no error.", False),
]


def extend() -> None:
    """Appends rows for families the corpus lacks and for diagnostic items without an error; the rows
    already in the file (and their hand-checked verdicts) stay as they are."""
    rng = random.Random(20261202)
    rows = [json.loads(line) for line in OUT.open(encoding="utf-8") if line.strip()]
    have = {r["item"]["family"] for r in rows}
    suite = probes.generate(n_per_cell=24, difficulties=[1, 2, 3], seed=7)
    new = []
    done_none: set[str] = set()
    done_err: set[str] = set()
    for it in suite:
        item = it.to_dict()
        item.pop("meta", None)
        if it.family not in have and it.answer != "none":
            have.add(it.family)
            for k, (style, output, verdict) in enumerate(styles(it, rng)):
                new.append({"case": f"{it.family}#{k}", "style": style, "item": item, "output": output,
                            "gold": gold_surface(it), "human": verdict})
        if it.skill != "diagnostic":
            continue
        if it.answer == "none" and it.family not in done_none:
            done_none.add(it.family)
            for k, (style, output, verdict) in enumerate(NONE_STYLES):
                new.append({"case": f"{it.family}#none{k}", "style": style, "item": item, "output": output,
                            "gold": "none", "human": verdict})
        elif it.answer != "none" and it.family not in done_err:
            done_err.add(it.family)
            for k, (style, output, verdict) in enumerate(ERROR_SAYS_NONE):
                new.append({"case": f"{it.family}#says_none{k}", "style": style, "item": item, "output": output,
                            "gold": it.answer, "human": verdict})
    with OUT.open("a", encoding="utf-8") as f:
        for r in new:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(new), "rows appended")


def main() -> None:
    rng = random.Random(20261201)
    suite = probes.generate(n_per_cell=2, difficulties=[1, 2, 3], seed=7)
    seen: dict[str, int] = {}
    rows = []
    for it in suite:
        if seen.get(it.family, 0) >= 1:
            continue
        seen[it.family] = seen.get(it.family, 0) + 1
        item = it.to_dict()
        item.pop("meta", None)
        for k, (style, output, verdict) in enumerate(styles(it, rng)):
            rows.append({"case": f"{it.family}#{k}", "style": style, "item": item, "output": output,
                         "gold": gold_surface(it), "human": verdict})
        for k, (style, output, verdict) in enumerate(HAND.get(it.family, [])):
            rows.append({"case": f"{it.family}#hand{k}", "style": "hand_" + style, "item": item, "output": output,
                         "gold": gold_surface(it), "human": verdict})
    with OUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(rows), "rows,", len(seen), "families")


if __name__ == "__main__":
    import sys

    extend() if sys.argv[1:] == ["--extend"] else main()
