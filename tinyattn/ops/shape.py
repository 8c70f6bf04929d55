"""Ops that move numbers around without changing them: reshape, permute, broadcast, join, split, pad.
Their backward is the inverse movement."""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ._args import dims, one_dim


@register_op("reshape")
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


def _shape_arg(shape):
    """reshape(2, 3) and reshape((2, 3)) both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    for s in shape:
        if type(s) is not int:
            return tuple([int(s) for s in shape])
    return shape


def reshape(x, *shape):
    """The same numbers in a new shape: ``reshape(x, 2, 3)`` or ``reshape(x, (2, -1))``."""
    return Reshape.apply(x, shape=_shape_arg(shape))


def squeeze(x, dim=None, *, axis=None):
    """Drop length-1 axes: all of them, or the given one(s) (which must have length 1)."""
    axis, _ = dims("squeeze", dim, axis)
    shape = x.shape
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        for a in axes:
            if not -x.ndim <= a < x.ndim:
                raise ValueError(f"squeeze: axis {a} is out of range for a tensor of shape {shape}")
        axes = {a % x.ndim for a in axes}
        # as in PyTorch, a named dim whose length is not 1 stays (NumPy would raise)
        new = tuple(n for i, n in enumerate(shape) if i not in axes or n != 1)
    return Reshape.apply(x, shape=new)


def flatten(x, start_dim=0, end_dim=-1, *, start_axis=None, end_axis=None):
    """Merge dims start_dim..end_dim into one (PyTorch's flatten; ``flatten(x)`` is 1-D)."""
    start_axis = start_dim if start_axis is None else start_axis
    end_axis = end_dim if end_axis is None else end_axis
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    start, end = start_axis % x.ndim, end_axis % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} for a "
                         f"tensor of shape {x.shape}")
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return Reshape.apply(x, shape=x.shape[:start] + (merged,) + x.shape[end + 1:])


def unsqueeze(x, dim=None, *, axis=None):
    """Insert a length-1 axis at position ``dim`` of the result."""
    axis, _ = dims("unsqueeze", dim, axis)
    if axis is None:
        raise TypeError("unsqueeze: give the position of the new dim, e.g. x.unsqueeze(0).")
    nd = x.ndim + 1
    if not -nd <= axis < nd:                  # x.unsqueeze(5) on a matrix: not silently -> -1
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor of shape "
                         f"{tuple(x.shape)}: the new axis goes at one of {-nd} .. {nd - 1}.")
    axis = axis % nd
    shape = list(x.shape)
    shape.insert(axis, 1)
    return Reshape.apply(x, shape=tuple(shape))


@register_op("permute")
class Permute(Function):
    """Reorder axes (transpose, swapaxes and .T are all permutations)."""

    @staticmethod
    def forward(ctx, x, axes=None):
        nd = x.ndim
        if axes is None:
            axes = tuple(range(nd - 1, -1, -1))
        elif len(axes) == nd:
            try:                          # the usual case: the array checks the permutation itself
                out = x.transpose(axes)   # (negative axes count from the end, as ours do)
            except (ValueError, IndexError, TypeError):
                out = None
            if out is not None:
                ctx.axes = axes
                return out
        axes = tuple([a % max(nd, 1) for a in axes])
        if len(axes) != nd or len(set(axes)) != nd:       # (each is in range after %)
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


def permute(x, *axes, dims=None):
    """Reorder the axes: ``permute(x, 2, 0, 1)``, ``permute(x, (2, 0, 1))`` or
    ``permute(x, dims=(2, 0, 1))``; output axis i is input axis axes[i]."""
    if dims is not None:
        axes = (tuple(dims),)
    return Permute.apply(x, axes=_shape_arg(axes) if axes else None)


def transpose(x, *axes, dim0=None, dim1=None):
    """Three spellings, none ambiguous:

    - ``transpose(x)``: reverse the axes (NumPy; same as ``x.T``);
    - ``transpose(x, dim0, dim1)`` with two ints: swap those two axes (PyTorch, so the attention
      idiom ``k.transpose(-2, -1)`` means what it says, on any number of axes);
    - ``transpose(x, (2, 0, 1))`` or three or more ints: a permutation (NumPy; same as ``permute``).
    """
    if dim0 is not None or dim1 is not None:
        axes = axes + tuple(d for d in (dim0, dim1) if d is not None)
    if not axes or axes == (None,):
        return Permute.apply(x, axes=None)
    if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
        return swapaxes(x, *axes)
    return Permute.apply(x, axes=_shape_arg(axes))


def t(x):
    """torch.t: the transpose of a matrix; a 0-d or 1-d tensor comes back as it is."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {tuple(x.shape)}; "
                         f"use x.transpose(d0, d1) or x.mT (the last two dims) instead.")
    return Permute.apply(x, axes=None) if x.ndim == 2 else x


def swapaxes(x, a, b):
    """Exchange axes a and b."""
    for axis in (a, b):
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"swapaxes: axis {axis} is out of range for a tensor of shape "
                             f"{x.shape} ({x.ndim} axes)")
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return Permute.apply(x, axes=tuple(order))


@register_op("broadcast_to")
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


def broadcast_to(x, shape):
    """Repeat along length-1 (and new leading) axes to ``shape``; the gradient is summed back."""
    return BroadcastTo.apply(x, shape=tuple(shape))


def expand(x, *shape):
    """PyTorch's expand: -1 keeps an axis as it is."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0 or any(s == -1 for s in shape[:lead]):
        raise ValueError(f"expand: cannot expand a tensor of shape {x.shape} to {shape}: give at "
                         f"least {x.ndim} sizes, and -1 only for axes the tensor already has.")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return BroadcastTo.apply(x, shape=shape)


@register_op("concatenate")
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


def concatenate(tensors, dim=0, *, axis=None):
    """Join along an existing dim; the other dims must match (torch.cat)."""
    dim, _ = dims("concatenate", dim if axis is None else None, axis)
    return Concatenate.apply(*tensors, axis=dim)


cat = concatenate


@register_op("stack")
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


def stack(tensors, dim=0, *, axis=None):
    """Join equal-shaped tensors along a new dim."""
    dim, _ = dims("stack", dim if axis is None else None, axis)
    return Stack.apply(*tensors, axis=dim)


@register_op("split")
class Split(Function):
    """NumPy's split: ``sections`` is a number of equal parts or a list of cut indices.
    An op with several outputs: each output's gradient lands in its slice of the input."""

    @staticmethod
    def forward(ctx, x, sections=2, axis=0):
        shape = x.shape
        ctx.in_shape, ctx.dtype, ctx.axis = shape, x.dtype, axis
        nd = len(shape)
        try:
            if type(sections) is list and -nd <= axis < nd:       # cut indices: views by slices
                lead = (slice(None),) * (axis % nd)
                parts, start = [], 0
                for cut in sections:
                    parts.append(x[(*lead, slice(start, cut))])
                    start = cut
                parts.append(x[(*lead, slice(start, shape[axis]))])
                return tuple(parts)
            parts = get_array_module(x).split(x, sections, axis=axis)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"split: cannot split a tensor of shape {x.shape} into {sections!r} "
                             f"along axis {axis} ({exc}). For unequal parts give the cut "
                             f"indices, e.g. split(x, [2, 5], axis).") from None
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        xp = get_array_module(grads[0])
        return xp.concatenate(grads, axis=ctx.axis)


def tensor_split(x, indices_or_sections, dim=0, *, axis=None):
    """NumPy's split (torch.tensor_split): an int N gives N parts (the first ones one longer when
    the length does not divide), a list gives the indices where to cut."""
    dim, _ = dims("tensor_split", dim if axis is None else None, axis)
    d = one_dim("tensor_split", dim, x.ndim)
    sections = indices_or_sections
    if isinstance(sections, numbers.Integral):
        if sections < 1:
            raise ValueError(f"tensor_split: the number of parts must be at least 1, got {sections}.")
        n, k = x.shape[d], int(sections)
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        sections = [sum(sizes[:i + 1]) for i in range(k - 1)]
    return list(Split.apply(x, sections=list(sections), axis=d))


array_split = tensor_split


def split(x, split_size_or_sections, dim=0, *, axis=None):
    """PyTorch's split: an int is the size of each chunk (the last may be smaller), a list the
    size of each part (they must add up to the length of ``dim``). NumPy's split into N equal
    parts, or at cut indices, is ``tensor_split``."""
    if axis is not None:
        dim, _ = dims("split", None, axis)
    shape = x.array.shape if isinstance(x, Tensor) else x.shape
    d = _fast_dim(dim, len(shape))
    if d is None:
        d = one_dim("split", dim, len(shape))
    n = shape[d]
    size = split_size_or_sections
    if type(size) is int or isinstance(size, numbers.Integral):
        if size < 1:
            raise ValueError(f"split: split_size must be a positive chunk length, got {size}.")
        sizes = [min(size, n - start) for start in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in size]
        if sum(sizes) != n:
            raise ValueError(
                f"split: the sizes {sizes} add up to {sum(sizes)}, but dim {d} of the "
                f"tensor (shape {tuple(x.shape)}) has length {n}. split takes chunk sizes (as in "
                f"PyTorch); to cut at indices or into N parts use tensor_split(x, ...).")
    cuts = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
    return list(Split.apply(x, sections=cuts, axis=d))


def chunk(x, chunks, dim=0):
    """``chunks`` parts of length ceil(n / chunks) along ``dim`` (fewer when they run out), as
    torch.chunk."""
    if (type(chunks) is not int and not isinstance(chunks, numbers.Integral)) or chunks < 1:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}.")
    shape = x.array.shape if isinstance(x, Tensor) else x.shape
    nd = len(shape)
    d = _fast_dim(dim, nd)
    if d is None:
        d = one_dim("chunk", dim, nd)
    n = shape[d]
    size = max(-(-n // chunks), 1)
    return list(Split.apply(x, sections=list(range(size, n, size)), axis=d))   # split's cuts


def _fast_dim(dim, nd):
    """dim as a non-negative int when it is a plain int in range (the usual case, no checks to
    pay for); None otherwise, for one_dim to normalise or explain."""
    if type(dim) is int:
        if 0 <= dim < nd:
            return dim
        if -nd <= dim < 0:
            return dim + nd
    return None


def unflatten(x, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one may be -1), the inverse of flatten."""
    d = one_dim("unflatten", dim, x.ndim)
    return Reshape.apply(x, shape=x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def movedim(x, source, destination):
    """Move dim(s) ``source`` to position(s) ``destination``; the others keep their order."""
    src = (source,) if isinstance(source, numbers.Integral) else tuple(source)
    dst = (destination,) if isinstance(destination, numbers.Integral) else tuple(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim: {len(src)} source dims but {len(dst)} destinations.")
    src = [one_dim("movedim", s, x.ndim) for s in src]
    dst = [one_dim("movedim", s, x.ndim) for s in dst]
    rest = iter([i for i in range(x.ndim) if i not in src])
    where = dict(zip(dst, src))
    return Permute.apply(x, axes=tuple(where[i] if i in where else next(rest) for i in range(x.ndim)))


@register_op("pad")
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


def pad(x, pad_width, value=0.0):
    """Constant padding, NumPy's ``pad_width``: an int, a (before, after) pair, or one pair per
    axis. (PyTorch's F.pad lists pairs from the last axis backwards; this does not.)"""
    return Pad.apply(x, pad_width=pad_width, value=value)


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
