"""Gradient-check cases for the position and efficiency ops of modern attention (issue 19):
rotary embedding, and the ops that follow it in this file."""
from __future__ import annotations

import numpy as np

from tinyattn.attention.rotary import rotary_embedding
from gradcases import GradCase, rnd

CASES = [
    GradCase("attention.rotary_embedding", lambda x: rotary_embedding(x, np.arange(5)),
             lambda: [rnd(2, 5, 6, seed=1)], "positions (T,)"),
    GradCase("attention.rotary_embedding",
             lambda x: rotary_embedding(x, np.array([[3, 4, 5], [10, 11, 12]]), base=100.0),
             lambda: [rnd(2, 2, 3, 4, seed=2)], "per-sequence offsets (N, T), heads axis"),
    GradCase("attention.rotary_embedding",
             lambda x: rotary_embedding(x, np.arange(4)) * x,
             lambda: [rnd(4, 4, seed=3)], "reused input"),
]

from tinyattn.attention.linear_attention import linear_attention  # noqa: E402

CASES += [
    GradCase("attention.linear_attention", lambda q, k, v: linear_attention(q, k, v, causal=True),
             lambda: [rnd(2, 5, 3, seed=11), rnd(2, 5, 3, seed=12, away_from=0.0),
                      rnd(2, 5, 4, seed=13)], "causal prefix sums, elu"),
    GradCase("attention.linear_attention", lambda q, k, v: linear_attention(q, k, v),
             lambda: [rnd(2, 3, 3, seed=14), rnd(1, 6, 3, seed=15), rnd(1, 6, 2, seed=16)],
             "non-causal, broadcast batch, Tq != Tk"),
    GradCase("attention.linear_attention",
             lambda x, v: linear_attention(x, x, v, causal=True, feature_map_kind="relu"),
             lambda: [rnd(4, 3, lo=0.2, hi=1.0, seed=17), rnd(4, 2, seed=18)], "relu, reused q = k"),
]

from tinyattn.attention.sliding_window import sliding_window_attention  # noqa: E402

CASES += [
    GradCase("attention.sliding_window_attention",
             lambda q, k, v: sliding_window_attention(q, k, v, window=3),
             lambda: [rnd(2, 7, 4, seed=21), rnd(2, 7, 4, seed=22), rnd(2, 7, 3, seed=23)],
             "window only: the streaming kernel path"),
    GradCase("attention.sliding_window_attention",
             lambda q, k, v: sliding_window_attention(q, k, v, window=2, sinks=2),
             lambda: [rnd(2, 6, 4, seed=24), rnd(2, 6, 4, seed=25), rnd(2, 6, 3, seed=26)],
             "window + sinks"),
    GradCase("attention.sliding_window_attention",
             lambda q, x: sliding_window_attention(q, x, x, window=3, sinks=1, query_offset=5),
             lambda: [rnd(1, 2, 2, 4, seed=27), rnd(1, 2, 7, 4, seed=28)],
             "decoding offset, key reused as value"),
]
