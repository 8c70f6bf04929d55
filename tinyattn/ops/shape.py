"""Ops that move numbers around without changing them: reshape, permute, broadcast, join, split, pad.
Their backward is the inverse movement."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.registry import register
from ..backend import get_array_module


@register("reshape")
class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            shape = tuple(shape)
            why = ("at most one size may be -1" if shape.count(-1) > 1 else
                   "the number of elements must match (one size may be -1 to infer it)")
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} "
                             f"elements) into {shape}: {why}.") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


@register("permute")
class Permute(Function):
    """Reorder axes (transpose, swapaxes and .T are all permutations)."""

    @staticmethod
    def forward(ctx, x, axes=None):
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % max(x.ndim, 1) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of a "
                             f"tensor of shape {x.shape}")
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        inverse = [0] * len(ctx.axes)
        for i, a in enumerate(ctx.axes):
            inverse[a] = i
        return g.transpose(inverse)


@register("broadcast_to")
class BroadcastTo(Function):
    """Repeat along length-1 (or new leading) axes; backward sums back (done by the engine)."""

    @staticmethod
    def forward(ctx, x, shape=None):
        xp = get_array_module(x)
        try:
            return xp.broadcast_to(x, tuple(shape))
        except ValueError:
            raise ValueError(f"broadcast_to: a tensor of shape {x.shape} cannot be broadcast to "
                             f"{tuple(shape)}; only axes of length 1 can be expanded.") from None

    @staticmethod
    def backward(ctx, g):
        return g     # Tensor.backward sums g down to the input's shape


@register("concatenate")
class Concatenate(Function):
    @staticmethod
    def forward(ctx, *xs, axis=0):
        xp = get_array_module(*xs)
        ctx.axis = axis
        try:
            out = xp.concatenate(xs, axis=axis)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"concatenate: cannot join shapes {[tuple(x.shape) for x in xs]} along "
                             f"axis {axis} ({exc}); all axes except the joined one must match.") from None
        ctx.sizes = [x.shape[axis] for x in xs]
        return out

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        cuts, total = [], 0
        for s in ctx.sizes[:-1]:
            total += s
            cuts.append(total)
        return tuple(xp.split(g, cuts, axis=ctx.axis))


@register("stack")
class Stack(Function):
    @staticmethod
    def forward(ctx, *xs, axis=0):
        xp = get_array_module(*xs)
        ctx.axis, ctx.n = axis, len(xs)
        try:
            return xp.stack(xs, axis=axis)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"stack: cannot stack shapes {[tuple(x.shape) for x in xs]} along "
                             f"axis {axis} ({exc}); every tensor must have the same shape.") from None

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        return tuple(xp.take(g, i, axis=ctx.axis) for i in range(ctx.n))


@register("split")
class Split(Function):
    """NumPy's split: ``sections`` is a number of equal parts or a list of cut indices.
    An op with several outputs: each output's gradient lands in its slice of the input."""

    @staticmethod
    def forward(ctx, x, sections=2, axis=0):
        xp = get_array_module(x)
        ctx.in_shape, ctx.dtype, ctx.axis = x.shape, x.dtype, axis
        try:
            parts = xp.split(x, sections, axis=axis)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"split: cannot split a tensor of shape {x.shape} into {sections!r} "
                             f"along axis {axis} ({exc}). For unequal parts give the cut "
                             f"indices, e.g. split(x, [2, 5], axis).") from None
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        xp = get_array_module(grads[0])
        return xp.concatenate(grads, axis=ctx.axis)


@register("pad")
class Pad(Function):
    """Constant padding with NumPy's ``pad_width``: an int (same before and after on every axis),
    one (before, after) pair for every axis, or one pair per axis."""

    @staticmethod
    def forward(ctx, x, pad_width=None, value=0.0):
        xp = get_array_module(x)
        pad_width = _pad_pairs(pad_width, x.shape)
        ctx.slices = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return xp.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.slices]


def _pad_pairs(pad_width, shape):
    """NumPy's pad_width rule spelled out: broadcast to one (before, after) pair per axis."""
    try:
        pairs = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (len(shape), 2))
    except (ValueError, TypeError):
        pairs = None
    if pairs is None or (pairs < 0).any():
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor of shape {shape}: "
                         f"give an int, one (before, after) pair, or one pair per axis "
                         f"({len(shape)} pairs), all >= 0.")
    return [(int(b), int(a)) for b, a in pairs]
