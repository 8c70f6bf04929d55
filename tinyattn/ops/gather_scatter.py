"""Reading and writing along a dim by index, masks, triangles and repeats (PyTorch's indexing ops).

gather, scatter and scatter_add all address ``x[mesh]`` where ``mesh`` is ``index`` along ``dim``
and the position itself along every other dim (``out[i][j] = x[index[i][j]][j]`` for dim 0), so
one helper builds that fancy index and forward and backward are each a single indexing step.
Repeated indices add up in gradients (``backend.scatter_add``, imported as ``add_at``).
"""
from __future__ import annotations

import numpy as np  # shapes only: broadcast_shapes

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ..backend import scatter_add as add_at   # this file's scatter_add is PyTorch's
from ._args import array_of, dims, ndim_of, one_dim, several_dims
from .shape import BroadcastTo, Reshape


def _mesh(index, dim):
    """The fancy index that picks, for every position p of ``index``, the element of x at p with
    p[dim] replaced by index[p]."""
    xp = get_array_module(index)
    parts = []
    for d, n in enumerate(index.shape):
        if d == dim:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            parts.append(xp.arange(n).reshape(shape))
    return tuple(parts)


def _check_index(op, x, dim, index, src=None):
    """PyTorch's rules for gather/scatter: integer index with x's number of dims, no longer than
    x (or src) in any dim but ``dim``, values in [-n, n) along ``dim``."""
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor (int64, as from argsort or "
                        f"argmax), got dtype {index.dtype}. Convert with index.long().")
    if index.ndim != x.ndim:
        raise ValueError(f"{op}: index has {index.ndim} dims but input has {x.ndim} (shapes "
                         f"{tuple(index.shape)} and {tuple(x.shape)}); they must have the same "
                         f"number of dims - unsqueeze the index, e.g. index.unsqueeze(-1).")
    for d, n in enumerate(index.shape):
        too_long = (d != dim and n > x.shape[d]) or (src is not None and n > src.shape[d])
        if too_long:
            raise ValueError(
                f"{op}: index of shape {tuple(index.shape)} is longer than input "
                f"{tuple(x.shape)}{'' if src is None else f' or src {tuple(src.shape)}'} in dim "
                f"{d}; every dim of index (except dim={dim}) must be <= theirs.")
    n = x.shape[dim] if x.ndim else 1
    if index.size and (int(index.min()) < -n or int(index.max()) >= n):
        raise IndexError(f"{op}: index values must lie in [{-n}, {n - 1}] for dim {dim} of "
                         f"size {n} (input shape {tuple(x.shape)}); got values from "
                         f"{int(index.min())} to {int(index.max())}.")


def _index_array(op, index):
    """An index given as a Tensor, array or list, as an integer array."""
    arr = array_of(index)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must hold integers, got dtype {arr.dtype}. Convert with "
                        f".long().")
    return arr


def _src_grad(ctx, g):
    """Each src element's gradient is g where it was written (scatter, scatter_add); the part of
    src beyond index's extent was not used and gets 0. A 0-d src went everywhere: the sum."""
    if not ctx.src_shape:
        return g[ctx.mesh].sum()
    out = get_array_module(g).zeros(ctx.src_shape, dtype=g.dtype)
    out[tuple(slice(0, n) for n in ctx.index_shape)] = g[ctx.mesh]
    return out


@register_op("gather")
class Gather(Function):
    """out[p] = x[p with p[dim] -> index[p]]; backward scatter-adds g back (repeats add up)."""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        _check_index("gather", x, dim, index)
        ctx.mesh, ctx.shape = _mesh(index, dim), x.shape
        return x[ctx.mesh]

    @staticmethod
    def backward(ctx, g):
        out = get_array_module(g).zeros(ctx.shape, dtype=g.dtype)
        return add_at(out, ctx.mesh, g), None


@register_op("scatter")
class Scatter(Function):
    """A copy of x with x[mesh] = src (or value). Where two indices coincide the last write wins
    (PyTorch leaves it unspecified). Gradients: to x, g with the overwritten places zeroed; to
    src, g gathered from where each src element went."""

    @staticmethod
    def forward(ctx, x, index, src=None, dim=0, value=None):
        _check_index("scatter", x, dim, index, src if getattr(src, "ndim", 0) else None)
        mesh = _mesh(index, dim)
        out = x.copy()
        if value is not None:
            out[mesh] = value
        else:
            out[mesh] = src[tuple(slice(0, n) for n in index.shape)] if src.ndim else src
        ctx.mesh, ctx.src_shape = mesh, getattr(src, "shape", None)
        ctx.index_shape = index.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gx = g.copy()
        gx[ctx.mesh] = 0
        wants_src = len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]
        return gx, None, (_src_grad(ctx, g) if wants_src else None)


@register_op("scatter_add")
class ScatterAdd(Function):
    """A copy of x with src added at x[mesh], repeated indices accumulating."""

    @staticmethod
    def forward(ctx, x, index, src, dim=0):
        _check_index("scatter_add", x, dim, index, src)
        ctx.mesh, ctx.src_shape, ctx.index_shape = _mesh(index, dim), src.shape, index.shape
        out = x.astype(get_array_module(x).result_type(x, src), copy=True)
        return add_at(out, ctx.mesh, src[tuple(slice(0, n) for n in index.shape)])

    @staticmethod
    def backward(ctx, g):
        return g, None, (_src_grad(ctx, g) if ctx.needs_input_grad[2] else None)


@register_op("index_select")
class IndexSelect(Function):
    """The slices x[..., index[k], ...] along dim, in index's order (repeats allowed)."""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        n = x.shape[dim] if x.ndim else 1
        if index.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D (or a single number), got shape "
                             f"{tuple(index.shape)}; flatten it, or use gather for a per-element "
                             f"index.")
        if index.size and (int(index.min()) < -n or int(index.max()) >= n):
            raise IndexError(f"index_select: index values must lie in [{-n}, {n - 1}] for dim "
                             f"{dim} of size {n} (input shape {tuple(x.shape)}); got "
                             f"{int(index.min())} to {int(index.max())}.")
        ctx.where = (slice(None),) * dim + (index.reshape(-1),)
        ctx.shape = x.shape
        return x[ctx.where] if x.ndim else x.reshape(1)[index.reshape(-1)].reshape(index.shape)

    @staticmethod
    def backward(ctx, g):
        out = get_array_module(g).zeros(ctx.shape, dtype=g.dtype)
        if not ctx.shape:
            return g.sum().reshape(()), None
        return add_at(out, ctx.where, g), None


@register_op("masked_fill")
class MaskedFill(Function):
    """x with ``value`` where mask is True (mask broadcasts to x; x keeps its dtype). The filled
    places get no gradient; a tensor value gets the sum of g over them."""

    @staticmethod
    def forward(ctx, x, mask, value):
        xp = get_array_module(x)
        if mask.dtype != bool:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}, as "
                            f"in PyTorch. Compare first (x == 0) or convert with mask.bool().")
        try:
            mask = xp.broadcast_to(mask, x.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {tuple(mask.shape)} cannot be broadcast "
                             f"to the input's shape {tuple(x.shape)}; the mask must broadcast to "
                             f"the input (not the other way round).") from None
        if getattr(value, "ndim", 0):
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                             f"{tuple(value.shape)}; for per-element values use where(mask, v, x).")
        ctx.mask = mask
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        gv = xp.where(ctx.mask, g, 0).sum() if ctx.needs_input_grad[2] else None
        return xp.where(ctx.mask, 0, g), None, gv


@register_op("index_fill")
class IndexFill(Function):
    """x with the slices ``index`` along dim set to a number; those slices get no gradient."""

    @staticmethod
    def forward(ctx, x, index, dim=0, value=0.0):
        n = x.shape[dim] if x.ndim else 1
        if index.ndim > 1:
            raise ValueError(f"index_fill: index must be 1-D, got shape {tuple(index.shape)}.")
        if index.size and (int(index.min()) < -n or int(index.max()) >= n):
            raise IndexError(f"index_fill: index values must lie in [{-n}, {n - 1}] for dim "
                             f"{dim} of size {n} (input shape {tuple(x.shape)}).")
        ctx.where = (slice(None),) * dim + (index.reshape(-1),) if x.ndim else ()
        out = x.copy()
        out[ctx.where] = value
        return out

    @staticmethod
    def backward(ctx, g):
        g = g.copy()
        g[ctx.where] = 0
        return g, None


class _Triangle(Function):
    """Keep the lower (tril) or upper (triu) triangle of the last two dims; the gradient keeps the
    same triangle. ``diagonal`` shifts the border: >0 above the main diagonal, <0 below."""
    keep = "tril"

    @classmethod
    def forward(cls, ctx, x, diagonal=0):
        if x.ndim < 2:
            raise ValueError(f"{cls.keep}: input must have at least 2 dims (a matrix, or a batch "
                             f"of them), got shape {tuple(x.shape)}.")
        ctx.diagonal = diagonal
        return getattr(get_array_module(x), cls.keep)(x, diagonal)

    @classmethod
    def backward(cls, ctx, g):
        return getattr(get_array_module(g), cls.keep)(g, ctx.diagonal)


@register_op("tril")
class Tril(_Triangle):
    keep = "tril"


@register_op("triu")
class Triu(_Triangle):
    keep = "triu"


@register_op("repeat")
class Repeat(Function):
    """Tile x ``sizes`` times along each dim (PyTorch's repeat, NumPy's tile): sizes may be longer
    than x.ndim (x gets leading 1s). Backward: view g as (s0, n0, s1, n1, ...) and sum the s's."""

    @staticmethod
    def forward(ctx, x, sizes=()):
        sizes = tuple(sizes)
        if len(sizes) < x.ndim:
            raise ValueError(f"repeat: {len(sizes)} repeat counts {sizes} for a tensor with "
                             f"{x.ndim} dims (shape {tuple(x.shape)}); give at least one per dim "
                             f"(PyTorch's rule), e.g. x.repeat({', '.join(['1'] * x.ndim)}).")
        if any(s < 0 for s in sizes):
            raise ValueError(f"repeat: repeat counts must be >= 0, got {sizes}.")
        ctx.shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
        ctx.in_shape, ctx.sizes = x.shape, sizes
        return get_array_module(x).tile(x.reshape(ctx.shape), sizes)

    @staticmethod
    def backward(ctx, g):
        pairs = [v for s, n in zip(ctx.sizes, ctx.shape) for v in (s, n)]
        return g.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2))).reshape(ctx.in_shape)


@register_op("roll")
class Roll(Function):
    """Shift elements cyclically by ``shifts`` along ``dims`` (None: the flattened tensor)."""

    @staticmethod
    def forward(ctx, x, shifts=0, dims=None):
        ctx.shifts, ctx.dims = shifts, dims
        return get_array_module(x).roll(x, shifts, dims)

    @staticmethod
    def backward(ctx, g):
        back = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return get_array_module(g).roll(g, back, ctx.dims)


@register_op("flip")
class Flip(Function):
    """Reverse the order along ``dims``; flipping g again is the gradient."""

    @staticmethod
    def forward(ctx, x, dims=()):
        ctx.dims = dims
        return get_array_module(x).flip(x, dims) if dims else x.copy()

    @staticmethod
    def backward(ctx, g):
        return get_array_module(g).flip(g, ctx.dims) if ctx.dims else g


# ---------------------------------------------------------------------- public functions

def gather(input, dim, index, *, axis=None):  # noqa: A002 - PyTorch's argument name
    """out[i][j] = input[index[i][j]][j] (dim=0), and so on for any dim; differentiable in input."""
    dim, _ = dims("gather", dim, axis)
    return Gather.apply(input, _index_array("gather", index), dim=one_dim("gather", dim, ndim_of(input)))


def scatter(input, dim, index, src=None, *, value=None, axis=None):  # noqa: A002
    """A copy of input with src (a tensor, or a number / ``value=``) written at index along dim."""
    dim, _ = dims("scatter", dim, axis)
    index = _index_array("scatter", index)
    dim = one_dim("scatter", dim, ndim_of(input))
    if src is None and value is None:
        raise TypeError("scatter: give src (a tensor) or value (a number), e.g. "
                        "scatter(x, 1, index, src) or scatter(x, 1, index, value=0.0).")
    if src is not None and not hasattr(src, "shape") and not isinstance(src, Tensor):
        src, value = None, src                 # torch.scatter(x, dim, index, 2.0)
    if value is not None:
        return Scatter.apply(input, index, dim=dim, value=value)
    return Scatter.apply(input, index, src, dim=dim)


def scatter_add(input, dim, index, src, *, axis=None):  # noqa: A002
    """A copy of input with src added at index along dim; repeated indices accumulate."""
    dim, _ = dims("scatter_add", dim, axis)
    return ScatterAdd.apply(input, _index_array("scatter_add", index), src,
                            dim=one_dim("scatter_add", dim, ndim_of(input)))


def index_select(input, dim, index, *, axis=None):  # noqa: A002
    """The slices listed in the 1-D ``index`` along ``dim``, in that order."""
    dim, _ = dims("index_select", dim, axis)
    return IndexSelect.apply(input, _index_array("index_select", index),
                             dim=one_dim("index_select", dim, ndim_of(input)))


def take_along_dim(input, indices, dim=None, *, axis=None):  # noqa: A002
    """NumPy's take_along_axis: like gather, but input and indices broadcast against each other
    in every dim except ``dim``; with dim=None both are flattened first."""
    dim, _ = dims("take_along_dim", dim, axis)
    idx = _index_array("take_along_dim", indices)
    if dim is None:
        return Gather.apply(Reshape.apply(input, shape=(-1,)), idx.reshape(-1), dim=0)
    shape = tuple(getattr(input, "shape", ()))
    if idx.ndim != len(shape):
        raise ValueError(f"take_along_dim: indices have {idx.ndim} dims but input has "
                         f"{len(shape)} (shapes {tuple(idx.shape)} and {shape}); they must have "
                         f"the same number of dims.")
    d = one_dim("take_along_dim", dim, len(shape))
    xp = get_array_module(idx)
    try:
        common = np.broadcast_shapes(*[s[:d] + s[d + 1:] for s in (shape, tuple(idx.shape))])
    except ValueError:
        raise ValueError(f"take_along_dim: input {shape} and indices {tuple(idx.shape)} cannot be "
                         f"broadcast in the dims other than dim={d}.") from None
    x_shape = common[:d] + (shape[d],) + common[d:]
    idx = xp.broadcast_to(idx, common[:d] + (idx.shape[d],) + common[d:])
    x = BroadcastTo.apply(input, shape=x_shape) if x_shape != shape else input
    return Gather.apply(x, idx, dim=d)


def masked_fill(input, mask, value):  # noqa: A002
    """input with ``value`` wherever ``mask`` (bool, broadcast to input) is True."""
    m = mask.array if isinstance(mask, Tensor) else get_array_module(mask).asarray(mask)
    return MaskedFill.apply(input, m, value)


def index_fill(input, dim, index, value, *, axis=None):  # noqa: A002
    """input with the slices ``index`` along ``dim`` set to ``value``."""
    dim, _ = dims("index_fill", dim, axis)
    value = value.item() if isinstance(value, Tensor) else value
    return IndexFill.apply(input, _index_array("index_fill", index),
                           dim=one_dim("index_fill", dim, ndim_of(input)), value=value)


def nonzero(input, *, as_tuple=False):  # noqa: A002
    """Positions of the nonzero elements: an (n, ndim) int64 tensor, or with as_tuple=True one
    1-D tensor per dim (usable as an index). Not differentiable."""
    x = input.array if isinstance(input, Tensor) else get_array_module(input).asarray(input)
    xp = get_array_module(x)
    if as_tuple:
        return tuple(Tensor(p.astype(xp.int64)) for p in xp.nonzero(x if x.ndim else x.reshape(1)))
    return Tensor(xp.argwhere(x).astype(xp.int64))


def tril(input, diagonal=0):  # noqa: A002
    """The lower triangle of the last two dims (zeros above ``diagonal``)."""
    return Tril.apply(input, diagonal=int(diagonal))


def triu(input, diagonal=0):  # noqa: A002
    """The upper triangle of the last two dims (zeros below ``diagonal``)."""
    return Triu.apply(input, diagonal=int(diagonal))


def repeat(input, *sizes):  # noqa: A002
    """Tile input: repeat(x, 2, 3) or repeat(x, (2, 3)), as x.repeat(2, 3) in PyTorch."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    return Repeat.apply(input, sizes=tuple(int(s) for s in sizes))


def repeat_interleave(input, repeats, dim=None, *, axis=None):  # noqa: A002
    """Repeat each element (dim=None: of the flattened input) or each slice along ``dim``
    ``repeats`` times; repeats is an int or one count per element/slice."""
    dim, _ = dims("repeat_interleave", dim, axis)
    x = input if dim is not None else Reshape.apply(input, shape=(-1,))
    d = 0 if dim is None else one_dim("repeat_interleave", dim, ndim_of(input))
    n = x.shape[d] if ndim_of(x) else 1
    xp = get_array_module(x)
    counts = array_of(repeats, like=x)
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or counts.size not in (1, n):
        raise ValueError(f"repeat_interleave: repeats must be an int or 1-D integers with one "
                         f"count per slice ({n} along dim {d}), got {counts.dtype} of shape "
                         f"{tuple(counts.shape)}.")
    if counts.size and int(counts.min()) < 0:
        raise ValueError("repeat_interleave: repeats must be >= 0.")
    # Repeating slice k counts[k] times is selecting the slices 0,0,..,1,1,..: one index_select.
    return IndexSelect.apply(x, xp.repeat(xp.arange(n), counts.reshape(-1)), dim=d)


def roll(input, shifts, dims=None):  # noqa: A002
    """Shift cyclically by ``shifts`` along ``dims`` (None: roll the flattened tensor)."""
    if isinstance(shifts, (list, tuple)):
        shifts = tuple(int(s) for s in shifts)
        if dims is None or len(dims) != len(shifts):
            raise ValueError(f"roll: {len(shifts)} shifts need as many dims, got dims={dims!r}.")
    if dims is not None:
        dims = (tuple(one_dim("roll", d, ndim_of(input)) for d in dims)
                if isinstance(dims, (list, tuple)) else one_dim("roll", dims, ndim_of(input)))
    return Roll.apply(input, shifts=shifts, dims=dims)


def flip(input, dims):  # noqa: A002
    """Reverse the order of elements along each dim in ``dims``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Flip.apply(input, dims=several_dims("flip", dims, ndim_of(input)) if dims else ())
