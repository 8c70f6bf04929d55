"""Elementwise ops: arithmetic, exp/log, activations. Forward and backward side by side.

Every op works on plain arrays of any backend (``xp`` is numpy or cupy, asked of the array).
Broadcast gradients are returned at the broadcast shape; the engine sums them down.
"""
from __future__ import annotations

import math
import operator

import numpy as np  # shapes only: broadcast_shapes for the error message

from ..autograd.function import Function
from ..autograd.registry import register
from ..autograd.tensor import resolve_dtype
from ..backend import get_array_module
from .special import erf


def broadcasting(op, fn, a, b):
    """fn(a, b), with NumPy's broadcasting error turned into one that names the op and the fix."""
    try:
        return fn(a, b)
    except ValueError as exc:
        sa, sb = tuple(getattr(a, "shape", ())), tuple(getattr(b, "shape", ()))
        try:
            np.broadcast_shapes(sa, sb)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {sa} and {sb} cannot be broadcast together. Aligned from the "
                f"right, each pair of axis lengths must be equal or one of them 1; reshape or "
                f"unsqueeze an operand (e.g. b.unsqueeze(0)) so that they line up.") from None
        raise ValueError(f"{op}: {exc} (operands of shape {sa} and {sb})") from None


# ----------------------------------------------------------------------------- arithmetic
@register("add")
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return broadcasting("add", operator.add, a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


@register("sub")
class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return broadcasting("sub", operator.sub, a, b)

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


@register("mul")
class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return broadcasting("mul", operator.mul, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


@register("div")
class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return broadcasting("div", operator.truediv, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b
        return ga, -ga * a / b


@register("pow")
class Pow(Function):
    """a ** b for tensor/number on either side. d/da = b a^(b-1); d/db = a^b log a (a > 0)."""

    @staticmethod
    def forward(ctx, a, b):
        out = broadcasting("pow", operator.pow, a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        xp = get_array_module(a, b)
        ga = g * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:                  # log a is only defined for a > 0
            log_a = (xp.log(xp.where(a > 0, a, 1)) if hasattr(a, "shape")
                     else (math.log(a) if a > 0 else 0.0))   # a number base stays a number
            gb = g * out * log_a
        return ga, gb


@register("neg")
class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


# ----------------------------------------------------------------------------- exp, log, ...
@register("exp")
class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y


@register("log")
class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


@register("sqrt")
class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (2 * y)


@register("abs")
class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * get_array_module(x).sign(x)


@register("maximum")
class Maximum(Function):
    """Elementwise max. At ties the gradient is shared equally, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return broadcasting("maximum", get_array_module(a, b).maximum, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        xp = get_array_module(a, b)
        tie = xp.where(a == b, 0.5 * g, 0)          # (where, not g * mask: no -0. in gradients)
        return xp.where(a > b, g, tie), xp.where(a < b, g, tie)


@register("minimum")
class Minimum(Function):
    """Elementwise min. At ties the gradient is shared equally, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return broadcasting("minimum", get_array_module(a, b).minimum, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        xp = get_array_module(a, b)
        tie = xp.where(a == b, 0.5 * g, 0)
        return xp.where(a < b, g, tie), xp.where(a > b, g, tie)


@register("clip")
class Clip(Function):
    """Clamp into [lo, hi]; the gradient passes where lo <= x <= hi (PyTorch's clamp)."""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return get_array_module(x).clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        keep = True
        if ctx.lo is not None:
            keep = keep & (x >= ctx.lo)
        if ctx.hi is not None:
            keep = keep & (x <= ctx.hi)
        return get_array_module(x).where(keep, g, 0)


@register("where")
class Where(Function):
    """where(cond, a, b): a where cond is True, else b. cond gets no gradient."""

    @staticmethod
    def forward(ctx, cond, a, b):
        xp = get_array_module(cond, a, b)
        dtype = xp.asarray(cond).dtype
        if dtype != bool:
            raise TypeError(f"where: cond must be a bool tensor or array (True takes a, False "
                            f"takes b), got dtype {dtype}, as in PyTorch. Compare first, e.g. "
                            f"where(x > 0, a, b), or convert with (cond != 0).")
        cond = xp.asarray(cond, dtype=bool)
        ctx.save_for_backward(cond)
        try:
            return xp.where(cond, a, b)
        except ValueError:
            shapes = [tuple(getattr(v, "shape", ())) for v in (cond, a, b)]
            raise ValueError(f"where: cond, a and b have shapes {shapes[0]}, {shapes[1]} and "
                             f"{shapes[2]}, which cannot be broadcast together; reshape them so "
                             f"that, aligned from the right, each axis is equal or 1.") from None

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved
        xp = get_array_module(cond)
        return None, xp.where(cond, g, 0), xp.where(cond, 0, g)


# ----------------------------------------------------------------------------- activations
def stable_sigmoid(x):
    """1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1 (the sign-split formula)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


@register("sigmoid")
class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * (1 - y)


@register("tanh")
class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y * y)


@register("relu")
class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).maximum(x, 0)    # not x * (x > 0): that prints -0. for x < 0

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return get_array_module(x).where(x > 0, g, 0)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@register("gelu")
class Gelu(Function):
    """GELU. approximate='none': x Φ(x) with the exact normal CDF (erf);
    approximate='tanh': 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). Same names as PyTorch."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        xp = get_array_module(x)
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + erf(x * _INV_SQRT_2))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        xp = get_array_module(x)
        if ctx.approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
            t = xp.tanh(inner)
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner)
        cdf = 0.5 * (1 + erf(x * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return g * (cdf + x * pdf)


@register("softplus")
class Softplus(Function):
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (PyTorch's definition)."""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        if beta == 0:
            raise ValueError("softplus: beta must not be 0: the formula divides by beta "
                             "(PyTorch returns inf there). Use beta > 0; beta=1 is the usual "
                             "softplus, a larger beta a sharper one.")
        xp = get_array_module(x)
        bx = beta * x
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        soft = (xp.log1p(xp.exp(-xp.abs(bx))) + xp.maximum(bx, 0)) / beta   # never overflows
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        bx = ctx.beta * x
        return g * get_array_module(x).where(bx > ctx.threshold, 1, stable_sigmoid(bx))


@register("cast")
class Cast(Function):
    """Change dtype; the gradient is cast back to the input's dtype."""

    keeps_dtype = False     # changing the dtype is the point

    @staticmethod
    def forward(ctx, x, dtype=None):
        dtype = resolve_dtype(dtype, "astype")
        ctx.in_dtype = x.dtype
        return x.astype(dtype, copy=True)     # always a new array: clone() relies on it

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype)
