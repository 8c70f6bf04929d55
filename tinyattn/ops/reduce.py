"""Reductions: sum, mean, max, min, var, logsumexp (the Functions), with PyTorch's ``dim``/``keepdim``
beside NumPy's ``axis``/``keepdims`` in the public wrappers. The PyTorch-style wrappers of Max,
Min, Var and LogSumExp (max(x, dim) with indices, var with correction=1) are in ops/statistics.py."""
from __future__ import annotations

import builtins
import warnings

import numpy as np  # np.errstate only: CuPy has none (its kernels never warn)

from ..autograd.anomaly import call_site
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ._args import dims
from .elementwise import Cast


def _norm_axis(axis, ndim, op="reduction"):
    """axis as a sorted tuple of non-negative ints (None -> all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} axes "
                             f"(valid: {-ndim} .. {ndim - 1})")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis!r} names the same axis twice")
    return tuple(sorted(out))


def _expand(g, in_shape, axes, keepdims):
    """Put back the reduced axes (as length 1) so g broadcasts against the input."""
    if not keepdims:
        shape = [1 if i in axes else n for i, n in enumerate(in_shape)]
        g = g.reshape(shape)
    return g


@register_op("sum")
class Sum(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, _norm_axis(axis, x.ndim, "sum"), keepdims
        return x.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        return xp.broadcast_to(_expand(g, ctx.in_shape, ctx.axes, ctx.keepdims), ctx.in_shape)


def sum(x, dim=None, keepdim=None, *, axis=None, keepdims=None, dtype=None):  # noqa: A001
    """Σ over ``dim`` (int, tuple or None: all); the gradient is copied back to every summed
    element. ``dtype``: cast first, as torch.sum(x, dtype=...)."""
    dim, keepdim = dims("sum", dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = Cast.apply(x, dtype=dtype)
    return Sum.apply(x, axis=dim, keepdims=keepdim)


@register_op("mean")
class Mean(Function):
    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, _norm_axis(axis, x.ndim, "mean"), keepdims
        ctx.count = 1
        for a in ctx.axes:
            ctx.count *= x.shape[a]
        if ctx.count == 0:        # the mean of nothing: NaN as in PyTorch, without NumPy's warning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return x.mean(axis=ctx.axes, keepdims=keepdims)
        return x.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        if ctx.count == 0:        # an empty input has an empty gradient
            return xp.zeros(ctx.in_shape, dtype=g.dtype)
        g = _expand(g, ctx.in_shape, ctx.axes, ctx.keepdims) / ctx.count
        return xp.broadcast_to(g, ctx.in_shape)


def mean(x, dim=None, keepdim=None, *, axis=None, keepdims=None, dtype=None):
    """Σ / n over ``dim``; each element gets 1/n of the gradient."""
    dim, keepdim = dims("mean", dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = Cast.apply(x, dtype=dtype)
    return Mean.apply(x, axis=dim, keepdims=keepdim)


class _Extreme(Function):
    """max/min: the gradient goes to the extreme element(s), shared equally among ties (as
    PyTorch's amax/amin and full x.max(); torch.max(x, dim) instead picks one index)."""
    reducer = "max"

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, _norm_axis(axis, x.ndim, cls.reducer), keepdims
        if x.size == 0:
            raise ValueError(f"{cls.reducer}: the tensor of shape {x.shape} is empty, so it has no "
                             f"{cls.reducer}imum.")
        out = getattr(x, cls.reducer)(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(x, out)
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        hit = x == out
        share = _expand(g, ctx.in_shape, ctx.axes, ctx.keepdims) / hit.sum(
            axis=ctx.axes, keepdims=True).astype(g.dtype)     # split equally among ties
        return get_array_module(x).where(hit, share, 0)


@register_op("max")
class Max(_Extreme):
    reducer = "max"



@register_op("min")
class Min(_Extreme):
    reducer = "min"



@register_op("var")
class Var(Function):
    """Variance with NumPy's convention: ddof=0 unless asked (PyTorch's default is ddof=1).
    ddof >= n (no degrees of freedom left) gives inf or nan, as PyTorch, with a RuntimeWarning that
    names var, n and ddof rather than NumPy's "invalid value encountered in divide"."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        axes = _norm_axis(axis, x.ndim, "var")
        n = 1
        for a in axes:
            n *= x.shape[a]
        xp = get_array_module(x)
        centred = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(centred)
        denom = n - ddof
        if denom <= 0:
            # PyTorch warns and returns inf (or nan where every value is equal); so do we, with
            # our own warning in place of NumPy's "invalid value encountered in divide".
            # raised at the learner's line, however many tinyattn frames (x.var -> var) lie between
            warnings.warn_explicit(
                f"var: ddof={ddof} leaves n - ddof = {denom} <= 0 degrees of freedom "
                f"(n={n} values per variance, shape {tuple(x.shape)}, axis={axis}), so "
                f"the result is inf or nan, as in PyTorch. Use ddof < n (ddof=0: "
                f"population variance, ddof=1: sample variance).", RuntimeWarning,
                *(call_site() or ("<unknown>", 0)))
            denom = 0
        ctx.in_shape, ctx.axes, ctx.keepdims, ctx.denom = x.shape, axes, keepdims, denom
        with np.errstate(divide="ignore", invalid="ignore"):
            return (centred * centred).sum(axis=axes, keepdims=keepdims) / xp.asarray(denom, x.dtype)

    @staticmethod
    def backward(ctx, g):
        (centred,) = ctx.saved
        xp = get_array_module(centred)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = xp.asarray(2.0, centred.dtype) / xp.asarray(ctx.denom, centred.dtype)
            return _expand(g, ctx.in_shape, ctx.axes, ctx.keepdims) * scale * centred



@register_op("logsumexp")
class LogSumExp(Function):
    """log Σ exp(x), computed as m + log Σ exp(x - m) with m = max x, so it never overflows.
    A slice that is all -inf gives -inf (the log of an empty sum) and a zero gradient; so does
    an empty slice (a dim of length 0), as in PyTorch."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = get_array_module(x)
        axes = _norm_axis(axis, x.ndim, "logsumexp")
        if 0 in [x.shape[a] for a in axes]:          # max() has no identity: an empty sum is 0
            m = xp.full([1 if i in axes else n for i, n in enumerate(x.shape)], -xp.inf, x.dtype)
        else:
            m = x.max(axis=axes, keepdims=True)
        finite = xp.isfinite(m)
        m = xp.where(finite, m, 0)                    # all -inf slices: shift by 0, avoid inf - inf
        s = xp.exp(x - m).sum(axis=axes, keepdims=True)
        empty = s == 0                                # (a NaN sum is not empty: NaN comes out)
        out = xp.where(empty, -xp.inf, xp.log(xp.where(empty, 1, s))) + m
        ctx.save_for_backward(x, out)
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        xp = get_array_module(x)
        weights = xp.exp(x - xp.where(xp.isfinite(out), out, 0))   # softmax; 0 on -inf slices
        weights = xp.where(xp.isfinite(out), weights, 0)
        return _expand(g, ctx.in_shape, ctx.axes, ctx.keepdims) * weights


# ---------------------------------------------------------------------- without a gradient
# Their results are booleans, so they are computed on the arrays and never recorded
# (argmax/argmin: ops/statistics.py).
def any(x, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001
    """True where some element along ``dim`` is true (nonzero)."""
    dim, keepdim = dims("any", dim, axis, keepdim, keepdims)
    return Tensor(x.array.any(axis=_norm_axis(dim, x.ndim, "any"), keepdims=keepdim))


def all(x, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001
    """True where every element along ``dim`` is true (nonzero)."""
    dim, keepdim = dims("all", dim, axis, keepdim, keepdims)
    return Tensor(x.array.all(axis=_norm_axis(dim, x.ndim, "all"), keepdims=keepdim))
