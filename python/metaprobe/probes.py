"""Skill probes: deterministic generators for the 5 x 4 skill grid, the item schema, JSONL and prompts.

A thin layer over the C++ generators (``metaprobe._core``). :func:`generate` builds a :class:`ProbeSet`
of :class:`Item` objects (``n_per_cell`` items for every chosen (skill, domain) cell); a ProbeSet filters,
renders prompts (``"plain"``, ``"chat"``, ``"few_shot"``), converts to pandas and reads/writes JSONL.
Scoring (:func:`score`, :func:`extract`, :func:`check`) is re-exported from :mod:`metaprobe.scoring`.
Families, difficulty and the schema are documented in ``docs/probes.md``.
"""
from __future__ import annotations

import operator

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Union, overload

from . import _core
from ._core import Item, InvalidArgumentError
from .scoring import Scores, check, extract, score

if TYPE_CHECKING:  # pandas is imported by the functions that build tables, never at package load
    import pandas as pd

__all__ = [
    "SKILLS",
    "DOMAINS",
    "TEMPLATES",
    "Item",
    "ProbeSet",
    "generate",
    "generate_item",
    "families",
    "render",
    "score",
    "extract",
    "check",
    "Scores",
]

#: The five core skills, in grid order.
SKILLS: tuple[str, ...] = ("calculation", "fact_retrieval", "simulation", "enumeration", "diagnostic")
#: The four domains, in grid order.
DOMAINS: tuple[str, ...] = ("math", "physics", "coding", "general")
#: The prompt templates of :meth:`ProbeSet.render`.
TEMPLATES: tuple[str, ...] = tuple(_core._probes_template_names())

ItemLike = Union[Item, Mapping[str, Any]]
Names = Union[str, Iterable[str]]


def _names(value: Names | None, valid: tuple[str, ...], what: str) -> list[str] | None:
    """Validated list of names; None or "all" means every name (returned as None)."""
    if value is None or (isinstance(value, str) and value == "all"):
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        raise InvalidArgumentError(
            f"{what}: got an empty list, expected 'all' (every {what[:-1]}) or one or more names from {', '.join(valid)}")
    for n in names:
        if n not in valid:
            raise InvalidArgumentError(f"{what}: unknown name {n!r}, expected 'all' or names from {', '.join(valid)}")
    return names


def _ints(value: int | Iterable[int] | None, what: str) -> list[int] | None:
    if value is None:
        return None
    vals = [value] if isinstance(value, int) else list(value)
    for v in vals:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5:
            raise InvalidArgumentError(f"{what}: got {v!r}, expected integers in 1..5")
    return vals


#: The most items per cell :func:`generate` makes in one call (a suite of 20 cells then holds 20 million).
MAX_PER_CELL = 1_000_000


def _count(value: Any, what: str, maximum: int) -> int:
    """A count in 0..maximum: Python or numpy integers; bool and floats are errors naming the value."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidArgumentError(f"{what}: got {value!r} ({type(value).__name__}), expected an integer in 0..{maximum:,}")
    v = operator.index(value)
    if not 0 <= v <= maximum:
        raise InvalidArgumentError(f"{what}: got {v}, expected an integer in 0..{maximum:,}")
    return v


def _as_item(obj: Any, k: int) -> Item:
    if isinstance(obj, Item):
        return obj
    if isinstance(obj, Mapping):
        return Item.from_dict(dict(obj))
    raise TypeError(f"items[{k}] is a {type(obj).__name__}, expected a metaprobe Item or a dict in the item schema")


class ProbeSet:
    """An ordered collection of probe items.

    Supports ``len``, iteration, indexing (an int gives an :class:`Item`, a slice a ProbeSet), filtering,
    pandas conversion, JSONL round trips and prompt rendering. Items are ``metaprobe._core.Item`` objects;
    dicts in the JSONL schema are converted on construction.
    """

    def __init__(self, items: Iterable[ItemLike] = ()) -> None:
        self._items: list[Item] = [_as_item(it, k) for k, it in enumerate(items)]

    # --- container protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> "ProbeSet": ...

    def __getitem__(self, index: int | slice) -> Item | "ProbeSet":
        if isinstance(index, slice):
            return ProbeSet(self._items[index])
        return self._items[index]

    def __repr__(self) -> str:
        cells = len({it.cell for it in self._items})
        return f"ProbeSet({len(self._items)} items in {cells} cells)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeSet):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self._items, other._items))

    @property
    def items(self) -> list[Item]:
        """The items as a list (the same objects, not copies)."""
        return self._items

    @property
    def ids(self) -> list[str]:
        """The item ids, in order."""
        return [it.id for it in self._items]

    def cells(self) -> list[tuple[str, str]]:
        """The (skill, domain) cells present, in grid order."""
        present = {it.cell for it in self._items}
        return [(s, d) for s in SKILLS for d in DOMAINS if (s, d) in present]

    # --- selection ----------------------------------------------------------------------------------
    def filter(
        self,
        skill: Names | None = None,
        domain: Names | None = None,
        difficulty: int | Iterable[int] | None = None,
        family: Names | None = None,
    ) -> "ProbeSet":
        """Items matching every given criterion (a name, a list of names, or None for any).

        Args:
            skill: skill name(s) from :data:`SKILLS`.
            domain: domain name(s) from :data:`DOMAINS`.
            difficulty: difficulty or difficulties in 1..5.
            family: generator family name(s), e.g. ``"math.prime_factorisation"``.
        """
        skills = _names(skill, SKILLS, "skill")
        domains = _names(domain, DOMAINS, "domain")
        diffs = _ints(difficulty, "difficulty")
        fams = None if family is None else ([family] if isinstance(family, str) else list(family))
        out = [
            it
            for it in self._items
            if (skills is None or it.skill in skills)
            and (domains is None or it.domain in domains)
            and (diffs is None or it.difficulty in diffs)
            and (fams is None or it.family in fams)
        ]
        return ProbeSet(out)

    # --- conversion ---------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict[str, Any]]:
        """The items as dicts in the JSONL schema."""
        return [it.to_dict() for it in self._items]

    def to_pandas(self) -> "pd.DataFrame":
        """One row per item; columns are the schema fields (``choices`` a list, ``meta`` a dict) plus
        ``extra`` for unknown fields."""
        import pandas as pd

        cols = ["id", "skill", "domain", "family", "difficulty", "prompt", "answer", "answer_type", "tolerance",
                "ordered", "choices", "gold_index", "reference_solution", "aliases", "equivalents", "meta", "extra"]
        rows = [[getattr(it, c) for c in cols] for it in self._items]
        return pd.DataFrame(rows, columns=cols)

    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Writes the items as JSONL, atomically (a temporary file beside ``path``, then a rename)."""
        _core._probes_write_jsonl(self._items, os.fspath(path))

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> "ProbeSet":
        """Reads a JSONL file of items; a bad line raises :class:`metaprobe.FormatError` naming the line
        and the field, unknown fields are kept in ``Item.extra``."""
        return cls(_core._probes_read_jsonl(os.fspath(path)))

    @classmethod
    def from_jsonl_text(cls, text: str, source: str = "<jsonl>") -> "ProbeSet":
        """Parses JSONL text (``source`` names it in error messages)."""
        return cls(_core._probes_parse_jsonl(text, source))

    def fingerprint(self) -> str:
        """FNV-1a 64 (hex) of the set's JSONL text: equal fingerprints mean byte-identical files."""
        return _core._probes_suite_hash(self._items)

    # --- prompts and scoring ------------------------------------------------------------------------
    def render(self, template: str = "chat", k: int = 3, seed: int = 0) -> list[str]:
        """Prompt strings, one per item.

        Args:
            template: ``"plain"`` (``Question: ...\\nAnswer:``, for base models), ``"chat"`` (the question
                plus an instruction to end with ``Answer: <answer>``) or ``"few_shot"`` (``k`` worked
                examples from the same cell of this set, never the item itself, topped up with freshly
                generated items when the cell has fewer).
            k: number of few-shot examples.
            seed: which few-shot examples are drawn.
        """
        return _core._probes_render_all(self._items, template, k, seed)

    def score(self, outputs: Mapping[str, str] | Iterable[str]) -> Scores:
        """Scores model outputs (a mapping id -> text or a sequence aligned with the items)."""
        return score(self, outputs)


def generate(
    skills: Names = "all",
    domains: Names = "all",
    n_per_cell: int = 50,
    difficulties: int | Iterable[int] = (1, 2, 3),
    seed: int = 0,
) -> ProbeSet:
    """Generates a probe suite: ``n_per_cell`` items for every chosen (skill, domain) cell.

    Cells come in grid order. Item i of a cell uses family i mod F of the cell and, within the family,
    difficulty ``difficulties[(i // F) % len(difficulties)]``. The same arguments give byte-identical items
    on every platform.

    Args:
        skills: ``"all"``, a skill name or a list of names from :data:`SKILLS`.
        domains: ``"all"``, a domain name or a list of names from :data:`DOMAINS`.
        n_per_cell: items per cell (>= 0).
        difficulties: difficulty levels in 1..5, cycled within each family.
        seed: the suite seed (a non-negative integer below 2**64).
    """
    skill_list = _names(skills, SKILLS, "skills") or []
    domain_list = _names(domains, DOMAINS, "domains") or []
    diffs = _ints(difficulties, "difficulties")
    if not diffs:
        raise InvalidArgumentError("difficulties: got an empty list, expected one or more integers in 1..5")
    n_per_cell = _count(n_per_cell, "n_per_cell", MAX_PER_CELL)
    if not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise InvalidArgumentError(f"seed: got {seed!r}, expected an integer in 0..2**64-1")
    return ProbeSet(_core._probes_generate(skill_list, domain_list, n_per_cell, diffs, seed))


def generate_item(family: str, difficulty: int = 1, seed: int = 0, index: int = 0) -> Item:
    """One item of a generator family (see :func:`families`); deterministic in all four arguments."""
    _ints(difficulty, "difficulty")
    if not isinstance(index, int) or index < 0:
        raise InvalidArgumentError(f"index: got {index!r}, expected an integer >= 0")
    return _core._probes_generate_item(family, difficulty, seed, index)


def families(supply: int = 0, seed: int = 0) -> "pd.DataFrame":
    """The generator families: columns ``name``, ``skill``, ``domain``, ``version``, ``description``,
    ``answer_type`` and ``chance`` (the accuracy of a uniform guess: 1/options for choice families, NaN where
    the answer space is open).

    With ``supply`` > 0, items at indices ``0..supply-1`` of every difficulty 1..5 are generated under ``seed``
    and the frame gains, per difficulty d, ``distinct_d`` (distinct prompts among them: a lower bound of the
    family's capacity at d; ``supply`` means "at least that many") and ``majority_d`` (the share of the most
    common gold answer: the accuracy of always guessing it, to hold against ``chance``).
    """
    import collections

    import pandas as pd

    frame = pd.DataFrame(_core._probes_families(), columns=["name", "skill", "domain", "version", "description"])
    supply = _count(supply, "supply", 100_000)
    types, chance = [], []
    for name in frame["name"]:
        it = _core._probes_generate_item(name, 1, 0, 0)
        types.append(it.answer_type)
        chance.append(1.0 / len(it.choices) if it.answer_type == "choice" else float("nan"))
    frame["answer_type"] = types
    frame["chance"] = chance
    for d in range(1, 6) if supply else ():
        distinct, majority = [], []
        for name in frame["name"]:
            items = [_core._probes_generate_item(name, d, seed, k) for k in range(supply)]
            distinct.append(len({it.prompt for it in items}))
            golds = collections.Counter(it.answer for it in items)
            majority.append(golds.most_common(1)[0][1] / supply)
        frame[f"distinct_{d}"] = distinct
        frame[f"majority_{d}"] = majority
    return frame


def render(item: ItemLike, template: str = "chat", k: int = 3, seed: int = 0,
           pool: Iterable[ItemLike] = ()) -> str:
    """The prompt of one item; ``few_shot`` draws examples of its cell from ``pool`` (then generated ones)."""
    it = _as_item(item, 0)
    return _core._probes_render(it, template, k, seed, [_as_item(p, j) for j, p in enumerate(pool)])
