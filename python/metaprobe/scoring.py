"""Scoring of probe items: answer extraction, checking, accuracy with Wilson intervals.

A thin layer over the C++ scorer (``metaprobe._core``): :func:`score` scores model outputs against probe
items and returns a :class:`Scores` with per-item records and accuracies per cell, skill and domain;
:func:`extract` and :func:`check` work on single outputs; :func:`score_choice` gives lm-evaluation-harness
``acc``/``acc_norm`` from per-choice log-likelihoods. Definitions: ``docs/probes.md``, section "Scoring".
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _core
from ._core import Accuracy, ChoiceScore, InvalidArgumentError

if TYPE_CHECKING:  # pandas is imported by the functions that build tables, never at package load
    import pandas as pd

__all__ = [
    "Scores",
    "score",
    "extract",
    "check",
    "answers_match",
    "score_choice",
    "wilson",
    "Accuracy",
    "ChoiceScore",
    "STRATEGIES",
]

#: Extraction strategies: the markers (the one that comes last in the answer wins), the type-specific
#: fallbacks ("emphasis", "last_number", "choice_letter"/"choice_text", "last_line"), "reasoning_unclosed"
#: (the output stops inside a reasoning block) and "none" (nothing found).
STRATEGIES: tuple[str, ...] = tuple(_core.extraction_strategies)

ItemLike = Union["_core.Item", Mapping[str, Any]]


def _as_item(obj: Any, where: str) -> Any:
    """A ``_core.Item`` from an Item or a dict in the JSONL schema (no copy for an Item)."""
    item_cls = getattr(_core, "Item", None)
    if item_cls is not None and isinstance(obj, item_cls):
        return obj
    if isinstance(obj, Mapping):
        if item_cls is None:
            raise TypeError(f"{where} is a dict, but this build of metaprobe._core has no Item class")
        return item_cls.from_dict(dict(obj))
    raise TypeError(f"{where} is a {type(obj).__name__}, expected a metaprobe Item or a dict in the item schema")


def _items_of(probes: Any) -> list:
    if isinstance(probes, (str, bytes)) or not isinstance(probes, Iterable):
        raise TypeError(
            f"probes is a {type(probes).__name__}, expected a ProbeSet or a sequence of Items or dicts"
        )
    items = probes if isinstance(probes, list) else list(probes)
    item_cls = getattr(_core, "Item", None)
    if item_cls is not None and all(map(item_cls.__instancecheck__, items)):
        return items  # the common case: Items already, borrowed as they are
    return [_as_item(p, f"probes[{k}]") for k, p in enumerate(items)]


def _outputs_of(items: list, outputs: Any) -> list[str]:
    if isinstance(outputs, Mapping):
        ids = [it.id for it in items]
        missing = [i for i in ids if i not in outputs]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:3])
            raise InvalidArgumentError(
                f"outputs has no entry for {len(missing)} of {len(items)} item ids (e.g. {shown}), "
                "expected a text for every item id"
            )
        if len(outputs) != len(set(ids)):
            known = set(ids)
            extra = [k for k in outputs if k not in known]
            shown = ", ".join(repr(e) for e in extra[:3])
            raise InvalidArgumentError(
                f"outputs has {len(extra)} ids that are not among the probes (e.g. {shown}), "
                "expected only ids of the probes being scored"
            )
        return [outputs[i] for i in ids]
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence):
        raise TypeError(
            f"outputs is a {type(outputs).__name__}, expected a mapping id -> text or a sequence of texts "
            "aligned with the probes"
        )
    return outputs if isinstance(outputs, list) else list(outputs)


def _accuracy_frame(cols: dict, index_names: list[str]) -> "pd.DataFrame":
    import pandas as pd

    keys = cols["key"]
    if len(index_names) == 1:
        index = pd.Index(keys, name=index_names[0])
    else:
        index = pd.MultiIndex.from_tuples(keys, names=index_names) if keys else pd.MultiIndex.from_arrays(
            [[], []], names=index_names
        )
    frame = pd.DataFrame(
        {
            "n": pd.array(cols["n"], dtype="int64"),
            "correct": pd.array(cols["correct"], dtype="int64"),
            "acc": pd.array(cols["acc"], dtype="float64"),
            "lo": pd.array(cols["lo"], dtype="float64"),
            "hi": pd.array(cols["hi"], dtype="float64"),
        },
        index=index,
    )
    return frame


@dataclass(frozen=True)
class Scores:
    """The scores of a batch of outputs.

    Attributes:
        items: one row per item, columns ``id``, ``skill``, ``domain``, ``extracted`` (the answer found),
            ``strategy`` (which extraction strategy fired, see :data:`STRATEGIES`) and ``correct`` (bool);
            skill, domain and strategy are pandas categoricals.
        overall: the accuracy over all items with its Wilson 95% interval.
    """

    items: "pd.DataFrame"
    overall: Accuracy
    _by_cell: dict
    _by_skill: dict
    _by_domain: dict

    def by_cell(self) -> "pd.DataFrame":
        """Accuracy per (skill, domain) cell: index (skill, domain); columns n, correct, acc, lo, hi."""
        return _accuracy_frame(self._by_cell, ["skill", "domain"])

    def by_skill(self) -> "pd.DataFrame":
        """Accuracy per skill: index skill; columns n, correct, acc, lo, hi (Wilson 95%)."""
        return _accuracy_frame(self._by_skill, ["skill"])

    def by_domain(self) -> "pd.DataFrame":
        """Accuracy per domain: index domain; columns n, correct, acc, lo, hi (Wilson 95%)."""
        return _accuracy_frame(self._by_domain, ["domain"])

    @property
    def accuracy(self) -> float:
        """The overall fraction of items answered correctly (0 for an empty batch)."""
        return float(self.overall.acc)

    def __len__(self) -> int:
        return int(self.overall.n)

    def __repr__(self) -> str:
        o = self.overall
        return f"Scores(n={o.n}, correct={o.correct}, acc={o.acc:.4f}, 95% CI=[{o.lo:.4f}, {o.hi:.4f}])"


def score(probes: Any, outputs: Union[Mapping[str, str], Sequence[str]], *,
          reasoning_tags: Optional[Sequence[tuple[str, str]]] = None,
          strategies: Optional[Sequence[str]] = None) -> Scores:
    """Scores model outputs against probe items.

    Args:
        probes: a ``ProbeSet``, or a sequence of ``Item`` objects or dicts in the item schema.
        outputs: a mapping from item id to the model's text (every item id, no others), or a sequence of
            texts aligned with ``probes``.
        reasoning_tags: ``(open, close)`` pairs of reasoning blocks cut away before extraction (None: ``<think>``,
            ``<thinking>``, ``<reasoning>``; ``[]``: none). A block that never closes means no answer.
        strategies: the extraction strategies allowed to fire (None: all of :data:`STRATEGIES`).

    Returns:
        :class:`Scores`: per-item records (``.items``) and accuracies ``.by_cell()``, ``.by_skill()``,
        ``.by_domain()`` with Wilson 95% intervals. The C++ scorer runs without the GIL and without copying
        items or texts.
    """
    items = _items_of(probes)
    texts = _outputs_of(items, outputs)
    cols = _core._score_columns(items, texts, reasoning_tags, strategies)
    return Scores(
        items=_items_frame(cols["items"]),
        overall=cols["overall"],
        _by_cell=cols["by_cell"],
        _by_skill=cols["by_skill"],
        _by_domain=cols["by_domain"],
    )


def _items_frame(cols: dict) -> "pd.DataFrame":
    """The per-item table; skill, domain and strategy are categoricals built from the C++ int8 codes."""
    import numpy as np
    import pandas as pd

    def categorical(codes: Any, names: list) -> "pd.Categorical":
        return pd.Categorical.from_codes(codes, categories=names)

    return pd.DataFrame(
        {
            "id": np.array(cols["id"], dtype=object),
            "skill": categorical(cols["skill"], cols["skill_names"]),
            "domain": categorical(cols["domain"], cols["domain_names"]),
            "extracted": np.array(cols["extracted"], dtype=object),
            "strategy": categorical(cols["strategy"], cols["strategy_names"]),
            "correct": cols["correct"],
        }
    )


def extract(output: str, answer_type: Any = "number", choices: Sequence[str] = (), *,
            reasoning_tags: Optional[Sequence[tuple[str, str]]] = None,
            strategies: Optional[Sequence[str]] = None) -> tuple[str, str]:
    """The answer of one model output and the strategy that found it.

    Args:
        output: the model's text.
        answer_type: ``"integer"``, ``"number"``, ``"string"``, ``"choice"`` or ``"list"`` (or an
            ``AnswerType``).
        choices: the options of a choice item (they bound the valid letters and allow matching option text).
        reasoning_tags, strategies: as in :func:`score` (``strategies=["gsm8k"]`` is lm-eval's strict-match,
            ``["last_number"]`` its flexible-extract).

    Returns:
        ``(answer, strategy)``; ``("", "none")`` when nothing was found, ``("", "reasoning_unclosed")`` when
        the output stops inside a reasoning block.
    """
    e = _core.extract(output, answer_type, list(choices), reasoning_tags, strategies)
    return e.answer, e.strategy


def check(item: ItemLike, output: str, *, reasoning_tags: Optional[Sequence[tuple[str, str]]] = None,
          strategies: Optional[Sequence[str]] = None) -> bool:
    """Whether ``output`` answers ``item`` correctly (extraction, then normalised comparison by type)."""
    return bool(_core.check(_as_item(item, "item"), output, reasoning_tags, strategies))


def answers_match(item: ItemLike, extracted: str) -> bool:
    """Whether an already-extracted answer equals the item's answer after normalisation by type."""
    return bool(_core.answers_match(_as_item(item, "item"), extracted))


def score_choice(item: ItemLike, loglikelihoods: Sequence[float]) -> ChoiceScore:
    """lm-evaluation-harness ``acc`` and ``acc_norm`` of one choice item from per-choice log-likelihoods.

    ``pred = argmax(ll)``, ``pred_norm = argmax(ll / len(choice))`` with ``len`` in characters (code points);
    ties go to the first option.
    """
    return _core.score_choice(_as_item(item, "item"), [float(x) for x in loglikelihoods])


def wilson(correct: int, n: int, z: float = 1.959963984540054) -> Accuracy:
    """Accuracy ``correct / n`` with its Wilson score interval at normal quantile ``z`` (1.96: 95%)."""
    return _core.wilson(int(correct), int(n), float(z))
