"""Elementwise ops: arithmetic, exp/log, activations. Forward and backward side by side.

Every op works on plain arrays of any backend (``xp`` is numpy or cupy, asked of the array).
Broadcast gradients are returned at the broadcast shape; the engine sums them down.
"""
from __future__ import annotations

import math
import operator

import numpy as np  # shapes only: broadcast_shapes for the error message

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import resolve_dtype, unwrap
from ..backend import get_array_module
from ..kernels import register_kernel
from .gather_scatter import nonzero
from .special import erf


def _is_bool(x):
    return type(x) is bool or getattr(x, "dtype", None) == bool


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
@register_op("add")
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        try:                                    # the usual case without the helper's call
            return a + b
        except ValueError:                      # the helper names the op and the fix
            return broadcasting("add", operator.add, a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


def add(a, b):
    """a + b."""
    return Add.apply(a, b)


@register_op("sub")
class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        if _is_bool(a) or _is_bool(b):
            raise TypeError("sub: a - b with a bool tensor is not defined (PyTorch refuses it "
                            "too). For masks use a ^ b (differ) or a & ~b (a but not b); for "
                            "numbers, convert first: a.float() - b.float().")
        try:                                    # the usual case without the helper's call
            return a - b
        except ValueError:                      # the helper names the op and the fix
            return broadcasting("sub", operator.sub, a, b)

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


def sub(a, b):
    """a - b."""
    return Sub.apply(a, b)


@register_op("mul")
class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:                                    # the usual case without the helper's call
            return a * b
        except ValueError:                      # the helper names the op and the fix
            return broadcasting("mul", operator.mul, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


def mul(a, b):
    """a * b (elementwise)."""
    return Mul.apply(a, b)


@register_op("div")
class Div(Function):
    real_inputs = (0, 1)

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return broadcasting("div", operator.truediv, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b
        return ga, (-ga * a / b if ctx.needs_input_grad[1] else None)


def div(a, b):
    """a / b (true division; integer inputs give the default float dtype, as in PyTorch)."""
    return Div.apply(a, b)


@register_op("pow")
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


def pow(a, b):  # noqa: A001 - mirrors torch.pow
    """a ** b. d/da = b a^(b-1); d/db = a^b ln a (taken as 0 where a <= 0)."""
    return Pow.apply(a, b)


@register_op("neg")
class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        if getattr(a, "dtype", None) == bool:
            raise TypeError("neg: -x of a bool tensor is not defined (PyTorch refuses it too). To "
                            "invert a mask use ~x or tinyattn.logical_not(x); for numbers, "
                            "convert first: -x.float().")
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


def neg(x):
    """-x."""
    return Neg.apply(x)


# ----------------------------------------------------------------------------- exp, log, ...
@register_op("exp")
class Exp(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y


def exp(x):
    """e^x; d/dx = e^x."""
    return Exp.apply(x)


@register_op("log")
class Log(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


def log(x):
    """Natural log ln x; d/dx = 1/x."""
    return Log.apply(x)


@register_op("sqrt")
class Sqrt(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (2 * y)


def sqrt(x):
    """√x; d/dx = 1 / (2√x)."""
    return Sqrt.apply(x)


@register_op("abs")
class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        if getattr(x, "dtype", None) == bool:
            raise TypeError("abs: |x| of a bool tensor is not defined (PyTorch refuses it too). A "
                            "mask is its own absolute value; for numbers, convert first: "
                            "x.float().abs().")
        ctx.save_for_backward(x)
        return get_array_module(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * get_array_module(x).sign(x)


def abs(x):  # noqa: A001
    """|x|; d/dx = sign(x) (0 at x = 0, as in PyTorch)."""
    return Abs.apply(x)


@register_op("maximum")
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


def maximum(a, b):
    """Elementwise max(a, b); at a tie each side gets half the gradient (PyTorch's rule)."""
    return Maximum.apply(a, b)


@register_op("minimum")
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


def minimum(a, b):
    """Elementwise min(a, b); at a tie each side gets half the gradient."""
    return Minimum.apply(a, b)


@register_op("clip")
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


def clip(x, lo=None, hi=None):
    """Clamp into [lo, hi] (either may be None); the gradient passes where lo <= x <= hi. Bounds
    may be numbers, arrays or tensors (they get no gradient)."""
    return Clip.apply(x, lo=unwrap(lo), hi=unwrap(hi))


@register_op("where")
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


def where(cond, a=None, b=None):
    """a where cond else b (cond: bool tensor/array, not differentiated; all three broadcast).
    where(cond) alone is PyTorch's nonzero(cond, as_tuple=True)."""
    if a is None and b is None:
        return nonzero(cond, as_tuple=True)
    return Where.apply(unwrap(cond), a, b)


# ----------------------------------------------------------------------------- activations
def stable_sigmoid(x):
    """1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1 (the sign-split formula)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


@register_op("sigmoid")
class Sigmoid(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * (1 - y)


def sigmoid(x):
    """σ(x) = 1 / (1 + e^-x), computed without overflow; d/dx = σ(1 - σ)."""
    return Sigmoid.apply(x)


@register_op("tanh")
class Tanh(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y * y)


def tanh(x):
    """tanh x; d/dx = 1 - tanh² x."""
    return Tanh.apply(x)


# The reference math of relu, registered so that a compiled kernel can stand in for it: NumPy's
# where() with a mask of random signs is slow (a branch per element it cannot predict: ~3.5 ns per
# element, 12x ``g * mask``, which would give -0. and let NaN gradients through).
@register_kernel("relu_forward", "numpy")
def relu_forward(x):
    return get_array_module(x).maximum(x, 0)    # not x * (x > 0): that prints -0. for x < 0


@register_kernel("relu_backward", "numpy")
def relu_backward(x, g):
    return get_array_module(x).where(x > 0, g, 0)


@register_op("relu")
class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        if getattr(x, "dtype", None) == bool:
            raise TypeError("relu: a bool tensor has no negative part to cut (PyTorch refuses it "
                            "too); for numbers, convert first: x.float().relu().")
        ctx.save_for_backward(x)
        return kernels.get("relu_forward", x)(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return kernels.get("relu_backward", x)(x, g)


def relu(x):
    """max(x, 0); d/dx = 1 for x > 0, else 0 (0 at x = 0, as in PyTorch)."""
    return Relu.apply(x)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# Beyond |x| = 100 the tanh of tanh-GELU is exactly ±1 in float64 (its argument exceeds 3e4), so
# clipping x there changes no result; it keeps x³ from overflowing (float32 x = 1e20 would give
# inf and a NaN gradient, inf · 0) and the limits exact: gradient 1 far right, 0 far left.
_GELU_SATURATED = 100.0


def _tanh_gelu_inner(xp, x):
    """√(2/π)(x + 0.044715 x³) of x clipped to ±_GELU_SATURATED."""
    x = xp.clip(x, -_GELU_SATURATED, _GELU_SATURATED)
    return _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)


@register_kernel("gelu_forward", "numpy")
def gelu_forward(x):
    """Exact GELU, x Φ(x) = 0.5 x (1 + erf(x / √2)), elementwise (the reference; the compiled
    kernel in kernels/numba/gelu.py repeats these steps in this order)."""
    return 0.5 * x * (1 + erf(x * _INV_SQRT_2))


@register_kernel("gelu_backward", "numpy")
def gelu_backward(x, g):
    """g · d/dx x Φ(x) = g (Φ(x) + x φ(x)), φ the standard normal density (the reference; the
    compiled kernel in kernels/numba/gelu.py does these steps in one pass)."""
    cdf = 0.5 * (1 + erf(x * _INV_SQRT_2))
    pdf = _INV_SQRT_2PI * get_array_module(x).exp(-0.5 * x * x)
    return g * (cdf + x * pdf)


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


@register_op("gelu")
class Gelu(Function):
    """GELU. approximate='none': x Φ(x) with the exact normal CDF (erf);
    approximate='tanh': 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). Same names as PyTorch."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        xp = get_array_module(x)
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_tanh_gelu_inner(xp, x)))
        if x.ndim and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64):   # one compiled pass
            return kernels.get("gelu_forward", x)(x)
        return gelu_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        xp = get_array_module(x)
        if ctx.approximate == "tanh":
            x = xp.clip(x, -_GELU_SATURATED, _GELU_SATURATED)    # see _tanh_gelu_inner
            t = xp.tanh(_tanh_gelu_inner(xp, x))
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner)
        if x.ndim and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64):   # one compiled pass
            return kernels.get("gelu_backward", x)(x, g)
        return gelu_backward(x, g)


def gelu(x, approximate="none"):
    """x Φ(x) with Φ the standard normal CDF; approximate='tanh' uses PyTorch's tanh formula."""
    return Gelu.apply(x, approximate=approximate)


@register_op("softplus")
class Softplus(Function):
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (PyTorch's definition)."""

    real_inputs = (0,)

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


def softplus(x, beta=1.0, threshold=20.0):
    """ln(1 + e^(βx)) / β, and x itself where βx > threshold (PyTorch's definition)."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


@register_op("cast")
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


def astype(x, dtype):
    """A copy in another dtype; gradients flow back in the original dtype."""
    return Cast.apply(x, dtype=dtype)
