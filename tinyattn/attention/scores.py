"""Score functions: how well each query matches each key.

Every score maps queries q of shape (..., Tq, d) and keys k of shape (..., Tk, d) to a matrix of
scores s of shape (..., Tq, Tk): row i says how much query i "likes" each key j. Leading axes
(batch, heads) broadcast. Learnable weights are passed in as Tensors (functional style), with
PyTorch's ``(out_features, in_features)`` layout wherever a weight acts like a Linear layer.

    dot            s_ij = q_i · k_j
    scaled dot     s_ij = q_i · k_j / √d                          (Vaswani et al., 2017)
    general        s_ij = q_iᵀ W k_j                              (Luong et al., 2015)
    additive       s_ij = vᵀ tanh(W_q q_i + W_k k_j + b)          (Bahdanau et al., 2015)
    cosine         s_ij = q_i · k_j / (‖q_i‖ ‖k_j‖)
    euclidean      s_ij = -‖q_i - k_j‖²   (or -‖q_i - k_j‖)
    concat-sigmoid a_i  = σ(W_a [v_i ; v_{i-1}] + b)              (doc 000 §3.2, self-scoring)
"""
from __future__ import annotations

import math
import numbers

from .. import ops
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._checks import as_tensor, check_min_ndim, check_queries_keys


def _keys_t(k):
    """kᵀ over the last two axes: (..., Tk, d) -> (..., d, Tk)."""
    return ops.swapaxes(k, -1, -2)


@register_op("attention.dot_score")
def dot_score(q, k):
    """Dot-product score s_ij = q_i · k_j.

    q: (..., Tq, d), k: (..., Tk, d) -> s: (..., Tq, Tk), computed as one matrix product q kᵀ.
    """
    q, k = as_tensor(q, "dot_score", "q"), as_tensor(k, "dot_score", "k")
    check_queries_keys("dot_score", q, k)
    return q @ _keys_t(k)


@register_op("attention.scaled_dot_score")
def scaled_dot_score(q, k, scale=None):
    """Scaled dot-product score s_ij = q_i · k_j · scale, with scale = 1/√d by default.

    Why √d: if the entries of q and k are independent with variance 1, q·k has variance d, so
    dividing by √d keeps the scores (and hence the softmax) out of saturation as d grows.
    q: (..., Tq, d), k: (..., Tk, d) -> (..., Tq, Tk).
    """
    q, k = as_tensor(q, "scaled_dot_score", "q"), as_tensor(k, "scaled_dot_score", "k")
    check_queries_keys("scaled_dot_score", q, k)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0   # d = 0: the scores are 0
    # Scale the queries (Tq x d numbers) rather than the scores (Tq x Tk): same result, less work.
    return (q * scale) @ _keys_t(k)


@register_op("attention.general_score")
def general_score(q, k, W):
    """General (bilinear) score s_ij = q_iᵀ W k_j  (Luong's "general").

    q: (..., Tq, dq), k: (..., Tk, dk), W: (dq, dk) -> (..., Tq, Tk).
    Computed as (q W) kᵀ: the bracket costs Tq·dq·dk, far less than forming W k_j per pair.
    """
    name = "general_score"
    q, k, W = as_tensor(q, name, "q"), as_tensor(k, name, "k"), as_tensor(W, name, "W")
    check_queries_keys(name, q, k, same_width=False)
    if W.ndim != 2 or W.shape != (q.shape[-1], k.shape[-1]):
        raise ValueError(f"{name}: W must have shape (dq, dk) = ({q.shape[-1]}, {k.shape[-1]}) for "
                         f"queries {tuple(q.shape)} and keys {tuple(k.shape)}; got {tuple(W.shape)}.")
    return (q @ W) @ _keys_t(k)


@register_op("attention.additive_score")
def additive_score(q, k, W_q, W_k, v, bias=None):
    """Additive (Bahdanau) score s_ij = vᵀ tanh(W_q q_i + W_k k_j + b).

    q: (..., Tq, dq), k: (..., Tk, dk), W_q: (h, dq), W_k: (h, dk), v: (h,), bias: (h,) or None
    -> (..., Tq, Tk).

    The projections are done once per query and once per key ((..., Tq, h) and (..., Tk, h)), then
    broadcast-added as (..., Tq, 1, h) + (..., 1, Tk, h). The tanh of that (..., Tq, Tk, h) block
    is the one thing that must exist in full: tanh does not distribute over the sum.
    """
    name = "additive_score"
    q, k = as_tensor(q, name, "q"), as_tensor(k, name, "k")
    W_q, W_k, v = as_tensor(W_q, name, "W_q"), as_tensor(W_k, name, "W_k"), as_tensor(v, name, "v")
    check_queries_keys(name, q, k, same_width=False)
    h = v.shape[0] if v.ndim == 1 else None
    if h is None or W_q.shape != (h, q.shape[-1]) or W_k.shape != (h, k.shape[-1]):
        raise ValueError(f"{name}: expected v: (h,), W_q: (h, dq), W_k: (h, dk) (PyTorch Linear "
                         f"layout, out x in) for queries {tuple(q.shape)} and keys {tuple(k.shape)}; "
                         f"got v {tuple(v.shape)}, W_q {tuple(W_q.shape)}, W_k {tuple(W_k.shape)}.")
    pq = q @ W_q.T                                   # (..., Tq, h)
    if bias is not None:
        bias = as_tensor(bias, name, "bias")
        if bias.shape != (h,):
            raise ValueError(f"{name}: bias must have shape ({h},), got {tuple(bias.shape)}.")
        pq = pq + bias                               # add once per query, not once per pair
    pk = k @ W_k.T                                   # (..., Tk, h)
    hidden = ops.tanh(ops.unsqueeze(pq, -2) + ops.unsqueeze(pk, -3))   # (..., Tq, Tk, h)
    return hidden @ v                                # (..., Tq, Tk)


@register_op("attention.cosine_score")
def cosine_score(q, k, eps=1e-8):
    """Cosine similarity s_ij = q_i · k_j / (max(‖q_i‖, eps) · max(‖k_j‖, eps)), in [-1, 1].

    q: (..., Tq, d), k: (..., Tk, d) -> (..., Tq, Tk). Each vector is normalised once
    (Tq + Tk norms), then one matrix product. ``eps`` keeps an all-zero vector at score 0
    instead of 0/0.
    """
    q, k = as_tensor(q, "cosine_score", "q"), as_tensor(k, "cosine_score", "k")
    check_queries_keys("cosine_score", q, k)
    return _unit_vectors(q, eps) @ _keys_t(_unit_vectors(k, eps))


def _unit_vectors(x, eps):
    """x / max(‖x‖, eps) along the last axis.

    max(‖x‖, eps) is taken as sqrt(max(‖x‖², eps²)): the same number, but an all-zero vector gets
    a finite gradient (sqrt's derivative is never taken at 0, where 0 * inf would be NaN). And x
    is first divided by m = max(max_i |x_i|, eps), a constant per vector, so that x² cannot
    overflow (float32 vectors of size 1e20 have cosine 1, not 0/inf): m cancels, since
    m · sqrt(max(‖x/m‖², (eps/m)²)) = sqrt(max(‖x‖², eps²)), so it needs no gradient."""
    xp = get_array_module(x.array)
    a = x.array
    m = (xp.abs(a).max(axis=-1, keepdims=True) if a.shape[-1]
         else xp.zeros(a.shape[:-1] + (1,), a.dtype))
    m = xp.maximum(m, eps).astype(a.dtype)
    xs = x / m
    return xs / ops.sqrt(ops.maximum((xs * xs).sum(axis=-1, keepdims=True), (eps / m) ** 2))


@register_op("attention.euclidean_score")
def euclidean_score(q, k, squared=True, eps=1e-12):
    """Negative Euclidean distance: s_ij = -‖q_i - k_j‖² (squared=True) or -‖q_i - k_j‖.

    Near keys score high, far keys low (doc 004 §3.2). q: (..., Tq, d), k: (..., Tk, d)
    -> (..., Tq, Tk). Expanded as ‖q‖² - 2 q·k + ‖k‖², so no (Tq, Tk, d) difference tensor is
    built. Rounding can leave a tiny negative ‖q - k‖²; for the unsquared distance we take
    √max(d², eps), whose gradient stays finite when a query equals a key (where the true
    distance has a kink).
    """
    q, k = as_tensor(q, "euclidean_score", "q"), as_tensor(k, "euclidean_score", "k")
    check_queries_keys("euclidean_score", q, k)
    qq = (q * q).sum(axis=-1, keepdims=True)                 # (..., Tq, 1)
    kk = ops.swapaxes((k * k).sum(axis=-1, keepdims=True), -1, -2)   # (..., 1, Tk)
    d2 = qq - 2 * (q @ _keys_t(k)) + kk
    if squared:
        return -d2
    return -ops.sqrt(ops.maximum(d2, eps))


@register_op("attention.concat_sigmoid_score")
def concat_sigmoid_score(values, W_a, b=None):
    """Doc 000 §3.2: a gate per position from the position and its predecessor,
    a_i = σ(W_a [v_i ; v_{i-1}] + b), with v_{-1} = 0 (the first position has no predecessor).

    values: (..., T, d), W_a: (2d,) or (1, 2d) (a Linear(2d, 1) weight), b: scalar or (1,) or None
    -> a: (..., 1, T), the weights one summary query gives the T positions, so that
    ``a @ values`` is h = Σ_i a_i v_i of shape (..., 1, d). The weights are independent gates in
    (0, 1), not a distribution: they need not sum to 1.

    W_a [v_i ; v_{i-1}] = W_a[:d]·v_i + W_a[d:]·v_{i-1}: we project every v once with each half
    and shift the second projection by one step instead of building the (T, 2d) concatenation.
    """
    name = "concat_sigmoid_score"
    values, W_a = as_tensor(values, name, "values"), as_tensor(W_a, name, "W_a")
    check_min_ndim(name, "values", values, 2, "(..., T, d)")
    d = values.shape[-1]
    if W_a.ndim == 2 and W_a.shape[0] == 1:
        W_a = ops.reshape(W_a, W_a.shape[1])
    if W_a.shape != (2 * d,):
        raise ValueError(f"{name}: W_a must have shape (2d,) or (1, 2d) = ({2 * d},) for values of "
                         f"feature size d={d} (shape {tuple(values.shape)}); got {tuple(W_a.shape)}.")
    current = values @ W_a[:d]                       # (..., T): W_a[:d] · v_i
    previous = values @ W_a[d:]                      # (..., T): W_a[d:] · v_i, to be shifted
    pad = [(0, 0)] * (previous.ndim - 1) + [(1, 0)]
    previous = ops.pad(previous, pad)[..., :-1]      # position i now holds W_a[d:] · v_{i-1}; v_{-1} = 0
    s = current + previous
    if isinstance(b, numbers.Real):
        s = s + float(b)                             # a plain number keeps the values' dtype
    elif b is not None:
        b = as_tensor(b, name, "b")
        if b.numel() != 1:
            raise ValueError(f"{name}: b must be a single number (shape () or (1,)), got {tuple(b.shape)}.")
        s = s + ops.reshape(b, ())
    return ops.unsqueeze(ops.sigmoid(s), -2)
