"""Lessons 24 (linear attention) and 25 (streaming attention with sinks): each criterion asserted on
the numbers the lesson wrote to result.json (same scheme as tests/test_lessons.py). Times are only
checked for being measured and for their log-log slopes lying in broad ranges (no timed tests)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lessons import assert_passed, run_lesson  # noqa: E402

pytestmark = pytest.mark.slow


def test_24_linear_attention(tmp_path):
    proc, r = run_lesson("24_linear_attention", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert max(v["reorder_err"], v["library_err"], *v["causal_errs"].values()) < 1e-12
    # the linear decoder's cache is 2 layers x 4 heads x (8 x 8 + 8) float64, at every length
    assert set(v["cache_bytes"]["linear"].values()) == {2 * 4 * (8 * 8 + 8) * 8}
    assert v["cache_bytes"]["full"] == {"16": 16 * 1024, "64": 64 * 1024, "256": 256 * 1024}
    assert all(t > 0 for times in v["timings"].values() for t in times)
    slopes = v["slopes"]
    assert all(1.5 <= slopes[f"softmax, {p}"] <= 2.5 for p in ("forward", "forward + backward"))
    assert all(0.6 <= slopes[f"linear, {p}"] <= 1.4 for p in ("forward", "forward + backward"))
    recall = v["recall"]
    assert min(recall["softmax, d = 16"].values()) >= 0.95
    lin = recall["linear, d = 16"]
    assert lin["2"] >= 0.95 and lin["64"] <= recall["softmax, d = 16"]["64"] - 0.2
    assert lin["64"] < lin["16"] < lin["2"]                            # worse as the list grows
    assert recall["linear, d = 8"]["64"] < lin["64"] < recall["linear, d = 32"]["64"]
    # the explanation: the weight on the asked pair falls with n for linear attention, and what it
    # recalls depends on n / d far more than on n
    w = v["weight_on_answer"]["linear, d = 16"]
    assert w["64"] < 0.5 * w["8"] and v["weight_on_answer"]["softmax, d = 16"]["64"] > 0.5
    assert max(v["per_dim_spread"].values()) < max(v["by_length_spread"].values())
    assert r["figures"] == ["linear_attention.png"]
