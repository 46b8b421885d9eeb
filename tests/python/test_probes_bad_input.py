"""Bad input to the probes module: each case asserts the error type and that the message names the argument,
the value and what was expected."""
from __future__ import annotations

import numpy as np
import pytest

import metaprobe
from metaprobe import probes


def _good_line() -> str:
    return probes.generate(n_per_cell=1, skills="calculation", domains="math")[0].to_json()


def test_jsonl_with_non_utf8_bytes_names_file_line_and_problem(tmp_path):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(b"\xff\xfe" + _good_line().encode("utf-16-le"))
    with pytest.raises(metaprobe.FormatError, match=r"utf16\.jsonl:1: .*UTF-16 byte-order mark \(bytes FF FE\), expected UTF-8"):
        probes.ProbeSet.from_jsonl(path)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes((_good_line() + "\n").encode() + '{"id": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(metaprobe.FormatError, match=r"latin1\.jsonl:2: invalid UTF-8 byte 0xE9 at column \d+, expected UTF-8"):
        probes.ProbeSet.from_jsonl(bad)


def test_from_jsonl_of_a_directory_is_an_io_error(tmp_path):
    with pytest.raises(metaprobe.IoError, match=r"is a directory, expected a JSONL file"):
        probes.ProbeSet.from_jsonl(tmp_path)


def test_duplicate_key_inside_an_item_is_a_format_error():
    line = _good_line()
    dup = line[:-1] + ', "answer": "999"}'
    with pytest.raises(metaprobe.FormatError, match=r"t:2: duplicate key 'answer' in one JSON object, expected each key once"):
        probes.ProbeSet.from_jsonl_text("\n" + dup + "\n", "t")


def test_generate_rejects_empty_selections_and_bad_counts():
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"skills: got an empty list, expected 'all'"):
        probes.generate(skills=[])
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"domains: got an empty list"):
        probes.generate(domains=())
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"n_per_cell: got True \(bool\), expected an integer"):
        probes.generate(n_per_cell=True)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"n_per_cell: got 1.5 \(float\), expected an integer"):
        probes.generate(n_per_cell=1.5)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"n_per_cell: got 2147483648, expected an integer in 0\.\.1,000,000"):
        probes.generate(n_per_cell=2**31)
    # numpy integers are integers
    assert len(probes.generate(n_per_cell=np.int64(1), skills="calculation")) == 4


def test_render_bounds_few_shot_k():
    item = probes.generate(n_per_cell=1, skills="calculation", domains="math")[0]
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"k: got 100000000, expected 0\.\.64 few-shot examples"):
        probes.render(item, template="few_shot", k=100_000_000)
    assert probes.render(item, template="few_shot", k=64).count("Question:") == 65


@pytest.fixture
def cli():
    from cli_path import metaprobe_cli

    path = metaprobe_cli()
    if path is None:
        pytest.skip("the C++ metaprobe tool is not built")
    return str(path)


def _generate(cli, seed, out):
    import subprocess

    return subprocess.run([cli, "probes", "generate", "--n-per-cell", "1", "--seed", seed, "-o", str(out)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("seed", ["-1", "18446744073709551616", "1e3", ""])
def test_cli_rejects_seeds_that_would_wrap(seed, cli, tmp_path):
    # CLI11 alone turns -1 into 2**64 - 1 and saturates 2**64: two seeds, one suite, exit 0.
    out = _generate(cli, seed, tmp_path / "s.jsonl")
    assert out.returncode != 0
    assert f"--seed: got '{seed}', expected an integer from 0 to 18446744073709551615" in out.stderr
    assert not (tmp_path / "s.jsonl").exists()


def test_cli_accepts_the_largest_seed(cli, tmp_path):
    for seed in ("18446744073709551615", "0018446744073709551615"):
        out = _generate(cli, seed, tmp_path / f"{seed}.jsonl")
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "18446744073709551615.jsonl").read_text() == (tmp_path / "0018446744073709551615.jsonl").read_text()


def test_cli_short_supply_phrasing_noop_and_capacity(cli, tmp_path):
    import subprocess

    def run(*args):
        return subprocess.run([cli, "probes", *args], capture_output=True, text=True)

    out = tmp_path / "s.jsonl"
    base = ["generate", "--skills", "enumeration", "--domains", "math", "--n-per-cell", "240", "-o", str(out)]
    r = run(*base)
    assert r.returncode != 0 and "family 'math.stars_and_bars' at difficulty 2 has 20 distinct prompts" in r.stderr
    assert not out.exists()
    r = run(*base, "--on-short-supply", "warn")
    assert r.returncode == 0 and "warning: family math.lattice_paths at difficulty 1: asked for 40 items, capacity 25" in r.stderr
    r = run(*base, "--on-short-supply", "ignore")
    assert r.returncode != 0 and "--on-short-supply" in r.stderr
    r = run("generate", "--n-per-cell", "2", "--phrasing", "canonical", "--noop-share", "1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    items = probes.ProbeSet.from_jsonl(out)
    assert all(it.phrasing == 0 and it.noop for it in items)
    assert run("generate", "--noop-share", "2", "-o", str(out)).returncode != 0
    r = run("families", "--capacity", "400")
    assert r.returncode == 0
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("math.lattice_paths\t")][0]
    assert "capacity 25," in line
