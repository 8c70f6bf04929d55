"""Products and running totals: prod, cumsum, cumprod, with PyTorch's ``dim``/``keepdim``.

prod's gradient is Π of the *other* elements, which is out / x only where x != 0. We count the
zeros of each slice instead: none -> out / x; exactly one -> the product of the rest at that zero
and 0 elsewhere; two or more -> 0 everywhere. That is PyTorch's answer, and never divides by 0.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._args import dims, ndim_of, one_dim
from .elementwise import Cast


@register_op("prod")
class Prod(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        axes = tuple(range(x.ndim)) if dim is None else (dim,)
        ctx.save_for_backward(x)
        ctx.axes, ctx.shape = axes, x.shape
        out = x.prod(axis=axes, keepdims=True)
        if dim is None:
            return out.reshape(())
        return out if keepdim else out.reshape([n for i, n in enumerate(x.shape) if i != dim])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        xp = get_array_module(x)
        g = g.reshape([1 if i in ctx.axes else n for i, n in enumerate(ctx.shape)])
        zero = x == 0
        safe_x = xp.where(zero, 1, x)
        rest = safe_x.prod(axis=ctx.axes, keepdims=True)                 # Π of the nonzeros
        n_zeros = zero.sum(axis=ctx.axes, keepdims=True)
        others = xp.where(n_zeros == 0, rest / safe_x,
                          xp.where((n_zeros == 1) & zero, rest, 0))
        return g * others


@register_op("cumsum")
class Cumsum(Function):
    """Running sum along dim; the gradient is the running sum of g taken from the other end."""

    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.dim = dim
        return get_array_module(x).cumsum(x, axis=dim)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        return xp.flip(xp.cumsum(xp.flip(g, ctx.dim), axis=ctx.dim), ctx.dim)


@register_op("cumprod")
class Cumprod(Function):
    """Running product along dim. d out_j / d x_i = Π_{k<=j, k!=i} x_k for j >= i: with no zero in
    a slice that is out_j / x_i (one reverse running sum); with zeros we form the products
    directly, replacing x_i by 1 in row i (n x n per slice, only for inputs that hold a zero)."""

    @staticmethod
    def forward(ctx, x, dim=0):
        out = get_array_module(x).cumprod(x, axis=dim)
        ctx.save_for_backward(x, out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        xp = get_array_module(x)
        d = ctx.dim
        if not (x == 0).any():
            tail = xp.flip(xp.cumsum(xp.flip(g * out, d), axis=d), d)
            return tail / x
        xs, gs = xp.moveaxis(x, d, -1), xp.moveaxis(g, d, -1)
        n = xs.shape[-1]
        eye = xp.eye(n, dtype=bool)
        rows = xp.where(eye, 1, xs[..., None, :])            # row i: x with x_i replaced by 1
        later = xp.triu(xp.ones((n, n), dtype=bool))          # only j >= i depends on x_i
        grad = (xp.where(later, xp.cumprod(rows, axis=-1), 0) * gs[..., None, :]).sum(axis=-1)
        return xp.moveaxis(grad, -1, d)


def prod(input, dim=None, keepdim=None, *, dtype=None, axis=None, keepdims=None):  # noqa: A002
    """Product of all elements, or along one ``dim`` (an int, as in torch.prod)."""
    dim, keepdim = dims("prod", dim, axis, keepdim, keepdims)
    x = input if dtype is None else Cast.apply(input, dtype=dtype)
    if dim is not None:
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"prod: dim must be one int (torch.prod reduces one dim at a time), "
                            f"got {dim!r}; call prod once per dim.")
        dim = one_dim("prod", dim, ndim_of(x))
    return Prod.apply(x, dim=dim, keepdim=keepdim)


def cumsum(input, dim=None, *, dtype=None, axis=None):  # noqa: A002
    """Running sum along ``dim`` (required, as in torch.cumsum)."""
    x = input if dtype is None else Cast.apply(input, dtype=dtype)
    return Cumsum.apply(x, dim=_scan_dim("cumsum", input, dim, axis))


def cumprod(input, dim=None, *, dtype=None, axis=None):  # noqa: A002
    """Running product along ``dim`` (required); correct gradients with zeros in the input."""
    x = input if dtype is None else Cast.apply(input, dtype=dtype)
    return Cumprod.apply(x, dim=_scan_dim("cumprod", input, dim, axis))


def _scan_dim(op, x, dim, axis):
    dim, _ = dims(op, dim, axis)
    if dim is None:
        raise TypeError(f"{op}: dim is required (as in torch.{op}(x, dim)); for a running "
                        f"{op[3:]} over all elements, flatten first: {op}(x.flatten(), 0).")
    return one_dim(op, dim, ndim_of(x))

