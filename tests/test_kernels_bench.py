"""The benchmark's command line: usage, rejected arguments, and the report a quick run writes.
(Nothing here is timed; --quick only checks that the harness works end to end.)"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def bench(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "tinyattn.bench", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def test_help_lists_the_options():
    res = bench("--help")
    assert res.returncode == 0
    for flag in ("--threads", "--repeats", "--workloads", "--quick", "--out-dir"):
        assert flag in res.stdout


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threads", "two"], ["--workloads", "9"],
                                  ["--repeats", "-1"], ["--providers", "jax"], ["--bogus"]])
def test_bad_arguments_exit_2_with_usage(args):
    res = bench(*args)
    assert res.returncode == 2
    assert "usage: python -m tinyattn.bench" in res.stderr


def test_quick_run_writes_a_report_with_the_expected_keys(tmp_path):
    pytest.importorskip("torch")
    res = bench("--quick", "--workloads", "1", "5", "--out-dir", str(tmp_path), "--no-plot")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["threads"] == 2 and report["quick"] is True and report["dtype"] == "float32"
    assert set(report["workloads"]) == {"lstm", "overhead"}
    for entry in report["workloads"].values():
        assert set(entry["results"]) == {"numba", "numpy", "torch"}
        for res_p in entry["results"].values():
            assert len(res_p["runs_s"]) == 2 and res_p["median_s"] > 0
        assert entry["ratio_numba_to_torch"] > 0 and entry["ratio_numpy_to_torch"] > 0
    assert "lstm" in res.stdout and "numba/torch" in res.stdout
