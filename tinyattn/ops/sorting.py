"""Sorting and selecting by rank: sort, argsort, topk, kthvalue, median, unique (PyTorch's API).

The order itself (which index goes where) is integer work without a gradient; the values are then
``gather``-ed with those indices, so the gradient goes to the selected elements only (PyTorch's
rule) and needs no code of its own here.
"""
from __future__ import annotations

from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from . import return_types
from ._args import array_of, dims, one_dim
from .gather_scatter import Gather
from .shape import Reshape



def _order(a, dim, descending):
    """Indices that sort ``a`` along dim, stable: equal values keep their original order, in
    descending order too (we sort the reversed array and reverse back, rather than negating,
    which would fail for unsigned and bool and reverse the ties)."""
    xp = get_array_module(a)
    if not descending:
        return xp.argsort(a, axis=dim, kind="stable")
    n = a.shape[dim]
    back = xp.argsort(xp.flip(a, dim), axis=dim, kind="stable")
    return xp.flip(n - 1 - back, dim)


def _prepare(op, input, dim):
    """(array, dim); a 0-d input is handled as a 1-element vector, as PyTorch allows."""
    a = array_of(input)
    d = one_dim(op, dim, a.ndim)
    return (a.reshape(1) if a.ndim == 0 else a), d


def _values(input, idx, dim, shape=None):
    """input gathered at idx along dim (differentiably), reshaped to ``shape`` when given."""
    x = input if getattr(input, "ndim", 0) else Reshape.apply(input, shape=(1,))
    vals = Gather.apply(x, idx, dim=dim)
    return vals if shape is None else Reshape.apply(vals, shape=shape)


@register_op("sort")
def sort(input, dim=-1, descending=False, stable=False, *, axis=None):  # noqa: A002
    """(values, indices) sorted along dim. Always stable here (stable=False allows it in torch),
    so ties keep their order; NaN sorts as the largest value, as in PyTorch."""
    dim, _ = dims("sort", dim, axis)
    a, d = _prepare("sort", input, dim)
    idx = _order(a, d, descending)
    shape = tuple(getattr(input, "shape", ()))
    return return_types.sort(_values(input, idx, d, shape), Tensor(idx.reshape(shape)))


def argsort(input, dim=-1, descending=False, stable=False, *, axis=None):  # noqa: A002
    """The indices that sort input along dim (int64); not differentiable."""
    dim, _ = dims("argsort", dim, axis)
    a, d = _prepare("argsort", input, dim)
    return Tensor(_order(a, d, descending).reshape(tuple(getattr(input, "shape", ()))))


@register_op("topk")
def topk(input, k, dim=-1, largest=True, sorted=True, *, axis=None):  # noqa: A002
    """(values, indices) of the k largest (largest=False: smallest) along dim, best first. The
    gradient goes to those k elements. Results are always sorted (torch allows any order when
    sorted=False)."""
    dim, _ = dims("topk", dim, axis)
    a, d = _prepare("topk", input, dim)
    n = a.shape[d]
    if not 0 <= int(k) <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {d} of size {n} (input shape "
                         f"{tuple(getattr(input, 'shape', ()))}); k must be in [0, {n}].")
    idx = _order(a, d, largest)
    idx = idx[(slice(None),) * d + (slice(0, int(k)),)]
    if not getattr(input, "ndim", 0):
        return return_types.topk(_values(input, idx, 0, idx.shape[1:]), Tensor(idx.reshape(())))
    return return_types.topk(_values(input, idx, d), Tensor(idx))


def _pick(op, input, position, dim, keepdim, result):
    """The element at sorted ``position`` (per slice) along dim, as (values, indices)."""
    a, d = _prepare(op, input, dim)
    xp = get_array_module(a)
    order = _order(a, d, False)
    if getattr(position, "ndim", 0) == 0:            # one position for every slice
        position = xp.full([1] * a.ndim, int(position))
    where = xp.take_along_axis(order, position, axis=d)
    shape = list(getattr(input, "shape", ()))
    if shape and not keepdim:
        del shape[d]
    elif shape:
        shape[d] = 1
    return result(_values(input, where, d, tuple(shape)), Tensor(where.reshape(shape)))


@register_op("kthvalue")
def kthvalue(input, k, dim=-1, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """(values, indices) of the k-th smallest element (k counts from 1) along dim."""
    dim, keepdim = dims("kthvalue", dim, axis, keepdim, keepdims)
    a, d = _prepare("kthvalue", input, dim)
    n = a.shape[d]
    if not 1 <= int(k) <= n:
        raise ValueError(f"kthvalue: k={k} is out of range for dim {d} of size {n}; k counts "
                         f"from 1 and must be in [1, {n}].")
    return _pick("kthvalue", input, int(k) - 1, dim, keepdim, return_types.kthvalue)


@register_op("median")
def median(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """The lower median (of an even count, the smaller middle value, as PyTorch). Without dim:
    one value of the whole tensor; with dim: (values, indices). A slice holding NaN gives NaN."""
    dim, keepdim = dims("median", dim, axis, keepdim, keepdims)
    if dim is None:
        flat = input if getattr(input, "ndim", 0) == 1 else Reshape.apply(input, shape=(-1,))
        return median(flat, 0).values
    a, d = _prepare("median", input, dim)
    xp = get_array_module(a)
    n = a.shape[d]
    if n == 0:
        raise ValueError(f"median: dim {d} of the input (shape {tuple(a.shape)}) is empty, so "
                         f"it has no median.")
    position = xp.full([1 if i == d else s for i, s in enumerate(a.shape)], (n - 1) // 2)
    if a.dtype.kind == "f":                           # NaN sorts last: pick it, as torch does
        position = xp.where(xp.isnan(a).any(axis=d, keepdims=True), n - 1, position)
    return _pick("median", input, position, dim, keepdim, return_types.median)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values (sorted; sorted=False gives them sorted too), and optionally for each
    input element the position of its value (``inverse``, input's shape) and how often each
    value occurs (``counts``). With ``dim``: distinct slices along dim. Not differentiable."""
    a = array_of(input)
    xp = get_array_module(a)
    d = None if dim is None else one_dim("unique", dim, a.ndim)
    out = xp.unique(a, return_inverse=True, return_counts=True, axis=d)
    values, inverse, counts = out[0], out[1], out[2]
    inverse = inverse.reshape(a.shape if d is None else (a.shape[d],))
    result = [Tensor(values)]
    if return_inverse:
        result.append(Tensor(inverse.astype(xp.int64)))
    if return_counts:
        result.append(Tensor(counts.astype(xp.int64)))
    return result[0] if len(result) == 1 else tuple(result)
