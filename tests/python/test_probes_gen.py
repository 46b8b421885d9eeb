"""metaprobe.probes: suites, determinism, ProbeSet, JSONL, prompts, and gold/reference/perturbed scoring."""
from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import pytest

import metaprobe
from metaprobe import probes

# Pinned fingerprints of the default suite (generate() with its defaults). A change here means every
# user's suite changed: bump the family version of what changed instead of re-pinning silently.
GOLDEN_FNV = "5fd093006ff076cf"
GOLDEN_SHA256 = "52c94422dbf66d55741bdff28c076ebe70f5a2d220eaa86c2e1a0d729d7000df"


@pytest.fixture(scope="module")
def suite():
    return probes.generate()


def test_default_suite_shape(suite):
    assert len(suite) == 20 * 50
    assert suite.cells() == [(s, d) for s in probes.SKILLS for d in probes.DOMAINS]
    for s in probes.SKILLS:
        for d in probes.DOMAINS:
            cell = suite.filter(skill=s, domain=d)
            assert len(cell) == 50
            fams = probes.families()
            names = set(fams[(fams.skill == s) & (fams.domain == d)]["name"])
            assert len(names) >= 2
            assert {it.family for it in cell} == names  # families of a cell alternate
            assert {it.difficulty for it in cell} == {1, 2, 3}
    assert len(set(suite.ids)) == len(suite)


def test_golden_fingerprint_is_pinned(suite):
    assert suite.fingerprint() == GOLDEN_FNV


def test_golden_jsonl_bytes(tmp_path, suite):
    path = tmp_path / "suite.jsonl"
    suite.to_jsonl(path)
    data = path.read_bytes()
    # The FNV-1a 64 of the file bytes, computed here in Python, equals the C++ fingerprint.
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    assert f"{h:016x}" == GOLDEN_FNV
    assert data.isascii()
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256


def test_determinism_and_seeds():
    a = probes.generate(n_per_cell=5, seed=3)
    b = probes.generate(n_per_cell=5, seed=3)
    c = probes.generate(n_per_cell=5, seed=4)
    assert a == b and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert set(a.ids).isdisjoint(c.ids)
    assert sum(x.prompt != y.prompt for x, y in zip(a, c)) > 0.8 * len(a)


def test_suites_nest_and_subsets_match(suite):
    small = probes.generate(n_per_cell=20)
    for s, d in small.cells():
        assert small.filter(skill=s, domain=d).ids == suite.filter(skill=s, domain=d).ids[:20]
    part = probes.generate(skills=["diagnostic"], domains="coding")
    assert part.ids == suite.filter(skill="diagnostic", domain="coding").ids


def test_generate_item_is_keyed_by_family_difficulty_seed_index():
    x = probes.generate_item("math.lattice_paths", 4, seed=9, index=17)
    y = probes.generate_item("math.lattice_paths", 4, seed=9, index=17)
    assert x == y and x.to_json() == y.to_json()
    assert probes.generate_item("math.lattice_paths", 4, seed=9, index=18).id != x.id
    assert probes.generate_item("math.lattice_paths", 3, seed=9, index=17).id != x.id


def test_items_are_plain_ascii_and_short_at_low_difficulty():
    for fam in probes.families()["name"]:
        for d in (1, 2, 3, 4, 5):
            for i in range(8):
                it = probes.generate_item(fam, d, 1, i)
                assert it.reference_solution.endswith("\nAnswer: " + it.answer)
                assert it.reference_solution.isascii() and it.prompt.isascii()
                if d <= 2:
                    assert len(it.reference_solution) <= 300, (fam, d, it.reference_solution)
                if it.answer_type == "choice":
                    assert len(it.choices) == 4 and it.answer == "ABCD"[it.gold_index]


def perturbations(it) -> list[str]:
    """Answers that must score wrong: off by one, another choice, a wrong or missing list element."""
    if it.answer_type == "integer" and it.answer == "none":  # a diagnostic item without an error
        return ["1", "2", "0"]
    if it.answer_type == "integer":
        wrong = [str(int(it.answer) + 1), str(int(it.answer) - 1)]
        return wrong + (["none", "No error"] if it.skill == "diagnostic" else [])
    if it.answer_type == "number":
        a = Fraction(it.answer)
        return [f"{float(a + max(1, abs(a)) * Fraction(1, 20)):.6f}", f"{float(a - max(1, abs(a)) * Fraction(1, 20)):.6f}"]
    if it.answer_type == "choice":
        return [c for c in "ABCD" if c != it.answer][:2]
    if it.answer_type == "list":
        parts = [p.strip() for p in it.answer.split(",")]
        first = parts[0]
        wrong = str(int(first) + 1) if first.lstrip("-").isdigit() else first + "zz"
        out = [", ".join([wrong] + parts[1:])]
        if len(parts) > 1:
            out.append(", ".join(parts[:-1]))
        return out
    return [it.answer + "q", "zz" + it.answer]


def test_gold_and_reference_score_correct_and_perturbations_wrong():
    for fam in probes.families()["name"]:
        for d in (1, 3, 5):
            for i in range(10):
                it = probes.generate_item(fam, d, 5, i)
                assert probes.check(it, it.answer), (fam, it.answer)
                assert probes.check(it, it.reference_solution), (fam, it.reference_solution)
                assert probes.check(it, "Let me think.\nAnswer: " + it.answer)
                for wrong in perturbations(it):
                    assert not probes.check(it, "Answer: " + wrong), (fam, it.answer, wrong)


def test_score_over_a_probe_set(suite):
    outputs = {it.id: it.reference_solution for it in suite}
    scores = probes.score(suite, outputs)
    assert scores.overall.correct == len(suite)
    outputs[suite[0].id] = "no idea"
    assert suite.score(outputs).overall.correct == len(suite) - 1


def test_probe_set_container_and_filter(suite):
    assert isinstance(suite[0], probes.Item)
    assert isinstance(suite[10:20], probes.ProbeSet) and len(suite[10:20]) == 10
    assert [it.id for it in suite][:3] == suite.ids[:3]
    sub = suite.filter(skill=["calculation", "simulation"], domain="math", difficulty=[1, 2])
    assert len(sub) > 0
    assert all(it.skill in ("calculation", "simulation") and it.domain == "math" and it.difficulty in (1, 2)
               for it in sub)
    assert len(suite.filter(family="math.recurrence")) == 25
    with pytest.raises(metaprobe.InvalidArgumentError, match="skill: unknown name 'reasoning'"):
        suite.filter(skill="reasoning")
    with pytest.raises(metaprobe.InvalidArgumentError, match="difficulty: got 7"):
        suite.filter(difficulty=7)


def test_to_pandas(suite):
    df = suite.to_pandas()
    assert len(df) == len(suite)
    for col in ("id", "skill", "domain", "family", "difficulty", "prompt", "answer", "answer_type", "choices",
                "gold_index", "reference_solution", "meta"):
        assert col in df.columns
    assert df.groupby(["skill", "domain"]).size().eq(50).all()


def test_generate_argument_errors():
    with pytest.raises(metaprobe.InvalidArgumentError, match="skills: unknown name 'chemistry'"):
        probes.generate(skills="chemistry")
    with pytest.raises(metaprobe.InvalidArgumentError, match="domains: unknown name 'biology'"):
        probes.generate(domains=["math", "biology"])
    with pytest.raises(metaprobe.InvalidArgumentError, match="difficulties: got 0"):
        probes.generate(difficulties=(0, 1))
    with pytest.raises(metaprobe.InvalidArgumentError, match="difficulties: got an empty list"):
        probes.generate(difficulties=())
    with pytest.raises(metaprobe.InvalidArgumentError, match="n_per_cell: got -1"):
        probes.generate(n_per_cell=-1)
    with pytest.raises(metaprobe.InvalidArgumentError, match="family: unknown generator family 'math.nope'"):
        probes.generate_item("math.nope")
    assert len(probes.generate(n_per_cell=0)) == 0


def test_jsonl_round_trip_keeps_unknown_fields(tmp_path):
    ps = probes.generate(n_per_cell=2, skills="enumeration")
    rows = ps.to_dicts()
    rows[0]["source"] = "my-lab"
    rows[0]["annotations"] = {"checked_by": ["ann", "bo"], "score": 0.5}
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    back = probes.ProbeSet.from_jsonl(path)
    assert back[0].extra == {"source": "my-lab", "annotations": {"checked_by": ["ann", "bo"], "score": 0.5}}
    out = tmp_path / "out.jsonl"
    back.to_jsonl(out)
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert again[0]["source"] == "my-lab" and again[0]["annotations"]["checked_by"] == ["ann", "bo"]
    assert probes.ProbeSet.from_jsonl(out) == back
    assert [r["id"] for r in again] == ps.ids


def test_hand_written_items_are_first_class(tmp_path):
    rows = [
        {"id": "gsm-1", "skill": "calculation", "domain": "general", "prompt": "2 apples and 3 apples?",
         "answer": "5", "answer_type": "integer"},
        {"id": "mc-1", "skill": "fact_retrieval", "domain": "physics", "prompt": "Unit of force?",
         "answer": "B", "answer_type": "choice", "choices": ["joule", "newton"], "gold_index": 1},
    ]
    ps = probes.ProbeSet(rows)
    assert ps[0].difficulty == 1 and ps[0].family == "" and ps[1].choices == ["joule", "newton"]
    assert probes.check(ps[0], "The answer is 5.") and not probes.check(ps[0], "Answer: 6")
    assert ps.render("few_shot", k=2)[0].count("Question:") == 3  # topped up with generated examples


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer_type": "integer"}',
         r"bad\.jsonl:2: field 'answer': missing required field"),
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "1", '
         '"answer_type": "integer", "difficulty": "hard"}',
         r"bad\.jsonl:2: field 'difficulty': expected an integer, got string"),
        ('{"id": "a", "skill": "cooking", "domain": "math", "prompt": "p", "answer": "1", "answer_type": "integer"}',
         r"bad\.jsonl:2: field 'skill': .*'cooking'"),
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer": 1, "answer_type": "integer"}',
         r"bad\.jsonl:2: field 'answer': expected a string, got integer"),
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "B", '
         '"answer_type": "choice", "choices": ["x", "y"]}',
         r"bad\.jsonl:2: field 'gold_index': missing required field for a choice item"),
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "A", '
         '"answer_type": "choice", "choices": ["x", "y"], "gold_index": 1}',
         r"bad\.jsonl:2: field 'answer': got 'A', expected the gold letter 'B'"),
        ('{"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "1", '
         '"answer_type": "integer", "meta": []}',
         r"bad\.jsonl:2: field 'meta': expected an object, got array"),
        ('{"id": "a", "skill": "calculation"', r"bad\.jsonl:2: invalid JSON"),
        ('[1, 2]', r"bad\.jsonl:2: expected a JSON object per line, got array"),
    ],
)
def test_malformed_jsonl_names_line_and_field(tmp_path, line, message):
    good = probes.generate(n_per_cell=1, skills="calculation", domains="math")[0].to_json()
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(metaprobe.FormatError, match=message):
        probes.ProbeSet.from_jsonl(path)


def test_duplicate_ids_and_missing_files(tmp_path):
    good = probes.generate(n_per_cell=1, skills="calculation", domains="math")[0].to_json()
    with pytest.raises(metaprobe.FormatError, match=r"t:3: field 'id': duplicate id .* first seen on line 1"):
        probes.ProbeSet.from_jsonl_text(good + "\n\n" + good + "\n", "t")
    with pytest.raises(metaprobe.IoError, match="cannot open"):
        probes.ProbeSet.from_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(metaprobe.IoError):
        probes.generate(n_per_cell=1).to_jsonl(tmp_path / "no_such_dir" / "x.jsonl")
    assert list((tmp_path).iterdir()) == []  # nothing half-written left behind


def test_item_properties_and_dict_round_trip():
    it = probes.generate_item("coding.list_ops", 3, 0, 0)
    d = it.to_dict()
    assert d["answer_type"] == "list" and d["ordered"] is True and "choices" not in d
    assert probes.Item.from_dict(d) == it
    it2 = probes.Item.from_dict(d)
    it2.skill = "diagnostic"
    it2.meta = {"k": [1, 2]}
    assert it2.skill == "diagnostic" and it2.meta == {"k": [1, 2]} and it2.cell == ("diagnostic", "coding")
    with pytest.raises(metaprobe.InvalidArgumentError, match="skill: unknown name 'x'"):
        it2.skill = "x"
    with pytest.raises(metaprobe.InvalidArgumentError, match="difficulty: got 9"):
        it2.difficulty = 9
    import pickle

    assert pickle.loads(pickle.dumps(it)) == it


def test_render_templates(suite):
    cell = suite.filter(skill="simulation", domain="coding")
    plain = cell.render("plain")
    chat = cell.render("chat")
    few = cell.render("few_shot", k=3, seed=1)
    for it, p, c, f in zip(cell, plain, chat, few):
        assert p == f"Question: {it.prompt}\nAnswer:"
        assert c.startswith(it.prompt) and "Answer: <answer>" in c
        assert f.count("Question: ") == 4 and f.endswith(f"Question: {it.prompt}\nSolution:")
        assert f.count(it.prompt) == 1  # never the item itself among its examples
        shots = f.split("Question: ")[1:-1]
        for s in shots:
            prompt = s.split("\nSolution: ")[0]
            assert prompt in {x.prompt for x in cell}  # drawn from the same cell
    assert cell.render("few_shot", k=3, seed=1) == few
    assert cell.render("few_shot", k=3, seed=2) != few
    choice = suite.filter(skill="fact_retrieval", domain="general", family="general.capitals")
    assert "letter of the correct option" in choice.render("chat")[0]
    with pytest.raises(metaprobe.InvalidArgumentError, match="template: unknown prompt template 'xml'"):
        cell.render("xml")
    one = probes.render(cell[0], "few_shot", k=2)
    assert one.count("Question: ") == 3 and one.count(cell[0].prompt) == 1


def test_import_does_not_load_heavy_modules():
    import subprocess
    import sys

    # tqdm is left out: Debian's torch imports it itself
    code = ("import sys, metaprobe.probes; "
            "print(','.join(m for m in ('pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_prompt_repeats_within_a_cell(suite):
    # issue 11: low difficulties repeated prompts (lattice_paths d1 had 4 distinct items); redraws and wider
    # parameter spaces leave none in the default suite nor at 100 items per cell
    for s in (suite, probes.generate(n_per_cell=100)):
        keys = [(it.skill, it.domain, it.prompt) for it in s]
        assert len(keys) == len(set(keys))
    assert all(it.id for it in suite) and len(set(suite.ids)) == len(suite)


def test_families_report_answer_type_chance_and_supply():
    f = probes.families()
    assert {"answer_type", "chance"} <= set(f.columns) and len(f) == 47
    choice = f[f["answer_type"] == "choice"]
    assert len(choice) == 7 and (choice["chance"] == 0.25).all()  # the seven table families
    assert f[f["answer_type"] != "choice"]["chance"].isna().all()
    s = probes.families(supply=20)
    for d in range(1, 6):
        assert s[f"capacity_{d}"].between(1, 20).all()
        assert s[f"majority_{d}"].between(0.05, 1.0).all()
    # lattice_paths d1 is a 5 x 5 space of grids: at most 25 distinct prompts, whatever the supply asked
    assert probes.families(supply=60).set_index("name").loc["math.lattice_paths", "capacity_1"] <= 25
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"supply: got True \(bool\), expected an integer"):
        probes.families(supply=True)
