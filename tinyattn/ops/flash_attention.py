"""memory_efficient_attention: softmax(q kᵀ · scale + mask) v without the (Tq, Tk) matrix.

Ordinary attention builds the scores for every (query, key) pair: for one head of length 16384
that is 16384² floats = 1 GiB, and backward keeps it (and the probabilities) alive. Here the
forward keeps only the output and one number per query, the log-sum-exp of its scores; backward
rebuilds the probabilities a tile at a time from q, k and that number ("recomputation"), so memory
grows like T, not T². The kernels (``attention_forward`` / ``attention_backward``) are a plain
NumPy twin working a block of queries at a time, and a compiled tiled "online softmax" one.

Masks, all optional and combined: ``causal`` (query i sees keys j <= i, top-left aligned as
PyTorch's is_causal), ``key_lengths`` (per sequence, keys j >= length are padding) and ``window``
(only |i - j| <= window: cost O(T · window) instead of O(T²)). A query with no visible key gets
output 0 and gradient 0.
"""
from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module


@register_op("memory_efficient_attention")
class MemoryEfficientAttention(Function):
    """q (BH, Tq, D), k (BH, Tk, D), v (BH, Tk, Dv) -> (BH, Tq, Dv); static masks and scale."""

    @staticmethod
    def forward(ctx, q, k, v, key_lengths=None, causal=False, scale=1.0, window=None):
        out, lse = kernels.get("attention_forward", q)(q, k, v, key_lengths, causal, scale, window)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.masks = (key_lengths, causal, scale, window)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, lse = ctx.saved
        return kernels.get("attention_backward", q)(g, q, k, v, out, lse, *ctx.masks)


def memory_efficient_attention(q, k, v, causal=False, key_lengths=None, scale=None, window=None):
    """Scaled dot-product attention in memory O(T) (see the module docstring).

    q: Tensor (..., Tq, D); k: (..., Tk, D); v: (..., Tk, Dv), the same leading axes (e.g. batch,
    heads). causal: bool. key_lengths: ints of shape (B,) for leading axes (B, ...) - keys at
    positions >= key_lengths[b] are ignored - or of the full leading shape. scale: default
    1 / sqrt(D). window: int >= 0 or None. Returns Tensor (..., Tq, Dv)."""
    q, k, v = (t if isinstance(t, Tensor) else Tensor(t) for t in (q, k, v))
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"memory_efficient_attention: q, k, v must have the same rank >= 2, got "
                         f"shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}.")
    lead, (tq, d), (tk, dk), dv = q.shape[:-2], q.shape[-2:], k.shape[-2:], v.shape[-1]
    if k.shape[:-2] != lead or v.shape[:-2] != lead or dk != d or v.shape[-2] != tk:
        raise ValueError(
            f"memory_efficient_attention: shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}. Expected q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with the "
            f"same leading axes.")
    if len({q.dtype, k.dtype, v.dtype}) != 1:
        raise TypeError(f"memory_efficient_attention: q, k, v have dtypes {q.dtype}, {k.dtype}, "
                        f"{v.dtype}; convert them to one.")
    bh = math.prod(lead)
    xp = get_array_module(q.data)
    if key_lengths is None:
        lengths = xp.full(bh, tk, dtype=np.int64)
    else:
        kl = key_lengths.data if isinstance(key_lengths, Tensor) else xp.asarray(key_lengths)
        if kl.dtype.kind not in "iu":
            raise TypeError(f"memory_efficient_attention: key_lengths must be integers, got dtype "
                            f"{kl.dtype}.")
        # checked on the device: one bool comes back (the numbers only for the message)
        if kl.size and bool(((kl < 0) | (kl > tk)).any()):
            raise ValueError(f"memory_efficient_attention: key_lengths must lie in [0, Tk={tk}], "
                             f"got min {int(kl.min())} max {int(kl.max())}.")
        if tuple(kl.shape) != tuple(lead[:kl.ndim]) or kl.ndim == 0:
            raise ValueError(
                f"memory_efficient_attention: key_lengths of shape {tuple(kl.shape)} must match the "
                f"first leading axes of q {tuple(lead)}, e.g. ({lead[0] if lead else 1},) for one "
                f"length per batch element.")
        kl = kl.reshape(kl.shape + (1,) * (len(lead) - kl.ndim))
        lengths = xp.ascontiguousarray(xp.broadcast_to(kl, lead).reshape(bh).astype(np.int64))
    if window is not None and (int(window) != window or window < 0):
        raise ValueError(f"memory_efficient_attention: window must be a whole number >= 0 or None, "
                         f"got {window!r}.")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    flat = [t.reshape(bh, *t.shape[-2:]) for t in (q, k, v)]
    out = MemoryEfficientAttention.apply(*flat, key_lengths=lengths, causal=bool(causal),
                                         scale=scale, window=None if window is None else int(window))
    return out.reshape(*lead, tq, dv)
