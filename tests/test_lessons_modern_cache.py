"""Lessons 21 (the KV cache) and 23 (grouped-query attention): each criterion asserted on the numbers
the lesson wrote to result.json (same scheme as tests/test_lessons.py). Times are only checked for
being measured, never for their size (no timed tests)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lessons import assert_passed, run_lesson  # noqa: E402

pytestmark = pytest.mark.slow


def test_21_kv_cache(tmp_path):
    proc, r = run_lesson("21_kv_cache", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    # keys and values exactly; the logits to rounding (BLAS groups a sum by its number of terms)
    assert v["unchanged_kv"] == 0.0 and v["unchanged_logits"] < 1e-13
    assert max(v["logits_err"], v["hand_cache_err"], v["library_cache_err"]) < 1e-10
    assert all(v["identical"].values()) and len(v["identical"]) == 3
    assert v["batch_equals_alone"] and v["timed_identical"]
    assert v["cache_bytes"] == v["cache_formula"]
    assert v["cache_bytes"][0] == 2 * 2 * 3 * 4 * 20 * 16 * 8            # 2 layers, batch 3, 4 heads, T 20, D 16
    assert v["prefill_vs_decode_cache"] < 1e-5                           # the same keys either way (float32)
    gib = {k: b / 2 ** 30 for k, b in v["real_cache_bytes"].items()}
    assert gib["Llama-2-7B (32 layers, 32 heads of 128)"] == 2.0
    assert set(v["timing"]) == {"with cache", "without cache"}
    assert all(t["total_s"] > 0 for t in v["timing"].values())
    assert r["figures"] == ["kv_cache.png"]


def test_23_grouped_query_attention(tmp_path):
    proc, r = run_lesson("23_grouped_query_attention", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["grouping_err"] < 1e-12
    assert v["cache_ratio"] == {"MHA": 8.0, "GQA": 2.0, "MQA": 1.0}
    # float32, 2 layers, k and v, H_kv heads of 4 features: 64 bytes per KV head
    assert v["cache_bytes_per_token"] == {"MHA": 512.0, "GQA": 128.0, "MQA": 64.0}
    assert v["budget_spread"] < 0.01
    for name, res in v["results"].items():
        assert res["accuracy"] >= 0.95, name
        assert res["loss"] > v["floor"]                     # nobody beats the noise floor
    assert abs(v["floor"] - 0.5650) < 1e-3
    assert v["after_pooling"][1] < 0.5 <= 0.95 <= v["uptrain_curve"][-1][2]
    assert set(v["pooling_vs_scratch"]) == {"50", "100"}
    assert r["figures"] == ["gqa_memory_vs_quality.png"]
