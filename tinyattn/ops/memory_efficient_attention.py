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
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
QUERY_BLOCK = 128   # queries handled together by the plain twin: memory O(QUERY_BLOCK · Tk)


def key_range(i0, i1, n_keys, causal, window):
    """The keys [lo, hi) that queries i0..i1-1 may see: j <= i if causal, |i - j| <= window."""
    lo, hi = 0, n_keys
    if causal:
        hi = min(hi, i1)
    if window is not None:
        lo, hi = max(lo, i0 - window), min(hi, i1 + window)
    return lo, max(lo, hi)


def _allowed(xp, i0, i1, lo, hi, key_lengths, causal, window):
    """Boolean (BH, i1 - i0, hi - lo): may query i see key j?"""
    i = xp.arange(i0, i1)[:, None]
    j = xp.arange(lo, hi)[None, :]
    ok = j < key_lengths[:, None, None]
    if causal:
        ok = ok & (j <= i)
    if window is not None:
        ok = ok & (xp.abs(i - j) <= window)
    return ok


def _probabilities(xp, q_blk, k_blk, lse_blk, ok, scale):
    """P = exp(q kᵀ · scale - logsumexp) where allowed, else 0 (also for rows with no key, whose
    logsumexp is -inf; a NaN one gives NaN where allowed, as the plain path, and 0 elsewhere)."""
    s = (q_blk @ k_blk.transpose(0, 2, 1)) * scale
    seen = (lse_blk != -xp.inf)[:, :, None]
    return xp.exp(xp.where(ok & seen, s - lse_blk[:, :, None], -xp.inf))


def _query_blocks(xp, tq, n_keys, key_lengths, causal, window):
    """The blocks of QUERY_BLOCK queries that see at least one key: (i0, i1, lo, hi, ok) with
    queries i0..i1, the keys lo..hi they may see, and ok the (.., i1 - i0, hi - lo) allowed mask."""
    for i0 in range(0, tq, QUERY_BLOCK):
        i1 = min(tq, i0 + QUERY_BLOCK)
        lo, hi = key_range(i0, i1, n_keys, causal, window)
        if hi > lo:
            yield i0, i1, lo, hi, _allowed(xp, i0, i1, lo, hi, key_lengths, causal, window)


@register_kernel("attention_forward", "numpy")
def attention_forward(q, k, v, key_lengths, causal, scale, window):
    """softmax(q kᵀ · scale + mask) v, one block of QUERY_BLOCK queries at a time.

    q (BH, Tq, D), k (BH, Tk, D), v (BH, Tk, Dv), key_lengths (BH,) ints. Query i may attend to key
    j when j < key_lengths, j <= i (causal) and |i - j| <= window. A block of queries sees all the
    keys it may attend to at once, so an ordinary softmax works; only (BH, QUERY_BLOCK, Tk) scores
    exist at any time, never (BH, Tq, Tk). Rows with no allowed key give 0.
    Returns out (BH, Tq, Dv) and lse (BH, Tq) = log Σ_j exp(score), -inf for empty rows."""
    xp = get_array_module(q)
    bh, tq, _ = q.shape
    out = xp.zeros((bh, tq, v.shape[2]), dtype=q.dtype)
    lse = xp.full((bh, tq), -xp.inf, dtype=q.dtype)
    for i0, i1, lo, hi, ok in _query_blocks(xp, tq, k.shape[1], key_lengths, causal, window):
        s = xp.where(ok, (q[:, i0:i1] @ k[:, lo:hi].transpose(0, 2, 1)) * scale, -xp.inf)
        m = s.max(axis=2, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(s - m)
        total = e.sum(axis=2, keepdims=True)
        out[:, i0:i1] = (e / xp.where(total == 0, 1, total)) @ v[:, lo:hi]
        with np.errstate(divide="ignore"):
            lse[:, i0:i1] = (m + xp.log(total))[:, :, 0]
    return out, lse


@register_kernel("attention_backward", "numpy")
def attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale, window):
    """Gradients by recomputation: the probabilities are rebuilt block by block from q, k and the
    saved logsumexp instead of being stored. With D_i = Σ_d g[i, d] · out[i, d]:

        P = exp(q kᵀ · scale - lse);   dv = Pᵀ g;   dP = g vᵀ;   dS = P ⊙ (dP - D)
        dq = dS k · scale;   dk = dSᵀ q · scale
    Returns dq, dk, dv shaped like q, k, v."""
    xp = get_array_module(q)
    tq = q.shape[1]
    dq, dk, dv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    d_rows = (g * out).sum(axis=2)
    for i0, i1, lo, hi, ok in _query_blocks(xp, tq, k.shape[1], key_lengths, causal, window):
        p = _probabilities(xp, q[:, i0:i1], k[:, lo:hi], lse[:, i0:i1], ok, scale)
        g_blk = g[:, i0:i1]
        dv[:, lo:hi] += p.transpose(0, 2, 1) @ g_blk
        ds = p * (g_blk @ v[:, lo:hi].transpose(0, 2, 1) - d_rows[:, i0:i1, None])
        ds = xp.where(ok, ds, 0)        # masked keys get nothing, even from a NaN row (0 · NaN)
        dq[:, i0:i1] = (ds @ k[:, lo:hi]) * scale
        dk[:, lo:hi] += (ds.transpose(0, 2, 1) @ q[:, i0:i1]) * scale
    return dq, *padding_keys_zeroed(xp, dk, dv, key_lengths)


def padding_keys_zeroed(xp, dk, dv, key_lengths):
    """dk, dv with exact zeros for the keys j >= key_lengths: a product with a NaN query row
    (0 · NaN) would otherwise give them NaN, though no query may see them."""
    keep = (xp.arange(dk.shape[1])[None, :] < key_lengths[:, None])[:, :, None]
    return xp.where(keep, dk, 0), xp.where(keep, dv, 0)


@register_op("memory_efficient_attention")
class MemoryEfficientAttention(Function):
    """q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> (..., Tq, Dv), the same leading axes;
    static masks and scale. The kernels see the leading axes as one (BH, T, D); the reshapes are
    done here, inside the one op, not as four more ops around it."""

    real_inputs = (0, 1, 2)

    @staticmethod
    def forward(ctx, q, k, v, key_lengths=None, causal=False, scale=1.0, window=None):
        lead = q.shape[:-2]
        flat = [a.reshape(math.prod(lead), *a.shape[-2:]) for a in (q, k, v)]
        out, lse = kernels.get("attention_forward", q)(*flat, key_lengths, causal, scale, window)
        out = out.reshape(*lead, *out.shape[-2:])
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.masks = (key_lengths, causal, scale, window)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, lse = ctx.saved
        flat = [a.reshape(lse.shape[0], *a.shape[-2:]) for a in (g, q, k, v, out)]
        grads = kernels.get("attention_backward", q)(*flat, lse, *ctx.masks)
        return tuple(gr.reshape(a.shape) for gr, a in zip(grads, (q, k, v)))


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
    qs, ks, vs = q.array.shape, k.array.shape, v.array.shape      # plain tuples: cheaper than Size
    lead, (tq, d), (tk, dk), dv = qs[:-2], qs[-2:], ks[-2:], vs[-1]
    if ks[:-2] != lead or vs[:-2] != lead or dk != d or vs[-2] != tk:
        raise ValueError(
            f"memory_efficient_attention: shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}. Expected q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with the "
            f"same leading axes.")
    if len({q.dtype, k.dtype, v.dtype}) != 1:
        raise TypeError(f"memory_efficient_attention: q, k, v have dtypes {q.dtype}, {k.dtype}, "
                        f"{v.dtype}; convert them to one.")
    bh = math.prod(lead)
    xp = get_array_module(q.array)
    if key_lengths is None:
        lengths = xp.full(bh, tk, dtype=np.int64)
    else:
        kl = key_lengths.array if isinstance(key_lengths, Tensor) else xp.asarray(key_lengths)
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
    scale = (1.0 / math.sqrt(d) if d else 1.0) if scale is None else float(scale)   # d = 0: scores 0
    return MemoryEfficientAttention.apply(q, k, v, key_lengths=lengths, causal=bool(causal),
                                          scale=scale, window=None if window is None else int(window))


def apply_checked(q, k, v, causal, scale):
    """The op on Tensors a caller has already checked as ``memory_efficient_attention`` would:
    q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) with the same leading axes and one dtype; no
    key lengths or window, ``scale`` a float (scaled_dot_product_attention's fast path: per call
    it saves the checks it has just made)."""
    qa, tk = q.array, k.array.shape[-2]
    lengths = get_array_module(qa).full(math.prod(qa.shape[:-2]), tk, dtype=np.int64)
    return MemoryEfficientAttention.apply(q, k, v, key_lengths=lengths, causal=bool(causal),
                                          scale=scale, window=None)
