"""More elementwise maths with PyTorch's names: trigonometry, log1p/expm1, reciprocals, rounding.

Rounding-like ops (sign, floor, ceil, round, trunc) are flat almost everywhere, so their gradient
is 0, as PyTorch defines it. Integer inputs to the float functions come out in the default float
dtype (Function.keeps_dtype), as torch.sin(int_tensor) does.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..backend import get_array_module
from . import special


@register_op("sin")
class Sin(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * get_array_module(x).cos(x)


@register_op("cos")
class Cos(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).cos(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return -g * get_array_module(x).sin(x)


@register_op("log1p")
class Log1p(Function):
    """log(1 + x), accurate for small x; d/dx = 1 / (1 + x)."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log1p(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + x)


@register_op("expm1")
class Expm1(Function):
    """e^x - 1, accurate for small x; d/dx = e^x = out + 1."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y + 1)


@register_op("rsqrt")
class Rsqrt(Function):
    """1 / √x; d/dx = -1/2 x^(-3/2) = -out³ / 2."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        y = 1 / xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return -0.5 * g * y * y * y


@register_op("reciprocal")
class Reciprocal(Function):
    """1 / x; d/dx = -1/x² = -out²."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        y = 1 / x
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return -g * y * y


@register_op("erf")
class Erf(Function):
    """The error function; d/dx = 2/√π e^(-x²)."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)                     # (ints arrive as floats: real_inputs)
        return special.erf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * (2 / math.sqrt(math.pi)) * get_array_module(x).exp(-x * x)


@register_op("frac")
class Frac(Function):
    """x - trunc(x), the fractional part with x's sign; d/dx = 1 (as PyTorch)."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x):
        return x - get_array_module(x).trunc(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _Flat(Function):
    """A piecewise-constant op: gradient 0 everywhere (PyTorch's choice at the jumps too).
    ``name`` is the array function that computes it. Integer and bool inputs come back unchanged
    in their own dtype, as torch.floor(int) does (except sign of an int, which is -1/0/1)."""
    name = "floor"

    @classmethod
    def forward(cls, ctx, x, **options):
        ctx.shape = x.shape
        if x.dtype == bool or (x.dtype.kind in "iu" and cls.name != "sign"):
            return x.copy()
        return getattr(get_array_module(x), cls.name)(x, **options)

    @staticmethod
    def backward(ctx, g):
        return get_array_module(g).zeros(ctx.shape, dtype=g.dtype)


def _flat_op(name, doc):
    """A registered _Flat op computed by the array function ``name``."""
    return register_op(name)(type(name.capitalize(), (_Flat,), {"name": name, "__doc__": doc}))


Sign = _flat_op("sign", "-1, 0 or 1 by the sign of x.")
Floor = _flat_op("floor", "The largest integer <= x.")
Ceil = _flat_op("ceil", "The smallest integer >= x.")
Trunc = _flat_op("trunc", "x rounded towards 0.")
Round = _flat_op("round", "Half to even (2.5 -> 2, 3.5 -> 4), as PyTorch and NumPy; "
                          "``decimals`` digits after the point.")


def sin(input):  # noqa: A002 - PyTorch's argument name
    """sin x (radians); d/dx = cos x."""
    return Sin.apply(input)


def cos(input):  # noqa: A002
    """cos x (radians); d/dx = -sin x."""
    return Cos.apply(input)


def log1p(input):  # noqa: A002
    """log(1 + x), exact near 0 where log(1 + x) loses digits."""
    return Log1p.apply(input)


def expm1(input):  # noqa: A002
    """e^x - 1, exact near 0 where exp(x) - 1 loses digits."""
    return Expm1.apply(input)


def rsqrt(input):  # noqa: A002
    """1 / √x."""
    return Rsqrt.apply(input)


def reciprocal(input):  # noqa: A002
    """1 / x."""
    return Reciprocal.apply(input)


def erf(input):  # noqa: A002
    """The error function (2/√π) ∫₀ˣ e^(-t²) dt."""
    return Erf.apply(input)


def frac(input):  # noqa: A002
    """x - trunc(x): -1.5 -> -0.5."""
    return Frac.apply(input)


def sign(input):  # noqa: A002
    """-1, 0 or 1; gradient 0."""
    return Sign.apply(input)


def floor(input):  # noqa: A002
    """Round down; gradient 0."""
    return Floor.apply(input)


def ceil(input):  # noqa: A002
    """Round up; gradient 0."""
    return Ceil.apply(input)


def trunc(input):  # noqa: A002
    """Round towards 0; gradient 0."""
    return Trunc.apply(input)


def round(input, *, decimals=0):  # noqa: A001, A002
    """Round half to even, to ``decimals`` digits (negative: to tens, hundreds...); gradient 0."""
    return Round.apply(input, decimals=int(decimals))
