"""Skill probes: deterministic generators for the 5 x 4 skill grid, the item schema, JSONL and prompts.

A thin layer over the C++ generators (``metaprobe._core``). :func:`generate` builds a :class:`ProbeSet`
of :class:`Item` objects (``n_per_cell`` items for every chosen (skill, domain) cell); a ProbeSet filters,
renders prompts (``"plain"``, ``"chat"``, ``"few_shot"``), converts to pandas and reads/writes JSONL.
Scoring (:func:`score`, :func:`extract`, :func:`check`) is re-exported from :mod:`metaprobe.scoring`.
Families, difficulty and the schema are documented in ``docs/probes.md``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union, overload

from . import _checks, _core
from ._core import Item, InvalidArgumentError
from .scoring import Scores, check, extract, score

if TYPE_CHECKING:  # pandas is imported by the functions that build tables, never at package load
    import pandas as pd

__all__ = [
    "SKILLS",
    "DOMAINS",
    "TEMPLATES",
    "ITEM_FIELDS",
    "Item",
    "ProbeSet",
    "generate",
    "generate_item",
    "families",
    "ProbeSupplyWarning",
    "Shortfall",
    "SMALL_ANSWER_SPACE",
    "render",
    "score",
    "extract",
    "check",
    "Scores",
]

#: The five core skills, in grid order (from the C++ name table of ``Skill``).
SKILLS: tuple[str, ...] = tuple(_core.SKILLS)
#: The four domains, in grid order (from the C++ name table of ``Domain``).
DOMAINS: tuple[str, ...] = tuple(_core.DOMAINS)
#: An item's fields in schema order (the columns of :meth:`ProbeSet.to_pandas`), from the C++ field list of ``Item``.
ITEM_FIELDS: tuple[str, ...] = tuple(_core.ITEM_FIELDS)
#: The prompt templates of :meth:`ProbeSet.render`.
TEMPLATES: tuple[str, ...] = tuple(_core._probes_template_names())

ItemLike = Union[Item, Mapping[str, Any]]
Names = Union[str, Iterable[str]]


def _names(value: Names | None, valid: tuple[str, ...], what: str) -> list[str] | None:
    """Validated list of names; None or "all" means every name (returned as None)."""
    if value is None or (isinstance(value, str) and value == "all"):
        return None
    names = _checks.strings(value, what, f"'all', a name or a list of names from {', '.join(valid)}")
    if not names:
        one = what[:-1] if what.endswith("s") else what  # "skills" -> "skill"; filter's "skill" stays
        raise InvalidArgumentError(
            f"{what}: got an empty list, expected 'all' (every {one}) or one or more names from {', '.join(valid)}")
    for n in names:
        if n not in valid:
            raise InvalidArgumentError(f"{what}: unknown name {n!r}, expected 'all' or names from {', '.join(valid)}")
    return names


def _ints(value: int | Iterable[int] | None, what: str) -> list[int] | None:
    """Difficulty levels: one integer or an iterable of integers in 1..5 (Python or numpy, not bool)."""
    if value is None:
        return None
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, bytearray)):
        expected = "an integer or a list of integers in 1..5"
        return [_checks.integer(v, what, 1, 5) for v in _checks.elements(value, what, expected)]
    return [_checks.integer(value, what, 1, 5, what="an integer or a list of integers")]


#: The most items per cell :func:`generate` makes in one call (a suite of 20 cells then holds 20 million).
MAX_PER_CELL = 1_000_000


def _seed(value: Any, what: str = "seed") -> int:
    return _checks.integer(value, what, 0, _checks.UINT64_MAX)


def _as_item(obj: Any, k: int, what: str = "items") -> Item:
    if isinstance(obj, Item):
        return obj
    if isinstance(obj, Mapping):
        return Item.from_dict(dict(obj))
    raise TypeError(f"{what}[{k}] is a {type(obj).__name__}, expected a metaprobe Item or a dict in the item schema")


def _as_items(objs: Any, what: str) -> list[Item]:
    """An iterable of Items or item dicts as a list of Items; another type is a TypeError naming ``what``."""
    items = _checks.elements(objs, what, "an iterable of metaprobe Items or item dicts", error=TypeError)
    return [_as_item(it, k, what) for k, it in enumerate(items)]


def _prompt_options(template: Any, k: Any, seed: Any) -> tuple[str, int, int]:
    """``template``, ``k`` and ``seed`` of a render call, type-checked (the core checks the template name and,
    for few_shot, k <= 64)."""
    return (_checks.string(template, "template", f"a template name from {', '.join(TEMPLATES)}"),
            _checks.integer(k, "k", 0, _checks.INT32_MAX), _seed(seed))


class Shortfall(NamedTuple):
    """A family and difficulty that a :func:`generate` call asked for more distinct prompts than it has
    (``on_short_supply="warn"``): ``requested`` items, ``capacity`` distinct prompts, ``repeats`` repeated."""

    family: str
    difficulty: int
    requested: int
    capacity: int
    repeats: int


class ProbeSet:
    """An ordered collection of probe items.

    Supports ``len``, iteration, indexing (an int gives an :class:`Item`, a slice a ProbeSet), filtering,
    pandas conversion, JSONL round trips and prompt rendering. Items are ``metaprobe._core.Item`` objects;
    dicts in the JSONL schema are converted on construction. ``shortfalls`` lists the :class:`Shortfall`
    records of the :func:`generate` call that made the set (empty for sets built any other way).
    """

    def __init__(self, items: Iterable[ItemLike] = (), shortfalls: Iterable[Shortfall] = ()) -> None:
        self._items: list[Item] = _as_items(items, "items")
        self._shortfalls: tuple[Shortfall, ...] = tuple(Shortfall(*s) for s in shortfalls)

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
    def shortfalls(self) -> list[Shortfall]:
        """Per family and difficulty whose prompts repeat, a :class:`Shortfall` (family, difficulty, requested,
        capacity, repeats), in generation order; empty when every prompt is distinct or the set was not made by
        :func:`generate`."""
        return list(self._shortfalls)

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
        fams = None if family is None else _checks.strings(family, "family", "a family name or a list of names")
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
        """One row per item; the columns are the item's fields in schema order (:data:`ITEM_FIELDS`, from the
        C++ field list: ``choices`` a list, ``meta`` a dict, ``extra`` the unknown JSONL fields), each converted
        once from the C++ item."""
        import pandas as pd

        return pd.DataFrame(_core._probes_item_columns(self._items), columns=list(ITEM_FIELDS))

    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Writes the items as JSONL, atomically (a temporary file beside ``path``, then a rename)."""
        _core._probes_write_jsonl(self._items, _checks.path(path))

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> "ProbeSet":
        """Reads a JSONL file of items; a bad line raises :class:`metaprobe.FormatError` naming the line
        and the field, unknown fields are kept in ``Item.extra``."""
        return cls(_core._probes_read_jsonl(_checks.path(path)))

    @classmethod
    def from_jsonl_text(cls, text: str, source: str = "<jsonl>") -> "ProbeSet":
        """Parses JSONL text (``source`` names it in error messages)."""
        return cls(_core._probes_parse_jsonl(_checks.string(text, "text", "JSONL text (str)"),
                                             _checks.string(source, "source")))

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
            k: number of few-shot examples (an integer, 0..64 for ``few_shot``).
            seed: which few-shot examples are drawn (an integer in 0..2**64-1).
        """
        return _core._probes_render_all(self._items, *_prompt_options(template, k, seed))

    def score(self, outputs: Mapping[str, str] | Iterable[str]) -> Scores:
        """Scores model outputs (a mapping id -> text or a sequence aligned with the items)."""
        return score(self, outputs)


#: families(supply=N): an answer space with at most this many distinct gold answers is "small" and gets a
#: chance level 1/answers (a uniform guess over it is a real strategy); a larger one is open (chance NaN).
SMALL_ANSWER_SPACE = 20


class ProbeSupplyWarning(UserWarning):
    """generate(on_short_supply="warn"): a family has fewer distinct prompts at a difficulty than asked."""


def generate(
    skills: Names = "all",
    domains: Names = "all",
    n_per_cell: int = 50,
    difficulties: int | Iterable[int] = (1, 2, 3),
    seed: int = 0,
    on_short_supply: str = "raise",
    phrasing: str = "varied",
    noop_share: float = 0.0,
) -> ProbeSet:
    """Generates a probe suite: ``n_per_cell`` items for every chosen (skill, domain) cell.

    Cells come in grid order. Item i of a cell uses family i mod F of the cell and, within the family,
    difficulty ``difficulties[(i // F) % len(difficulties)]``. The same arguments give byte-identical items
    on every platform.

    Args:
        skills: ``"all"``, a skill name or a list of names from :data:`SKILLS`.
        domains: ``"all"``, a domain name or a list of names from :data:`DOMAINS`.
        n_per_cell: items per cell (0..:data:`MAX_PER_CELL`).
        difficulties: a difficulty level or a list of levels in 1..5, cycled within each family.
        seed: the suite seed (a non-negative integer below 2**64).
        on_short_supply: no prompt repeats within a suite; when a family has fewer distinct prompts at a
            difficulty (its capacity, see :func:`families`) than the suite asks of it, ``"raise"`` raises an
            InvalidArgumentError naming family, difficulty, requested and capacity, ``"warn"`` keeps the
            repeats and emits one :class:`ProbeSupplyWarning` per family and difficulty, ``"keep"`` keeps the
            repeats silently; with either, the returned set's :attr:`ProbeSet.shortfalls` holds the records as data.
        phrasing: ``"varied"`` (default) draws one of each family's three phrasings per item, seeded by the
            item id (``Item.phrasing``); ``"canonical"`` pins phrasing 0, holding the surface form fixed.
        noop_share: share of items (0..1, default 0) that get an irrelevant but plausible sentence of their
            domain in front of the prompt (GSM-Symbolic's NoOp; ``Item.noop``). Neither option changes the
            task content or the gold answer.

    Integers may be Python or numpy integers, never bool or float; any other value is an InvalidArgumentError
    naming the argument, the value and what was expected.
    """
    skill_list = _names(skills, SKILLS, "skills") or []
    domain_list = _names(domains, DOMAINS, "domains") or []
    diffs = _ints(difficulties, "difficulties")
    if not diffs:
        raise InvalidArgumentError("difficulties: got an empty list, expected one or more integers in 1..5")
    n_per_cell = _checks.integer(n_per_cell, "n_per_cell", 0, MAX_PER_CELL)
    if on_short_supply not in ("raise", "warn", "keep"):
        raise InvalidArgumentError(f"on_short_supply: got {on_short_supply!r}, expected 'raise', 'warn' or 'keep'")
    phrasing, noop_share = _surface(phrasing, noop_share)
    mode = "raise" if on_short_supply == "raise" else "warn"  # "keep" is "warn" without the warnings
    spec = _core.SuiteSpec(skills=skill_list, domains=domain_list, n_per_cell=n_per_cell, difficulties=diffs,
                           seed=_seed(seed), on_short_supply=mode,
                           surface=_core.SurfaceOptions(phrasing=phrasing, noop_share=noop_share))
    items, shortfalls = _core._probes_generate(spec)
    for s in shortfalls if on_short_supply == "warn" else ():
        warnings.warn(ProbeSupplyWarning(
            f"family '{s['family']}' at difficulty {s['difficulty']}: the suite asks for {s['requested']} items "
            f"but the family has {s['capacity']} distinct prompts; {s['repeats']} prompts repeat"), stacklevel=2)
    return ProbeSet(items, [Shortfall(s["family"], int(s["difficulty"]), int(s["requested"]), int(s["capacity"]),
                                      int(s["repeats"])) for s in shortfalls])


def _surface(phrasing: Any, noop_share: Any) -> tuple[str, float]:
    if phrasing not in ("varied", "canonical"):
        raise InvalidArgumentError(f"phrasing: got {phrasing!r}, expected 'varied' or 'canonical'")
    if isinstance(noop_share, bool) or not isinstance(noop_share, (int, float)) or not 0 <= noop_share <= 1:
        raise InvalidArgumentError(f"noop_share: got {noop_share!r}, expected a number in [0, 1]")
    return phrasing, float(noop_share)


def generate_item(family: str, difficulty: int = 1, seed: int = 0, index: int = 0, phrasing: str = "varied",
                  noop_share: float = 0.0) -> Item:
    """One item of a generator family (see :func:`families`); deterministic in all its arguments.

    ``family`` is a family name (str), ``difficulty`` an integer in 1..5, ``seed`` and ``index`` integers in
    0..2**64-1 (Python or numpy, not bool); ``phrasing`` and ``noop_share`` as in :func:`generate`; anything
    else is an InvalidArgumentError.
    """
    phrasing, noop_share = _surface(phrasing, noop_share)
    return _core._probes_generate_item(_checks.string(family, "family", "a generator family name (str)"),
                                       _checks.integer(difficulty, "difficulty", 1, 5), _seed(seed),
                                       _checks.integer(index, "index", 0, _checks.UINT64_MAX),
                                       _core.SurfaceOptions(phrasing=phrasing, noop_share=noop_share))


def families(supply: int = 0, seed: int = 0) -> "pd.DataFrame":
    """The generator families: columns ``name``, ``skill``, ``domain``, ``version``, ``description``,
    ``answer_type`` and ``chance`` (the accuracy of a uniform guess: 1/options for choice families, NaN where
    the answer space is open).

    With ``supply`` > 0, items at indices ``0..supply-1`` of every difficulty 1..5 are generated under ``seed``
    and the frame gains, per difficulty d:

    - ``capacity_d``: distinct prompts among them (the C++ ``family_capacity``; exact where ``supply`` draws
      exhaust the family's space, else a lower bound close to ``supply``); a suite asking for more of the family
      at d raises (or warns, ``on_short_supply="warn"``);
    - ``majority_d``: the share of the most common gold answer (the accuracy of always guessing it);
    - ``answers_d``: distinct gold answers among them (diagnostic families: distinct error locations);
    - ``chance_d``: the accuracy of a uniform guess over the answer space where it is small: 1/options for
      choice items, 1/``answers_d`` when ``answers_d`` <= :data:`SMALL_ANSWER_SPACE`, else NaN (open);
    - ``none_d`` (diagnostic families): the share of items without an error (gold ``"none"``), and
      ``majority_d`` is then the share of the most common error location among the items with an error.
    """
    import collections

    import pandas as pd

    frame = pd.DataFrame(_core._probes_families(), columns=["name", "skill", "domain", "version", "description"])
    supply = _checks.integer(supply, "supply", 0, 100_000)
    seed = _seed(seed)
    types, chance = [], []
    for name in frame["name"]:
        it = _core._probes_generate_item(name, 1, 0, 0)
        types.append(it.answer_type)
        chance.append(1.0 / len(it.choices) if it.answer_type == "choice" else float("nan"))
    frame["answer_type"] = types
    frame["chance"] = chance
    for d in range(1, 6) if supply else ():
        capacity, majority, answers, chance_d, none = [], [], [], [], []
        for name, skill, atype in zip(frame["name"], frame["skill"], frame["answer_type"]):
            capacity.append(_core._probes_family_capacity(name, d, seed, supply))
            items = [_core._probes_generate_item(name, d, seed, k) for k in range(supply)]
            golds = collections.Counter(it.answer for it in items)
            n_none = golds.pop("none", 0) if skill == "diagnostic" else 0
            none.append(n_none / supply if skill == "diagnostic" else float("nan"))
            n = sum(golds.values())
            majority.append(golds.most_common(1)[0][1] / n if n else float("nan"))
            answers.append(len(golds))
            if atype == "choice":
                chance_d.append(1.0 / len(items[0].choices))
            else:
                chance_d.append(1.0 / len(golds) if 0 < len(golds) <= SMALL_ANSWER_SPACE else float("nan"))
        frame[f"capacity_{d}"] = capacity
        frame[f"majority_{d}"] = majority
        frame[f"answers_{d}"] = answers
        frame[f"chance_{d}"] = chance_d
        frame[f"none_{d}"] = none
    return frame


def render(item: ItemLike, template: str = "chat", k: int = 3, seed: int = 0,
           pool: Iterable[ItemLike] = ()) -> str:
    """The prompt of one item; ``few_shot`` draws examples of its cell from ``pool`` (then generated ones).

    ``template``, ``k`` and ``seed`` as in :meth:`ProbeSet.render`; ``item`` is an Item or an item dict and
    ``pool`` an iterable of them (another type is a TypeError).
    """
    if not isinstance(item, (Item, Mapping)):
        raise TypeError(f"item is a {type(item).__name__}, expected a metaprobe Item or a dict in the item schema")
    it = _as_item(item, 0)
    return _core._probes_render(it, *_prompt_options(template, k, seed), _as_items(pool, "pool"))
