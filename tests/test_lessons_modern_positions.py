"""Lesson 22 (rotary and ALiBi positions): its criterion asserted on the numbers the lesson wrote to
result.json (same scheme as tests/test_lessons.py), plus the consistency of those numbers."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lessons import assert_passed, run_lesson  # noqa: E402

pytestmark = pytest.mark.slow


def test_22_rope_and_alibi(tmp_path):
    proc, r = run_lesson("22_rope_and_alibi", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["rope_err"] < 1e-12 and v["offset_spread"] < 1e-12 and v["norm_change"] < 1e-12
    assert v["slopes_equal"] and v["bias_equal"]
    acc = v["accuracy"]
    assert set(acc) == {f"K={k} {s}" for k in (1, 3) for s in ("learned", "sinusoid", "rope", "alibi")}
    for name, by_length in acc.items():
        assert set(by_length) == {"1", "2", "4"}, name
        assert all(0.0 <= a <= 1.0 for a in by_length.values()), name
    for s in ("learned", "sinusoid", "rope", "alibi"):
        assert acc[f"K=1 {s}"]["1"] >= 0.95, s
    for name, by_length in v["loss"].items():                  # the loss agrees with the accuracy
        assert set(by_length) == {"1", "2", "4"}, name
        if acc[name]["1"] >= 0.95:
            assert by_length["1"] < 0.3 and by_length["4"] > by_length["1"], name
    for k in (1, 3):
        for s in ("learned", "sinusoid"):
            assert acc[f"K={k} {s}"]["1"] >= 0.95 and acc[f"K={k} {s}"]["4"] <= 0.5, (k, s)
    assert acc["K=1 alibi"]["4"] >= 0.9
    assert v["learned_trained_rows"] >= 0.95 and v["learned_untrained_rows"] <= 0.3
    # the per-position accuracies (positions K..63 at length 64) average to the 4x accuracy
    for name, pp in v["per_position_4x"].items():
        k = int(name[2])
        assert len(pp) == 64 - k and np.mean(pp) == pytest.approx(acc[name]["4"], abs=1e-12), name
    # the recorded attention maps reproduce what attention computed (float32), and the even-attention
    # baseline is the formula: queries t at the last 16 positions put (t - 15) / (t + 1) 16 or more back
    assert v["map_err"] < 1e-4
    for name, by_length in v["far_attention"].items():          # 2 layers x 4 heads of shares
        for shares in by_length.values():
            assert np.shape(shares) == (2, 4) and all(0 <= x <= 1 + 1e-6 for h in shares for x in h), name
    for m in ("2", "4"):
        T = int(m) * 16
        assert v["uniform_far"][m] == pytest.approx(np.mean([(t - 15) / (t + 1) for t in range(T - 16, T)]))
    assert r["figures"] == ["positions_extrapolation.png"]
