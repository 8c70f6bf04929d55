"""softmax and log_softmax: hand-written backward for speed and stability; fast paths via kernels."""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..backend import get_array_module
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
@register_kernel("softmax_forward", "numpy")
def softmax_forward(x, axis=-1, mask=None):
    """exp(x - max) / Σ exp(x - max) along ``axis``; ``mask`` (True = keep) zeroes entries, and a
    row with no kept entry is all zeros rather than 0/0 = NaN."""
    xp = get_array_module(x)
    if x.size == 0:                 # max() of an empty row has no value: nothing to normalise
        return xp.zeros_like(x)
    if mask is not None:
        x = xp.where(mask, x, -xp.inf)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(m == -xp.inf, 0, m)          # rows of -inf only; +inf and NaN give NaN
    e = xp.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return e / xp.where(s == 0, 1, s)


@register_kernel("softmax_backward", "numpy")
def softmax_backward(y, g, axis=-1):
    """dx = y ⊙ (g - Σ g y): the Jacobian of softmax applied to g without forming it."""
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


@register_kernel("log_softmax_forward", "numpy")
def log_softmax_forward(x, axis=-1):
    xp = get_array_module(x)
    if x.size == 0:
        return xp.zeros_like(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(m == -xp.inf, 0, m)          # rows of -inf only; +inf and NaN give NaN
    shifted = x - m
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


@register_kernel("log_softmax_backward", "numpy")
def log_softmax_backward(out, g, axis=-1):
    xp = get_array_module(out)
    return g - xp.exp(out) * g.sum(axis=axis, keepdims=True)


@register_op("softmax")
class Softmax(Function):
    """softmax(x)_i = e^{x_i} / Σ_j e^{x_j} along ``axis``. ``mask`` (bool, True = may attend,
    broadcastable to x) sends masked entries to exactly 0; fully masked rows give 0, not NaN."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, axis=-1, mask=None):
        _check_axis("softmax", axis, x.shape)
        if mask is not None:
            _check_mask(mask, x.shape)
        y = kernels.get("softmax_forward", x)(x, axis, mask)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return kernels.get("softmax_backward", y)(y, g, ctx.axis)


@register_op("log_softmax")
class LogSoftmax(Function):
    """log_softmax(x) = x - logsumexp(x), computed stably."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, axis=-1):
        _check_axis("log_softmax", axis, x.shape)
        out = kernels.get("log_softmax_forward", x)(x, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return kernels.get("log_softmax_backward", out)(out, g, ctx.axis)


def _check_mask(mask, shape):
    """A mask must be boolean (True = keep) and broadcast to the scores' shape."""
    dtype = getattr(mask, "dtype", None)
    if dtype is None or dtype.kind != "b":
        raise TypeError(
            f"softmax: mask must be a boolean array or tensor (True = keep, False = masked out), "
            f"got {dtype if dtype is not None else type(mask).__name__}. For 0/1 masks use "
            f"mask == 1; an additive mask (0 / -inf) is added to the scores instead.")
    mshape = tuple(mask.shape)
    if len(mshape) > len(shape) or any(m not in (1, n) for m, n in zip(mshape[::-1], shape[::-1])):
        raise ValueError(f"softmax: mask of shape {mshape} does not broadcast to the scores' "
                         f"shape {tuple(shape)}; aligned from the right, each axis of the mask "
                         f"must equal the scores' axis or be 1.")


def _check_axis(op, axis, shape):
    if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"{op}: axis {axis!r} is not an axis of a tensor of shape {tuple(shape)}; "
                         f"give one int in {-len(shape)} .. {len(shape) - 1} (usually -1).")


# ---------------------------------------------------------------------- the public functions
import tinyattn  # noqa: E402  - tinyattn.ops.astype at call time (ops import this file)
from ..autograd.tensor import unwrap  # noqa: E402
from ._args import dims  # noqa: E402


def softmax(x, dim=None, mask=None, *, axis=None, dtype=None):
    """e^x_i / Σ_j e^x_j along ``dim`` (PyTorch's name; ``axis=`` is NumPy's; default -1).
    ``mask`` (bool, True = keep, broadcast to x) gives masked entries exactly 0; a row with nothing
    kept is all zeros (not NaN). ``dtype``: cast x first, as torch.softmax(..., dtype=)."""
    dim, _ = dims("softmax", dim, axis)
    if dtype is not None:
        x = tinyattn.ops.astype(x, dtype)
    return Softmax.apply(x, axis=-1 if dim is None else dim, mask=unwrap(mask))


def log_softmax(x, dim=None, *, axis=None, dtype=None):
    """x - logsumexp(x) along ``dim`` (or ``axis=``; default -1): the log of softmax, computed stably."""
    dim, _ = dims("log_softmax", dim, axis)
    if dtype is not None:
        x = tinyattn.ops.astype(x, dtype)
    return LogSoftmax.apply(x, axis=-1 if dim is None else dim)
