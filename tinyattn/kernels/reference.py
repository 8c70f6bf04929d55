"""The plain twins: each kernel written with whole-array xp (NumPy or CuPy) expressions.
These are the definitions; the compiled kernels must agree with them."""
from __future__ import annotations

from ..backend import get_array_module
from . import register


@register("softmax_forward", "numpy")
def softmax_forward(x, axis=-1, mask=None):
    """exp(x - max) / Σ exp(x - max) along ``axis``; ``mask`` (True = keep) zeroes entries, and a
    row with no kept entry is all zeros rather than 0/0 = NaN."""
    xp = get_array_module(x)
    if mask is not None:
        x = xp.where(mask, x, -xp.inf)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    e = xp.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return e / xp.where(s == 0, 1, s)


@register("softmax_backward", "numpy")
def softmax_backward(y, g, axis=-1):
    """dx = y ⊙ (g - Σ g y): the Jacobian of softmax applied to g without forming it."""
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


@register("log_softmax_forward", "numpy")
def log_softmax_forward(x, axis=-1):
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    shifted = x - m
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


@register("log_softmax_backward", "numpy")
def log_softmax_backward(out, g, axis=-1):
    xp = get_array_module(out)
    return g - xp.exp(out) * g.sum(axis=axis, keepdims=True)
