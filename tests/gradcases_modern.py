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
