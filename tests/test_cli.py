"""Command-line entry points reject bad arguments with a usage message and exit status 2.

The lessons' shared parser (lessons/_common.py) and the runner (lessons/run_all.py) are checked
in-process; one lesson is run as a real subprocess to see the exit status itself. The benchmark's
command line is tested in tests/test_kernels_bench.py::test_bad_arguments_exit_2_with_usage, a
lesson with an unknown backend in tests/test_lessons.py::test_bad_arguments_and_missing_cupy.
"""
from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"


def _import(name):
    """Import a module from lessons/ without keeping the thread settings it puts in os.environ
    (they are meant for lesson processes, not for this one)."""
    saved = dict(os.environ)
    sys.path.insert(0, str(LESSONS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(LESSONS))
        os.environ.clear()
        os.environ.update(saved)


def _exit_code_and_stderr(call, capsys):
    with pytest.raises(SystemExit) as stop:
        call()
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--sed", "5"], "unrecognized arguments: --sed 5"),           # a typo is not ignored
    (["--seed", "five"], "argument --seed: invalid int value: 'five'"),
    (["--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
    (["--out"], "argument --out: expected one argument"),
])
def test_lesson_arguments(argv, says, capsys, tmp_path):
    common = _import("_common")
    code, err = _exit_code_and_stderr(lambda: common.Lesson(1, "test", argv=argv), capsys)
    assert code == 2
    assert err.startswith("usage: ") and says in err


def test_lesson_out_must_not_be_a_file(capsys, tmp_path):
    common = _import("_common")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    code, err = _exit_code_and_stderr(lambda: common.Lesson(1, "test", argv=["--out", str(a_file)]),
                                      capsys)
    assert code == 2 and "usage: " in err and "is a file; give a folder" in err
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("argv, says", [
    (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
    (["--timeout", "soon"], "argument --timeout: invalid int value: 'soon'"),
    (["99"], "no lesson matches 99"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_runner_arguments(argv, says, capsys, tmp_path):
    run_all = _import("run_all")
    code, err = _exit_code_and_stderr(lambda: run_all.main(argv + ["--out", str(tmp_path)]), capsys)
    assert code == 2
    assert err.startswith("usage: ") and says in err
    assert not any(tmp_path.iterdir())                  # nothing was run or written


def test_a_lesson_script_with_a_typo_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(LESSONS / "01_tensors_and_autograd.py"),
                           "--out", str(tmp_path), "--seeed", "3"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "usage: " in proc.stderr and "unrecognized arguments: --seeed 3" in proc.stderr
    assert not (tmp_path / "result.json").exists()
