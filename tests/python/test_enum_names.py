"""Enum names reach Python from the C++ name tables (common/enum_names.hpp): no Python restatement, one parser."""
import importlib

import pytest

import metaprobe
from metaprobe import _core, lm, plot, probes
# metaprobe.divergence is the function in the package namespace; the module holds METRICS.
mdiv = importlib.import_module("metaprobe.divergence")


def test_skill_and_domain_names_come_from_the_cpp_tables():
    assert probes.SKILLS == ("calculation", "fact_retrieval", "simulation", "enumeration", "diagnostic")
    assert probes.DOMAINS == ("math", "physics", "coding", "general")
    assert tuple(_core.SKILLS) == probes.SKILLS and tuple(_core.DOMAINS) == probes.DOMAINS
    assert plot.SKILLS == probes.SKILLS and plot.DOMAINS == probes.DOMAINS
    # every generated cell is named from the same table
    suite = probes.generate(n_per_cell=1)
    assert suite.cells() == [(s, d) for s in probes.SKILLS for d in probes.DOMAINS]


def test_other_name_lists():
    assert _core.lm.PADDING_SIDES == ("right", "left")
    assert list(_core.AnswerType.__members__) == ["integer", "number", "string", "choice", "list"]
    assert mdiv.METRICS[:3] == ("kl_pq", "kl_qp", "js") and len(mdiv.METRICS) == 12


def test_bad_names_name_the_field_the_value_and_the_valid_names():
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"^on_short_supply: got 'ignore', expected 'raise', 'warn' or 'keep'$"):
        probes.generate(n_per_cell=1, on_short_supply="ignore")
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"^padding_side: unknown value 'middle', expected 'right' or 'left'$"):
        lm.CharTokenizer().padding_side = "middle"


def test_option_json_enums_are_strict():
    ok = _core.meta.check_options({"choice_mode": "loglikelihood"})
    assert ok["choice_mode"] == "loglikelihood" and ok["reference_mode"] == "exact"
    assert ok["update_nonfinite"] == "nan"
    # a non-string is an error naming the field, never the first enumerator
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"^choice_mode: got JSON number 1, expected one of generate, loglikelihood$"):
        _core.meta.check_options({"choice_mode": 1})
    with pytest.raises(metaprobe.InvalidArgumentError,
                       match=r"^choice_mode: 'greedy' is not a choice mode, expected one of generate, loglikelihood$"):
        _core.meta.check_options({"choice_mode": "greedy"})
