"""Lessons 24 (linear attention) and 25 (streaming attention with sinks): each criterion asserted on
the numbers the lesson wrote to result.json (same scheme as tests/test_lessons.py). Times are only
checked for being measured, never for their size (no timed tests)."""
from __future__ import annotations

import os
import sys

import numpy as np
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
    # measured, never judged by size (no timed tests): the time slopes are only checked to exist
    assert all(np.isfinite(slopes[f"{kind}, {p}"]) for kind in ("softmax", "linear")
               for p in ("forward", "forward + backward"))
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


def test_25_streaming_attention_sinks(tmp_path):
    proc, r = run_lesson("25_streaming_attention_sinks", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["mask_equal"] and v["same_columns"]
    assert v["cache_sizes"] == [min(t + 1, 6) for t in range(12)]     # W = 4 + s = 2 keys at most
    assert max(v["cached_err"], v["hand_err"]) < 1e-10
    assert set(v["cached_errs"]) == set(v["hand_errs"]) == {"absolute", "cache"}   # both numberings
    spans = v["span_loss"]
    window, cache_sinks = spans["window 32, no sinks"], spans["window 28 + 4 sinks (cache positions)"]
    far, inside = "257-512", "4-32"
    assert spans["full attention"][inside] < 0.1                        # learnt, at its training length
    assert abs(window[far] - window[inside]) < 0.05                     # a window streams
    assert abs(cache_sinks[far] - cache_sinks[inside]) < 0.05          # so do sinks at cache positions
    # full attention at rotary distances 16x those trained on breaks down (the reference)
    assert spans["full attention"][far] > window[far] + 0.5
    # the printed verdict on sinks follows the paired difference and its standard error
    gain, se = v["sink_gain"]
    assert v["sinks_helped"] == (gain > 2 * se)
    assert ("helped: it removed" in proc.stdout) == v["sinks_helped"]
    cost, se = v["absolute_sink_cost"]
    if cost > 2 * se:
        assert "a distance never seen in training" in proc.stdout and v["absolute_sink_period"] is not None
    # attention weights on position 0: per layer and head, each a share in [0, 1]
    heads = [m for per_head in v["mass_on_first"].values() for m in per_head]
    assert all(0 <= m <= 1 for m in heads)
    assert v["has_sink"] == (max(heads) > 3 * v["uniform_mass"])
    assert ("this model has a sink head" in proc.stdout) == v["has_sink"]
    assert len(v["excess_per_position"]["full attention"]) == 512 - 3
    assert r["figures"] == ["streaming.png"]
