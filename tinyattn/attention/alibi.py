"""ALiBi: attention with linear biases (Press, Smith & Lewis, 2022, "Train Short, Test Long").

No position embedding at all: head h adds -m_h · (distance from query to key) to its scores, so
far keys are penalised linearly, more steeply in some heads than in others. The slopes m_h are a
fixed geometric sequence, not learnt:

    n a power of two:  m_h = 2^(-8(h+1)/n),  h = 0..n-1       (n = 8: 1/2, 1/4, ..., 1/256)
    otherwise (the paper's rule): with c the largest power of two below n, take the c slopes for c
    heads, then the first n - c of every other slope for 2c heads (2^(-8(2j+1)/(2c)), j = 0, 1, ...).

The bias is a float tensor to pass as ``attn_mask`` of scaled_dot_product_attention (PyTorch adds a
float mask to the scores). Decision where the paper is silent: the paper is causal and defines the
bias for keys j <= i as -m (i - j); for keys after the query (only seen without a causal mask) we
use the same penalty by distance, -m |i - j|, so the bias is symmetric rather than rewarding the
future. Positions are arguments so a KV cache can ask for the one row of a new token at its offset.
The bias is built from integers and fixed slopes: nothing in it is learnt or differentiated.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, unwrap


def _power_of_two_slopes(n: int) -> list[float]:
    return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]


def alibi_slopes(num_heads: int) -> list[float]:
    """The per-head slopes m_0..m_{n-1} (Python floats) by the paper's rule."""
    if not isinstance(num_heads, (int, np.integer)) or isinstance(num_heads, bool) or num_heads < 1:
        raise ValueError(f"alibi_slopes: num_heads must be a positive int, got {num_heads!r}.")
    n = int(num_heads)
    c = 2 ** int(math.floor(math.log2(n)))
    if c == n:
        return _power_of_two_slopes(n)
    return _power_of_two_slopes(c) + _power_of_two_slopes(2 * c)[0::2][: n - c]


def _int_positions(what, positions, xp):
    p = xp.asarray(unwrap(positions))
    if p.ndim != 1 or p.dtype.kind not in "iu":
        raise ValueError(f"alibi_bias: {what} must be a 1-D array of int positions, got dtype "
                         f"{p.dtype} and shape {tuple(p.shape)}. Use e.g. arange(offset, offset + L).")
    return p


def alibi_bias(num_heads: int, query_positions, key_positions=None, dtype=np.float32) -> Tensor:
    """Additive bias (H, Lq, Lk): bias[h, i, j] = -m_h · |q_pos[i] - k_pos[j]|.

    query_positions: (Lq,) ints (an int L means arange(L)); key_positions defaults to the query
    positions. For cached decoding of the token at position t over keys 0..t: ``alibi_bias(H, [t],
    arange(t + 1))``. Pass the result (broadcasting over the batch) as attn_mask; combine with a
    causal mask by setting masked entries to -inf.
    """
    xp = backend.active_module()
    if isinstance(query_positions, (int, np.integer)) and not isinstance(query_positions, bool):
        query_positions = xp.arange(int(query_positions))
    qp = _int_positions("query_positions", query_positions, xp)
    kp = qp if key_positions is None else _int_positions("key_positions", key_positions, xp)
    slopes = xp.asarray(alibi_slopes(num_heads), dtype=xp.float64)   # a list of host floats: one copy
    distance = abs(qp[:, None] - kp[None, :]).astype(np.float64)               # (Lq, Lk)
    return Tensor((-slopes[:, None, None] * distance[None]).astype(dtype))
