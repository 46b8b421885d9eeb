"""Faults and bad input around files (issue 16): a checkpoint shrinking under a reader, atomic writes (modes,
read-only targets, leftovers), errors that name the file and the OS reason, and the CLI's shell (one error
line, exit codes). Crash-prone cases run in a child process so a SIGBUS fails the test instead of the run."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import metaprobe
from metaprobe import io, params
from metaprobe._atomic import write_bytes_atomic

from cli_path import metaprobe_cli


def _child(code: str, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with the same sys.path; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# --- SIGBUS: a file truncated under a reader ---------------------------------------------------------------

_SHRINK = """
    import os, sys, torch
    from metaprobe import io, params
    path, how = sys.argv[1], sys.argv[2]
    io.save({"a": torch.randn(64), "w": torch.randn(1024, 2048)}, path)
    io.save({"a": torch.randn(64), "w": torch.randn(1024, 2048)}, path + ".b")
    try:
        if how == "load_copy":
            d = io.load(path, copy=True); os.truncate(path, 4096); print(float(d["w"].sum()))  # owned: survives
            io.save({"a": torch.randn(64), "w": torch.randn(1024, 2048)}, path)
            d = io.open_checkpoint(path, copy=True); os.truncate(path, 100); d["w"]
        elif how == "checkpoint_index":
            ck = io.open_checkpoint(path); os.truncate(path, 4096); ck["w"]
        elif how == "compare_paths":
            def cb(*a):
                os.truncate(path, 4096)   # after the first tensor: the walk must not fault on the next
            params.compare_checkpoints(path, path + ".b", progress=cb)
        elif how == "compare_open_checkpoint":
            ck = io.open_checkpoint(path)  # a zero-copy view; the walk reads it through copies
            os.truncate(path, 4096)
            params.compare_checkpoints(ck, path + ".b", progress=False)
        elif how == "describe_path":
            def cb(*a):
                os.truncate(path, 4096)
            params.describe(path, progress=cb)
        elif how == "describe_source":
            src = io.as_tensor_source(path); os.truncate(path, 4096); params.describe(src, progress=False)
    except metaprobe.IoError as exc:
        print("IoError:", exc)
        sys.exit(0)
    sys.exit(5)
""".replace("from metaprobe import io, params", "import metaprobe\n    from metaprobe import io, params")


@pytest.mark.parametrize("how", ["load_copy", "checkpoint_index", "compare_paths", "compare_open_checkpoint",
                                 "describe_path", "describe_source"])
def test_a_shrunk_checkpoint_is_an_ioerror_naming_the_file_not_a_sigbus(tmp_path, how):
    path = tmp_path / "x.st"
    res = _child(_SHRINK, str(path), how)
    assert res.returncode == 0, f"rc {res.returncode} (-7 is SIGBUS): {res.stdout} {res.stderr[-2000:]}"
    assert "IoError:" in res.stdout and str(path) in res.stdout and "truncated" in res.stdout, res.stdout


def test_zero_copy_tensors_keep_mmap_semantics_and_the_docs_say_so(tmp_path):
    # A tensor already handed out aliases the map: touching it after truncation is SIGBUS, as documented.
    code = """
        import os, sys, torch
        from metaprobe import io
        io.save({"w": torch.randn(1024, 2048)}, sys.argv[1])
        w = io.load(sys.argv[1])["w"]
        os.truncate(sys.argv[1], 4096)
        w.sum()
    """
    res = _child(code, str(tmp_path / "x.st"))
    assert res.returncode == -signal.SIGBUS
    assert "SIGBUS" in io.load.__doc__ + io.__doc__ and "copy=True" in io.__doc__


# --- atomic writes: modes, read-only targets, directories, leftovers ---------------------------------------

def _comparison(tmp_path: Path) -> params.Comparison:
    io.save({"w": torch.ones(3, 3)}, tmp_path / "a.st")
    io.save({"w": torch.full((3, 3), 2.0)}, tmp_path / "b.st")
    return params.compare_checkpoints(tmp_path / "a.st", tmp_path / "b.st", progress=False)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o002, 0o664)])
def test_new_files_get_the_umask_mode_from_every_writer(tmp_path, umask, expected):
    cmp = _comparison(tmp_path)
    old = os.umask(umask)
    try:
        io.save({"x": torch.ones(2)}, tmp_path / "n.st")
        cmp.to_json(tmp_path / "c.json")
        write_bytes_atomic(tmp_path / "b.bin", b"x")
        metaprobe.probes.generate(n_per_cell=1, seed=0).to_jsonl(tmp_path / "p.jsonl")  # the C++ writer
    finally:
        os.umask(old)
    for name in ("n.st", "c.json", "b.bin", "p.jsonl"):
        if (tmp_path / name).exists():
            assert _mode(tmp_path / name) == expected, name
    assert json.loads((tmp_path / "c.json").read_text())


def test_writing_over_a_0644_or_0640_file_keeps_its_mode(tmp_path):
    cmp = _comparison(tmp_path)
    for name, writer in (("n.st", lambda p: io.save({"x": torch.ones(2)}, p)), ("c.json", cmp.to_json)):
        target = tmp_path / name
        target.write_bytes(b"old")
        for mode in (0o644, 0o640):
            os.chmod(target, mode)
            old = os.umask(0o077)
            try:
                writer(target)
            finally:
                os.umask(old)
            assert _mode(target) == mode, (name, oct(mode))


def test_a_read_only_target_is_an_ioerror_and_left_untouched(tmp_path):
    cmp = _comparison(tmp_path)
    for name, writer in (("n.st", lambda p: io.save({"x": torch.ones(2)}, p)), ("c.json", cmp.to_json),
                         ("b.bin", lambda p: write_bytes_atomic(p, b"new"))):
        target = tmp_path / name
        target.write_bytes(b"keep")
        os.chmod(target, 0o444)
        with pytest.raises(metaprobe.IoError, match=rf"{name}.*read-only \(mode 444"):
            writer(target)
        assert target.read_bytes() == b"keep" and _mode(target) == 0o444
    assert _leftovers(tmp_path) == []


def test_to_json_onto_a_directory_is_an_error_and_leaves_nothing(tmp_path):
    cmp = _comparison(tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(metaprobe.IoError, match=r"'.*/d': it is a directory"):
        cmp.to_json(tmp_path / "d")
    assert _leftovers(tmp_path) == [] and list((tmp_path / "d").iterdir()) == []


def test_stale_temporaries_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = __import__("socket").gethostname().split(".", 1)[0]
    for name in ("m.st", "r.json"):
        (tmp_path / f".{name}.tmp-{dead}-7x123.{host}").write_bytes(b"\0" * 1000)   # left by a kill -9
        (tmp_path / f".{name}.tmp-{os.getpid()}-9x1.{host}").write_bytes(b"live")  # a live writer's: kept
    io.save({"x": torch.ones(1)}, tmp_path / "m.st")          # the C++ writer
    write_bytes_atomic(tmp_path / "r.json", b"{}")            # the Python helper
    assert _leftovers(tmp_path) == [f".m.st.tmp-{os.getpid()}-9x1.{host}", f".r.json.tmp-{os.getpid()}-9x1.{host}"]


def test_kill_9_during_a_python_save_leaves_a_recognisable_temporary_that_is_cleaned(tmp_path):
    code = """
        import sys, torch
        from metaprobe import io
        t = torch.ones(64 * 1024 * 1024 // 4)   # 64 MB, written tensor by tensor
        print("go", flush=True)
        while True:
            io.save({"a": t, "b": t.clone()}, sys.argv[1])
    """
    target = tmp_path / "big.st"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(target)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "go"
    import time
    deadline = time.time() + 60
    while time.time() < deadline and not [n for n in _leftovers(tmp_path) if n.startswith(".big.st.tmp-")]:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    left = _leftovers(tmp_path)
    if not left:
        pytest.skip("the child never was caught mid-write")
    assert all(n.startswith(f".big.st.tmp-{proc.pid}-") for n in left), left
    io.save({"x": torch.ones(1)}, target)
    assert _leftovers(tmp_path) == []


# --- errors that name things ---------------------------------------------------------------------------------

def test_a_non_utf8_index_is_a_format_error_naming_the_file(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_bytes(b'{"weight_map": {"a\xff": "x.safetensors"}}')
    with pytest.raises(metaprobe.FormatError, match=r"model\.safetensors\.index\.json.*byte 18 \(0xff\) is not "
                                                    r"valid UTF-8"):
        io.open_checkpoint(tmp_path)


def test_a_self_looping_symlink_is_the_loop(tmp_path):
    os.symlink("model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(metaprobe.IoError, match="Too many levels of symbolic links"):
        io.open_checkpoint(tmp_path)
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(metaprobe.IoError, match=r"loop.*Too many levels of symbolic links"):
        io.load(tmp_path / "loop")


def test_an_unreadable_checkpoint_directory_is_the_permission_error(tmp_path):
    # Root ignores mode bits, so the check runs as 'nobody' in a child (skipped where that is impossible).
    base = Path(__import__("tempfile").mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        ck = base / "ck"
        ck.mkdir()
        io.save({"w": torch.ones(2)}, ck / "model.safetensors")
        os.chmod(ck, 0o000)
        code = """
            import os, sys
            import metaprobe
            from metaprobe import io
            if os.getuid() == 0:  # imported as root, then the open runs as nobody
                os.setgid(65534); os.setuid(65534)
            try:
                io.open_checkpoint(sys.argv[1])
            except metaprobe.IoError as exc:
                print("IoError:", exc); sys.exit(0)
            sys.exit(5)
        """
        res = _child(code, str(ck))
        if res.returncode != 0 and ("ModuleNotFoundError" in res.stderr or "Permission denied" in res.stderr
                                    and "IoError" not in res.stdout):
            pytest.skip(f"cannot import metaprobe as an unprivileged user here: {res.stderr[-300:]}")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "Permission denied" in res.stdout and "holds neither" not in res.stdout
    finally:
        os.chmod(base / "ck", 0o755)
        __import__("shutil").rmtree(base)


def test_a_key_that_is_not_utf8_encodable_is_an_invalid_argument_naming_it(tmp_path):
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"tensors: key: 'a\\udcff'.*UTF-8"):
        io.save({"a\udcff": torch.ones(1)}, tmp_path / "x.st")
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"metadata: key"):
        io.save({"a": torch.ones(1)}, tmp_path / "x.st", metadata={"\udcff": "v"})
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"path"):
        io.save({"a": torch.ones(1)}, str(tmp_path / "x\udcff.st"))
    assert not list(tmp_path.iterdir())


def test_cannot_open_for_writing_carries_the_os_reason(tmp_path):
    with pytest.raises(metaprobe.IoError, match=r"no/such/x\.jsonl.*for writing: No such file or directory"):
        metaprobe._core.probes.write_jsonl([], str(tmp_path / "no" / "such" / "x.jsonl")) \
            if hasattr(metaprobe._core, "probes") and hasattr(metaprobe._core.probes, "write_jsonl") else \
            metaprobe.probes.ProbeSet([]).to_jsonl(tmp_path / "no" / "such" / "x.jsonl")


# --- the CLI shell -------------------------------------------------------------------------------------------

cli = metaprobe_cli()
needs_cli = pytest.mark.skipif(cli is None, reason="no C++ metaprobe tool beside this _core")


@needs_cli
def test_bare_metaprobe_prints_help_and_exits_2_like_the_python_wrapper():
    res = subprocess.run([str(cli)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "metaprobe" in res.stderr and res.stdout == ""
    from metaprobe import cli as pycli
    assert pycli.main([]) == 2
    ok = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "divergence" in ok.stdout


@needs_cli
@pytest.mark.parametrize("argv", [["nope"], ["divergence"], ["divergence", "a", "b", "--no-such-flag"]])
def test_usage_errors_are_one_line_and_exit_2(argv):
    res = subprocess.run([str(cli), *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metaprobe: error: "), res.stderr


@needs_cli
@pytest.mark.parametrize("config", [
    {"probes": {"n_per_cell": "1"}},
    {"stages": [{"name": 5}]},
    {"output": 5},
    [1, 2],
    "not json {",
])
def test_a_bad_run_config_is_one_error_line_never_an_abort(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    res = subprocess.run([str(cli), "run", str(path), "-q"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode in (1, 2), (res.returncode, res.stderr)  # never 134 (abort) or a signal
    lines = [ln for ln in res.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("metaprobe"), res.stderr
    assert "terminate called" not in res.stderr
