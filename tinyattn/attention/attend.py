"""Putting it together: weights from scores, then the weighted sum of the values.

    context_i = Σ_j w_ij v_j,   i.e.  context = W @ V       W: (..., Tq, Tk), V: (..., Tk, dv)

``attend`` works from any scores with any weighting; ``scaled_dot_product_attention`` is the
Transformer's softmax(q kᵀ / √d + mask) v with PyTorch's exact signature and semantics.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import ops, random
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._checks import (as_tensor, broadcasts_to, check_min_ndim, check_queries_keys, check_values,
                      plain_mask)
from .hard import hard_attention
from .local import local_p_weights
from .masks import causal_mask
from .sparsemax import sparsemax
from .weights import sigmoid_weights, softmax

WEIGHTINGS = {
    "softmax": softmax,            # options: temperature
    "sigmoid": sigmoid_weights,
    "sparsemax": sparsemax,
    "hard": hard_attention,        # options: gradient ('none' | 'straight_through'), temperature
    "local_p": local_p_weights,    # options: positions, window (both required)
}


@register_op("attention.attend")
def attend(scores, values, mask=None, weights="softmax", **options):
    """context, weights = attend(scores, values, mask, weights="softmax")

    scores: (..., Tq, Tk); values: (..., Tk, dv); mask: bool broadcastable to scores, True = may
    attend. ``weights`` names how scores become weights: 'softmax', 'sigmoid', 'sparsemax', 'hard'
    or 'local_p' (see WEIGHTINGS; extra keyword ``options`` go to that function), or is a callable
    ``f(scores, mask=mask, **options)``.
    Returns (context (..., Tq, dv), weights (..., Tq, Tk)), context = weights @ values.
    """
    scores = as_tensor(scores, "attend", "scores")
    values = as_tensor(values, "attend", "values")
    if callable(weights):
        weigh = weights
    elif weights in WEIGHTINGS:
        weigh = WEIGHTINGS[weights]
    else:
        raise ValueError(f"attend: unknown weights {weights!r}; choose one of {sorted(WEIGHTINGS)} "
                         f"or pass a function f(scores, mask=None, ...).")
    check_values("attend", scores.shape, values)
    w = weigh(scores, mask=mask, **options)
    return w @ values, w


def _check_dropout(dropout_p):
    if not isinstance(dropout_p, numbers.Real) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p!r}.")


def _repeat_heads(x, groups):
    """(..., H, T, d) -> (..., H·groups, T, d), head h repeated ``groups`` times in a row
    (torch.repeat_interleave along the head axis): query head i reads key/value head i // groups."""
    if groups == 1:
        return x
    *lead, H, T, d = x.shape
    x = ops.unsqueeze(x, -3)                                         # (..., H, 1, T, d)
    x = ops.broadcast_to(x, (*lead, H, groups, T, d))
    return ops.reshape(x, (*lead, H * groups, T, d))


def _memory_efficient(q, k, v, is_causal, scale):
    """The streaming attention of ``tinyattn.ops.memory_efficient_attention`` (never holds the L x S
    matrix), when the inputs fit its contract (same leading axes, one dtype); else None."""
    qa, ka, va = q.array, k.array, v.array
    if not (qa.shape[:-2] == ka.shape[:-2] == va.shape[:-2] and qa.dtype == ka.dtype == va.dtype):
        return None
    try:
        from ..ops import memory_efficient_attention as streaming  # noqa: PLC0415 - optional fast path
    except ImportError:
        return None
    # sdpa has checked what memory_efficient_attention would (ranks, S and E agree; the leading
    # axes and the dtype just above): the op is applied directly, without checking it all again
    return streaming.apply_checked(q, k, v, causal=is_causal, scale=scale)


# From this many score entries per (batch, head) on, when nobody asks for the weights and there is
# no dropout and no explicit mask, sdpa hands over to the streaming kernel: same numbers, memory
# O(L + S) instead of O(L·S). Below it too when no graph is recorded (no_grad, e.g. generation):
# then one fused op replaces five (scale, transpose, two products, softmax), and there is no
# backward whose speed would depend on the choice.
STREAMING_MIN_SCORES = 1024 * 1024
# With a causal mask the streaming kernel skips the tiles above the diagonal, which the explicit
# path computes and then masks: recorded forward+backward at one thread on an AMD EPYC, float32,
# (8, 4, 192, 32) 12.3 -> 7.5 ms, (2, 4, 512, 64) 27.5 -> 17.6 ms; equal at 128 x 128, slower
# below. Without the mask the two paths are within ~5% of each other up to 512 x 512.
CAUSAL_STREAMING_MIN_SCORES = 192 * 192


def _recording(*tensors):
    return is_grad_enabled() and any(t.requires_grad for t in tensors)


@register_op("attention.scaled_dot_product_attention")
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False, *, return_weights=False):
    """softmax(q kᵀ · scale + mask) v, exactly as torch.nn.functional.scaled_dot_product_attention.

    query: (N, ..., Hq, L, E); key: (N, ..., H, S, E); value: (N, ..., H, S, Ev)
    -> output (N, ..., Hq, L, Ev); with ``return_weights=True`` -> (output, weights (N, ..., Hq, L, S)).

    attn_mask: broadcastable to (N, ..., L, S). Boolean: True = this query may attend to this key.
               Float: added to the scores (use -inf to forbid). It may require grad (e.g. a learnt
               position bias). Not allowed together with is_causal, as in PyTorch.
    dropout_p: probability of zeroing each weight (survivors scaled by 1/(1 - p)); random draws
               come from ``tinyattn.random.generator()``. Pass 0.0 when evaluating.
    is_causal: query i sees keys 0..i (the top-left aligned lower triangle, PyTorch's convention
               when L != S).
    scale:     defaults to 1/√E.
    enable_gqa: grouped-query attention: Hq may be a multiple of H, and query head i uses key/value
               head i // (Hq/H).

    A query row whose keys are all masked gets weights 0, output 0 and zero gradient, never NaN.
    PyTorch's sdpa does the same since version 2.5 (older versions, and a plain masked
    torch.softmax, give NaN there).
    The returned weights are the ones that multiplied V, i.e. after dropout when dropout_p > 0.
    Long sequences (L·S >= STREAMING_MIN_SCORES) without attn_mask, dropout or return_weights go
    through ``memory_efficient_attention``, which never builds the (L, S) matrix.
    """
    name = "scaled_dot_product_attention"
    q, k, v = as_tensor(query, name, "query"), as_tensor(key, name, "key"), as_tensor(value, name, "value")
    check_min_ndim(name, "query", q, 2, "(..., L, E)")     # ranks first: shape[-2] needs 2 axes
    check_min_ndim(name, "key", k, 2, "(..., S, E)")
    check_min_ndim(name, "value", v, 2, "(..., S, Ev)")
    if v.array.shape[-2] != k.array.shape[-2]:
        raise ValueError(f"{name}: value must have shape (..., S, Ev) with S = {k.shape[-2]} (the "
                         f"number of keys, key shape {tuple(k.shape)}); got {tuple(v.shape)}.")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{name}: attn_mask and is_causal=True were both given; PyTorch forbids "
                         f"this too. Build one mask (causal_mask(L, S) & your_mask) and pass it as "
                         f"attn_mask.")
    _check_dropout(dropout_p)
    if enable_gqa:
        if q.ndim < 3 or k.ndim < 3 or q.shape[-3] % k.shape[-3] or k.shape[-3] != v.shape[-3]:
            raise ValueError(f"{name}: enable_gqa needs query heads Hq (axis -3 of {tuple(q.shape)}) "
                             f"to be a multiple of the key/value heads H (key {tuple(k.shape)}, "
                             f"value {tuple(v.shape)}).")
        groups = q.shape[-3] // k.shape[-3]
        k, v = _repeat_heads(k, groups), _repeat_heads(v, groups)
    qs, ks = q.array.shape, k.array.shape
    if qs[:-2] != ks[:-2] or qs[-1] != ks[-1]:      # else nothing to check: same axes, same E
        check_queries_keys(name, q, k)
    (L, E), S = qs[-2:], ks[-2]
    # E = 0: every score is the empty sum 0, whatever the scale (PyTorch: uniform weights)
    scale = (1.0 / math.sqrt(E) if E else 1.0) if scale is None else float(scale)

    if (not return_weights and dropout_p == 0.0 and attn_mask is None and L and S and E
            and (L * S >= STREAMING_MIN_SCORES
                 or (is_causal and L * S >= CAUSAL_STREAMING_MIN_SCORES)
                 or not _recording(q, k, v))):
        out = _memory_efficient(q, k, v, is_causal, scale)
        if out is not None:
            return out

    scores = (q * scale) @ ops.swapaxes(k, -1, -2)                # (N, ..., Hq, L, S)
    bool_mask = None
    if is_causal and L and S:             # (no queries or no keys: nothing to mask)
        bool_mask = causal_mask(L, S).array
    elif attn_mask is not None:
        dtype = attn_mask.dtype if hasattr(attn_mask, "dtype") else np.asarray(attn_mask).dtype
        if dtype == np.bool_:
            bool_mask = plain_mask(name, attn_mask, scores.shape)
        elif dtype.kind != "f":
            raise TypeError(f"{name}: attn_mask has dtype {dtype}; it must be boolean (True = may "
                            f"attend) or floating point (added to the scores), as in PyTorch. For a "
                            f"0/1 mask meaning 'may attend' use mask.astype(bool).")
        else:
            bias = as_tensor(attn_mask, name, "attn_mask")
            if not broadcasts_to(bias.shape, scores.shape):
                raise ValueError(f"{name}: attn_mask of shape {tuple(bias.shape)} does not broadcast "
                                 f"to the scores' shape {tuple(scores.shape)} (N, ..., L, S).")
            if bias.dtype != scores.dtype:                          # a float64 mask must not turn
                bias = ops.astype(bias, scores.dtype)               # float32 attention into float64
            scores = scores + bias                                  # -inf entries weigh exactly 0
    w = ops.softmax(scores, axis=-1, mask=bool_mask)
    if dropout_p > 0.0:
        xp = get_array_module(w.array)
        keep = xp.asarray(random.generator().random(w.shape)) >= dropout_p
        w = w * (keep / (1.0 - dropout_p)).astype(w.dtype)
    out = w @ v
    return (out, w) if return_weights else out
