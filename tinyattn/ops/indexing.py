"""Indexing: ``x[idx]`` with slices, None, ellipsis, boolean masks and integer arrays (gather).
Backward scatters the gradient back; repeated integer indices add up."""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, sum_to_shape, unwrap
from ..backend import get_array_module, is_array, scatter_add


def _is_basic(idx):
    """True when idx uses only ints, slices, None and Ellipsis (a view; no repeats possible)."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


@register_op("getitem")
class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index=None):
        ctx.in_shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        try:
            return x[index]
        except IndexError as exc:
            raise IndexError(f"getitem: cannot index a tensor of shape {x.shape} with "
                             f"{_describe(index)}: {exc}.") from None

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        out = xp.zeros(ctx.in_shape, dtype=g.dtype)
        if _is_basic(ctx.index):
            out[ctx.index] = g
        else:
            scatter_add(out, _without_masks(ctx.index), g)   # gather's adjoint: repeats accumulate
        return out


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis, boolean masks and integer arrays/lists/tensors
    (gather). The backward scatter-adds, so repeated indices accumulate their gradients."""
    if type(index) is tuple:              # the usual x[:, -1]: only slices, ints, None, ...
        for i in index:
            if type(i) not in _PLAIN:
                break
        else:
            return GetItem.apply(x, index=index)
    elif type(index) in _PLAIN:
        return GetItem.apply(x, index=index)
    # Tensors in the index are used as their arrays; NumPy arrays indexing CuPy tensors move over
    index = tuple(unwrap(i) for i in index) if isinstance(index, tuple) else unwrap(index)
    xp = get_array_module(x.array)
    if isinstance(index, list):           # a list of ints means integer-array indexing, as in NumPy
        index = xp.asarray(index)
    elif isinstance(index, tuple) and any(isinstance(i, list) for i in index):
        index = tuple(xp.asarray(i) if isinstance(i, list) else i for i in index)
    return GetItem.apply(x, index=index)


# index parts that unwrap() and the list rule below leave as they are (exact types: a bool is an
# int subclass but a mask, so it takes the general path)
_PLAIN = frozenset([slice, int, type(None), type(Ellipsis)])


def _without_masks(index):
    """Boolean masks replaced by the integer positions they select (x[m] == x[m.nonzero()]), so
    every backend's scatter-add accepts the index."""
    parts = index if isinstance(index, tuple) else (index,)
    if not any(is_array(p) and p.dtype == bool for p in parts):
        return index
    out = []
    for p in parts:
        out.extend(p.nonzero() if is_array(p) and p.dtype == bool and p.ndim > 0 else (p,))
    return tuple(out)


def _describe(index):
    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(f"array{tuple(p.shape)}" if is_array(p) else repr(p) for p in parts) + "]"


@register_op("setitem")
class SetItem(Function):
    """``x[index] = value`` out of place, so it can be recorded: the written positions take their
    gradient from ``value``, the rest from ``x`` (PyTorch records ``x[i] = v`` on a tensor in the
    graph the same way)."""

    @staticmethod
    def forward(ctx, x, value, index=None):
        ctx.index, ctx.value_shape = index, value.shape
        out = x.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx, g):
        gx = g.copy()
        gx[ctx.index] = 0                      # overwritten: x no longer reaches the output there
        gv = g[ctx.index] if ctx.needs_input_grad[1] else None
        return gx, None if gv is None else sum_to_shape(gv, ctx.value_shape)


def setitem(x, index, value):
    """The result of ``x[index] = value`` as a new tensor, differentiable in ``x`` and ``value``."""
    index = tuple(unwrap(i) for i in index) if isinstance(index, tuple) else unwrap(index)
    if not isinstance(value, Tensor):
        value = Tensor(get_array_module(x.array).asarray(unwrap(value), dtype=x.dtype))
    return SetItem.apply(x, value, index=index)
