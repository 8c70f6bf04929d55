"""Ops that move numbers around without changing them: reshape, permute, broadcast, join, split, pad.
Their backward is the inverse movement."""
from __future__ import annotations

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
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} "
                             f"elements) into {tuple(shape)}; the number of elements must "
                             f"match.") from None

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
        ctx.sizes = [x.shape[axis] for x in xs]
        return xp.concatenate(xs, axis=axis)

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
        return xp.stack(xs, axis=axis)

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
        parts = xp.split(x, sections, axis=axis)
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        xp = get_array_module(grads[0])
        return xp.concatenate(grads, axis=ctx.axis)


@register("pad")
class Pad(Function):
    """Constant padding with NumPy's ``pad_width`` ((before, after) per axis)."""

    @staticmethod
    def forward(ctx, x, pad_width=None, value=0.0):
        xp = get_array_module(x)
        if isinstance(pad_width, int):
            pad_width = [(pad_width, pad_width)] * x.ndim
        pad_width = [tuple(p) if not isinstance(p, int) else (p, p) for p in pad_width]
        if len(pad_width) != x.ndim:
            raise ValueError(f"pad: pad_width has {len(pad_width)} entries but the tensor has "
                             f"{x.ndim} axes (shape {x.shape}); give one (before, after) per axis.")
        ctx.slices = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return xp.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.slices]
