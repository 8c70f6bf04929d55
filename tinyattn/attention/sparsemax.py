"""Sparsemax (Martins & Astudillo, 2016): the Euclidean projection of the scores onto the simplex.

    sparsemax(z) = argmin_{p ≥ 0, Σp = 1} ‖p - z‖²  =  max(z - τ(z), 0)

where the threshold τ is found by sorting: with z_(1) ≥ z_(2) ≥ ... the support size is
k = max{ k : 1 + k z_(k) > Σ_{r≤k} z_(r) } and τ = (Σ_{r≤k} z_(r) - 1) / k.
Like softmax the weights are ≥ 0 and sum to 1; unlike softmax, keys scoring more than 1 below
the leader get exactly 0. The Jacobian on the support S is I - 1 1ᵀ / |S| (0 off it), so

    dL/dz_j = [j ∈ S] (g_j - mean_{r∈S} g_r).
"""
from __future__ import annotations

from .. import ops
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._checks import as_tensor, plain_mask


class Sparsemax(Function):
    """sparsemax over the last axis; ``mask`` (bool, True = keep) removes keys from the simplex."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, z, mask=None):
        xp = get_array_module(z)
        if mask is not None:
            z = xp.where(mask, z, -xp.inf)                       # masked keys can never be in S
        Tk = z.shape[-1]
        if Tk == 0:                     # no keys: empty rows, as rows whose keys are all masked
            ctx.save_for_backward(z)
            return xp.zeros_like(z)
        zs = -xp.sort(-z, axis=-1)                               # descending
        k = xp.arange(1, Tk + 1, dtype=z.dtype)
        cs = xp.cumsum(zs, axis=-1)
        support = 1 + k * zs > cs                                # a prefix of the sorted order
        n = support.sum(axis=-1, keepdims=True)                  # |S|; 0 only for all-masked rows
        n_safe = xp.maximum(n, 1)
        tau = (xp.take_along_axis(cs, n_safe - 1, axis=-1) - 1) / n_safe
        tau = xp.where(n > 0, tau, 0)                            # all-masked: avoid -inf - -inf
        p = xp.maximum(z - tau, 0)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved
        xp = get_array_module(p)
        s = p > 0
        n = xp.maximum(s.sum(axis=-1, keepdims=True), 1)
        mean_g = (g * s).sum(axis=-1, keepdims=True) / n
        return xp.where(s, g - mean_g, 0)


@register_op("attention.sparsemax")
def sparsemax(scores, mask=None, axis=-1):
    """Sparsemax weights: normalised like softmax, but sparse (many weights exactly 0).

    scores: (..., Tq, Tk); mask: bool broadcastable to scores, True = may attend
    -> (..., Tq, Tk) with rows ≥ 0 summing to 1 (all-masked rows: 0). See the module docstring
    for the formula and the exact gradient.
    """
    scores = as_tensor(scores, "sparsemax", "scores")
    m = plain_mask("sparsemax", mask, scores.shape)
    if axis in (-1, scores.ndim - 1):
        return Sparsemax.apply(scores, mask=m)
    moved = ops.swapaxes(scores, axis, -1)
    if m is not None:
        m = get_array_module(m).broadcast_to(m, scores.shape).swapaxes(axis, -1)
    return ops.swapaxes(Sparsemax.apply(moved, mask=m), axis, -1)
