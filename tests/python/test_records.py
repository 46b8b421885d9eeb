"""One declaration per record: the Python dicts and the report's columns follow the C++ field lists
(``_core.params.*_FIELDS``, ``_core.meta.RECORD_FIELDS``), and reports and options cross the C++/Python
boundary as dicts."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import metaprobe
from metaprobe import MetaOptions, MetaProbe, Report, _core, params
from metaprobe.lm import TinyLM

SMALL = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=1024)


@pytest.fixture(scope="module")
def report() -> Report:
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=7)
    base, other = TinyLM(seed=3, **SMALL), TinyLM(seed=4, **SMALL)
    mp = MetaProbe(probes, reference="base", options=MetaOptions(max_new_tokens=4, batch_size=8))
    mp.add_stage("base", arm="base", step=0, source=base, checkpoint=base.state_dict())
    mp.add_stage("sft-1", arm="sft", step=1, source=other, checkpoint=other.state_dict())
    return mp.run(progress=False)


def test_params_dicts_have_exactly_the_declared_keys():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(12, 8, generator=g, dtype=torch.float64)
    w1 = w0 + 0.01 * torch.randn(12, 8, generator=g, dtype=torch.float64)
    assert list(params.tensor_stats(w0)) == list(_core.params.TENSOR_STATS_FIELDS)
    assert list(params.update_stats(w0, w1)) == list(_core.params.UPDATE_STATS_FIELDS)
    assert list(params.spectral_stats(w0)) == list(_core.params.SPECTRAL_STATS_FIELDS)
    assert "svd_method" in _core.params.SPECTRAL_STATS_FIELDS and "method" not in _core.params.SPECTRAL_STATS_FIELDS
    assert list(params.update_spectral_stats(w0, w1, k=2)) == list(_core.params.UPDATE_SPECTRAL_STATS_FIELDS)


def test_comparison_rows_and_groups_follow_the_field_lists():
    g = torch.Generator().manual_seed(1)
    ref = {"model.layers.0.mlp.down_proj.weight": torch.randn(8, 6, generator=g),
           "model.layers.0.input_layernorm.weight": torch.ones(6)}
    tuned = {n: t + 0.01 for n, t in ref.items()}
    c = params.compare_checkpoints(ref, tuned, spectra=True, subspace_k=2, progress=False)
    groups = [k for k in _core.params.GROUP_STATS_FIELDS if k not in ("key", "layer")]
    assert list(c.layers.columns) == groups
    assert set(groups) <= set(c.summary)
    matrix = c.tensors.loc["model.layers.0.mlp.down_proj.weight"]
    assert matrix.spectral_status == "ok"
    for key in _core.params.SPECTRAL_STATS_FIELDS:
        assert "ref_" + key in c.tensors.columns and "tuned_" + key in c.tensors.columns
    assert matrix.ref_svd_method in ("gram", "svd") and matrix.subspace_k == 2
    assert c.tensors.loc["model.layers.0.input_layernorm.weight", "spectral_status"].startswith("skipped: 1-D")
    doc = json.loads(c.to_json())
    row = doc["tensors"][0]
    assert list(row["reference_spectral"]) == sorted(_core.params.SPECTRAL_STATS_FIELDS)
    assert "reference_spectral" not in doc["tensors"][1]  # skipped: no spectral records


def test_report_columns_derive_from_the_cpp_records(report):
    fields = _core.meta.RECORD_FIELDS
    assert Report._GROUP_COLS == [k for k in fields["group_stats"] if k not in ("key", "layer")]
    assert Report._DIV_COLS == [k for k in fields["cell_divergence"]
                                if k not in ("cell", "position_counts", "high_js_counts")]
    assert Report._DERIVED_COLS == [k for k in fields["stage_derived"] if k not in ("cells", "collapsed")]
    assert Report._DETECTION_COLS == ["precision", "recall", "f1"]
    assert list(report.params.columns) == ["stage", "arm", "step", "level", "key", "layer"] + Report._GROUP_COLS
    total = report.params.query("stage == 'sft-1' and level == 'total'").iloc[0]
    assert total.nonfinite_count == 0 and total.delta_fro > 0
    group = report.stage("sft-1")["params"]["total"]
    assert set(group) == set(fields["group_stats"])  # the report writes every declared field


def test_reports_and_options_cross_as_dicts(report):
    doc = _core.meta.validate_report(report.data)
    assert isinstance(doc, dict) and doc == report.data
    assert Report.from_json(report.to_json()) == report
    merged = Report.merge([report])
    assert merged.stage_names == report.stage_names
    defaults = metaprobe.meta.default_options()
    assert isinstance(defaults, dict) and defaults["max_new_tokens"] == 512
    assert _core.meta.check_options(MetaOptions(stop="Answer").to_dict("base"))["stop"] == ["Answer"]


def test_bad_documents_are_errors_naming_the_field(report):
    with pytest.raises(metaprobe.FormatError, match="report: not JSON"):
        Report.from_json('{"schema": NaN}')
    bad = json.loads(report.to_json())
    del bad["stages"][1]["params"]["total"]["delta_fro"]
    with pytest.raises(metaprobe.FormatError,
                       match=r"report: stages\[1\]: group statistics\.delta_fro is missing or has the wrong type"):
        Report.from_json(json.dumps(bad))
    bad = json.loads(report.to_json())
    bad["stages"][1]["params"]["total"]["tensors"] = "3"
    with pytest.raises(metaprobe.FormatError, match=r"group statistics\.tensors .*JSON string, expected an integer"):
        _core.meta.validate_report(bad)
    with pytest.raises(metaprobe.FormatError, match="report: document is a <class 'list'>, expected a dict"):
        _core.meta.validate_report([])
    bad = json.loads(report.to_json())
    bad["seconds"] = object()
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"parts\[0\]\.seconds: a <class 'object'>, expected a JSON value"):
        _core.meta.merge_reports([bad])
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"options\.stop\[0\]: a <class 'bytes'>"):
        _core.meta.check_options({**MetaOptions().to_dict("base"), "stop": [b"x"]})


def test_meta_options_derive_from_the_cpp_field_list():
    names = [f.name for f in dataclasses.fields(MetaOptions)]
    assert names == [p.replace(".", "_") for p in _core.meta.OPTION_FIELDS if p != "reference"]
    assert "prompt_template" in names and "update_atol" in names
    assert MetaOptions().to_dict("base") == _core.meta.default_options()  # every default is the C++ one
    assert MetaOptions(prompt_template="few_shot", prompt_k=5).to_dict("r")["prompt"] == {"template": "few_shot",
                                                                                          "k": 5, "seed": 0}
    o = MetaOptions(update_atol=0.5, stop="A", target_cells=("simulation/coding",), eos_ids=(np.int64(3),))
    back = MetaOptions.from_dict(_core.meta.check_options(o.to_dict("base")))
    assert back == MetaOptions(update_atol=0.5, stop=("A",), target_cells=("simulation/coding",), eos_ids=(3,))
    assert MetaOptions.from_dict({"prompt": {"k": 7}, "not_an_option": 1}) == MetaOptions(prompt_k=7)
    assert MetaOptions.solution_separator == " "  # class attributes are the defaults


def test_docs_list_every_meta_option():
    text = (Path(__file__).resolve().parents[2] / "docs" / "meta.md").read_text(encoding="utf-8")
    start = text.index("- `MetaOptions` fields")
    paragraph = text[start:text.index("\n- ", start)]
    missing = [f.name for f in dataclasses.fields(MetaOptions) if not re.search(rf"\b{f.name}\b", paragraph)]
    assert missing == []
