"""Statistics with PyTorch's signatures: var/std (``correction``, default 1), amax/amin, max/min
along a dim with indices, argmax/argmin, norm, logsumexp, aminmax, clamp.

The arithmetic lives in ops/reduce.py and ops/elementwise.py (Var, Max, Min, LogSumExp, Clip);
this file translates PyTorch's arguments to them. Only the p-norm is a new op.
"""
from __future__ import annotations

import math
import numbers

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module, is_array
from . import return_types
from ._args import array_of, dims, ndim_of, one_dim, several_dims
from .elementwise import Abs, Cast, Clip, Maximum, Minimum, Sqrt
from .gather_scatter import Gather
from .reduce import LogSumExp, Max, Min, Var
from .shape import Reshape




def _correction(op, unbiased, correction, ddof):
    """PyTorch's ``correction`` (n - correction in the denominator; default 1, the sample
    variance), from ``correction=``, ``unbiased=`` (True: 1, False: 0) or NumPy's ``ddof=``."""
    given = [(k, v) for k, v in (("correction", correction), ("unbiased", unbiased),
                                 ("ddof", ddof)) if v is not None]
    if len(given) > 1:
        raise TypeError(f"{op}: give only one of correction=, unbiased= and ddof= (got "
                        f"{', '.join(k for k, _ in given)}).")
    if unbiased is not None:
        return 1 if unbiased else 0
    value = correction if correction is not None else ddof
    return 1 if value is None else value


def var(input, dim=None, unbiased=None, keepdim=None, *, correction=None,  # noqa: A002
        axis=None, keepdims=None, ddof=None):
    """Variance Σ (x - mean)² / (n - correction), correction=1 by default, as torch.var (NumPy's
    default is 0: pass correction=0 or unbiased=False for the population variance)."""
    if isinstance(dim, bool):                  # torch.var(x, False): the old unbiased position
        dim, unbiased = None, dim
    dim, keepdim = dims("var", dim, axis, keepdim, keepdims)
    c = _correction("var", unbiased, correction, ddof)
    return Var.apply(input, axis=several_dims("var", dim, ndim_of(input)), keepdims=keepdim, ddof=c)


def std(input, dim=None, unbiased=None, keepdim=None, *, correction=None,  # noqa: A002
        axis=None, keepdims=None, ddof=None):
    """Standard deviation: √var with the same arguments (correction=1 by default)."""
    return Sqrt.apply(var(input, dim, unbiased, keepdim, correction=correction, axis=axis,
                          keepdims=keepdims, ddof=ddof))


def amax(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A002
    """The largest value over ``dim`` (an int, a tuple; () or None: all). The gradient is shared
    evenly among ties."""
    dim, keepdim = dims("amax", dim, axis, keepdim, keepdims)
    axes = several_dims("amax", None if dim == () else dim, ndim_of(input))
    return Max.apply(input, axis=axes, keepdims=keepdim)


def amin(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A002
    """The smallest value over ``dim``; the gradient is shared evenly among ties."""
    dim, keepdim = dims("amin", dim, axis, keepdim, keepdims)
    axes = several_dims("amin", None if dim == () else dim, ndim_of(input))
    return Min.apply(input, axis=axes, keepdims=keepdim)


def _is_operand(x):
    return isinstance(x, Tensor) or is_array(x)


def _extreme_along(op, input, dim, keepdim, result):
    """(values, indices) of the max/min along one dim: the first such index, and the gradient
    goes to that element only (PyTorch's rule for max(x, dim))."""
    d = one_dim(op, dim, ndim_of(input))
    a = array_of(input)
    a1 = a.reshape(1) if a.ndim == 0 else a
    xp = get_array_module(a1)
    if a1.shape[d] == 0:
        raise IndexError(f"{op}: dim {d} of the input (shape {tuple(a.shape)}) is empty, so it "
                         f"has no {op}imum; reduce over a dim of nonzero size.")
    idx = (xp.argmax if op == "max" else xp.argmin)(a1, axis=d, keepdims=True)
    x = input if a.ndim else Reshape.apply(input, shape=(1,))
    shape = list(a.shape)
    if shape and not keepdim:
        del shape[d]
    elif shape:
        shape[d] = 1
    values = Reshape.apply(Gather.apply(x, idx, dim=d), shape=tuple(shape))
    return result(values, Tensor(idx.reshape(shape)))


def _max_or_min(op, input, dim, keepdim, axis, keepdims):
    """torch.max / torch.min's three forms: of everything, along a dim (values, indices), or
    elementwise against a second tensor given where dim would be."""
    if _is_operand(dim):
        return (Maximum if op == "max" else Minimum).apply(input, dim)
    dim, keepdim = dims(op, dim, axis, keepdim, keepdims)
    if dim is None:
        return (Max if op == "max" else Min).apply(input, axis=None, keepdims=False)
    return _extreme_along(op, input, dim, keepdim, getattr(return_types, op))


def max(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001, A002
    """Three forms, as torch.max: max(x) the largest value; max(x, dim) the named tuple
    (values, indices) along dim; max(x, other) the elementwise maximum."""
    return _max_or_min("max", input, dim, keepdim, axis, keepdims)


def min(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001, A002
    """min(x), min(x, dim) -> (values, indices), or min(x, other) elementwise, as torch.min."""
    return _max_or_min("min", input, dim, keepdim, axis, keepdims)


def _arg_extreme(op, input, dim, keepdim):
    a = array_of(input)
    xp = get_array_module(a)
    if a.size == 0:
        raise ValueError(f"{op}: the input (shape {tuple(a.shape)}) is empty.")
    find = xp.argmax if op == "argmax" else xp.argmin
    if dim is None:                               # the index into the flattened tensor
        return Tensor(find(a.reshape(-1)).astype(xp.int64).reshape(
            (1,) * a.ndim if keepdim else ()))
    d = one_dim(op, dim, a.ndim)
    a1 = a.reshape(1) if a.ndim == 0 else a
    idx = find(a1, axis=d, keepdims=keepdim and a.ndim > 0)
    return Tensor(xp.asarray(idx, dtype=xp.int64).reshape(() if a.ndim == 0 else idx.shape))


def argmax(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A002
    """Index of the (first) largest value along dim; dim=None: into the flattened tensor."""
    dim, keepdim = dims("argmax", dim, axis, keepdim, keepdims)
    return _arg_extreme("argmax", input, dim, keepdim)


def argmin(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A002
    """Index of the (first) smallest value along dim; dim=None: into the flattened tensor."""
    dim, keepdim = dims("argmin", dim, axis, keepdim, keepdims)
    return _arg_extreme("argmin", input, dim, keepdim)


def aminmax(input, *, dim=None, keepdim=False, axis=None, keepdims=None):  # noqa: A002
    """(min, max) together, as a named tuple with .min and .max."""
    dim, keepdim = dims("aminmax", dim, axis, keepdim, keepdims)
    return return_types.aminmax(amin(input, dim=dim, keepdim=keepdim),
                                amax(input, dim=dim, keepdim=keepdim))


@register_op("vector_norm")
class VectorNorm(Function):
    """(Σ |x|^p)^(1/p) over ``axes`` for a finite p > 0; p = 0 counts the nonzeros.
    Gradient: sign(x) |x|^(p-1) / norm^(p-1), and 0 where the norm is 0 (PyTorch's choice at
    the zero vector, where the norm has no derivative)."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, x, p=2.0, axes=(), keepdim=False):
        xp = get_array_module(x)
        ctx.p, ctx.axes, ctx.keepdim, ctx.shape = p, axes, keepdim, x.shape
        if p == 0:
            out = (x != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        elif p == 2:
            out = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            out = (xp.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1.0 / p)
        ctx.save_for_backward(x, out)
        return out if keepdim else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        xp = get_array_module(x)
        if ctx.p == 0:
            return xp.zeros(ctx.shape, dtype=g.dtype)
        g = g.reshape(out.shape)
        safe = xp.where(out == 0, 1, out)
        if ctx.p == 2:
            return xp.where(out == 0, 0, g * x / safe)
        ax = xp.abs(x)
        scale = xp.where(ax == 0, 0, xp.sign(x) * ax ** (ctx.p - 1)) / safe ** (ctx.p - 1)
        return xp.where(out == 0, 0, g * scale)


def norm(input, p=2, dim=None, keepdim=None, dtype=None, *, axis=None, keepdims=None,  # noqa: A002
         ord=None):  # noqa: A002 - NumPy's name for p
    """The p-norm over ``dim`` (None: every element): p=2 (or 'fro'), any finite p > 0,
    inf (largest |x|), -inf (smallest |x|), 0 (count of nonzeros)."""
    if ord is not None:
        p = ord
    dim, keepdim = dims("norm", dim, axis, keepdim, keepdims)
    x = input if dtype is None else Cast.apply(input, dtype=dtype)
    axes = several_dims("norm", dim, ndim_of(x))
    if p == "fro":
        p = 2
    if isinstance(p, str) or not isinstance(p, numbers.Real) or (p < 0 and p != -math.inf):
        raise ValueError(f"norm: p={p!r} is not supported; use p=2 ('fro'), a finite p > 0, 0, "
                         f"inf or -inf (the nuclear norm 'nuc' needs an SVD, which tinyattn has "
                         f"not got).")
    if p in (math.inf, -math.inf):
        reduce = Max if p > 0 else Min
        return reduce.apply(Abs.apply(x), axis=axes, keepdims=keepdim)
    return VectorNorm.apply(x, p=float(p), axes=axes, keepdim=keepdim)


def logsumexp(input, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A002
    """log Σ exp(x) over dim, without overflow (ops.reduce.LogSumExp)."""
    dim, keepdim = dims("logsumexp", dim, axis, keepdim, keepdims)
    return LogSumExp.apply(input, axis=several_dims("logsumexp", dim, ndim_of(input)),
                           keepdims=keepdim)


def clamp(input, min=None, max=None):  # noqa: A001, A002 - PyTorch's names
    """Limit to [min, max]; either bound may be a number or a tensor (broadcast). The gradient
    passes where min <= x <= max; bounds given as tensors get none here."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given (as in PyTorch).")
    lo = array_of(min, like=input) if _is_operand(min) else min
    hi = array_of(max, like=input) if _is_operand(max) else max
    return Clip.apply(input, lo=lo, hi=hi)


clip = clamp
