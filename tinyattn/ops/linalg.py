"""Matrix product, with NumPy's rules for 1-D operands and broadcast batch axes."""
from __future__ import annotations

import numpy as np  # identity check only: is the backend NumPy (its BLAS can add the bias)?

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import sum_to_shape
from ..backend import get_array_module
from ..kernels.lowlevel.numpy_blas import addmm


@register_op("matmul")
class MatMul(Function):
    """a @ b. 1-D a is a row (k,), 1-D b a column (k,); leading axes broadcast as batches.

    Backward: dA = dC Bᵀ, dB = Aᵀ dC on the 2-D (matrix) view, summed over broadcast batches.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both operands need at least 1 dimension; use * for scalars.")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
            raise ValueError(
                f"matmul: inner dimensions differ: a has shape {a.shape} (last axis "
                f"{a.shape[-1]}), b has shape {b.shape} ({'second-to-last' if b.ndim > 1 else 'only'}"
                f" axis {k_b}). For a @ b the last axis of a must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'length'} of b; transpose one of them "
                f"(e.g. a @ b.T) if you meant that.")
        ctx.save_for_backward(a, b)
        try:
            return get_array_module(a, b).matmul(a, b)
        except ValueError:                      # the batch axes (all but the last two) differ
            raise ValueError(
                f"matmul: the batch axes of a {a.shape} and b {b.shape} cannot be broadcast: "
                f"everything before the last two axes must be equal or 1 (aligned from the "
                f"right); reshape or unsqueeze one operand.") from None

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        xp = get_array_module(a, b)
        a2 = a[None, :] if a.ndim == 1 else a          # treat vectors as 1-row / 1-column matrices
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = g[..., None, :] if b.ndim > 1 else g[..., None]
        if b.ndim == 1:
            g = g[..., :, None] if a.ndim > 1 else g[..., None]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to_shape(xp.matmul(g, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to_shape(xp.matmul(xp.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """a @ b: (..., m, k) @ (..., k, n) -> (..., m, n), batch axes broadcast; a 1-D operand is a
    row (on the left) or a column (on the right) and its axis is dropped from the result."""
    return MatMul.apply(a, b)


# Below this many rows, x @ wᵀ is computed as (w @ xᵀ)ᵀ with xᵀ copied to a contiguous array
# first: the same products, but for a few rows and a wide weight OpenBLAS's kernel for the first
# form ran ~2.5x slower (4 x 128 rows against a 384 x 128 weight: 36 µs, against 15 µs the second
# way, copy included; from 64 rows on the two are alike, and for many rows the first is faster).
# Copying the (rows, in) input's transpose (a few hundred numbers) makes the product a plain
# non-transposed one: inside the generation benchmark that took the 384- and 512-wide
# projections from 25 and 31 µs to 14 and 16 µs, and was no slower for the narrower ones.
# A generation step has a handful of rows.
FEW_ROWS = 32


@register_op("linear")
class Linear(Function):
    """x (..., in) @ w (out, in)ᵀ + b (out,) -> (..., out), as one op (PyTorch's addmm); the
    leading axes are one matrix of rows (one BLAS call, and the weight's gradient comes out of it
    already summed over them).

    Why not ``x @ w.T + b`` as two ops: the addition would allocate a second (N, out) array and
    pass over it again; here the bias goes into the product's own fresh output, in place.

    Backward: dx = g w, dw = gᵀ x, db = Σ over rows of g.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)       # x itself, so that in-place changes to it are caught
        rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        xp = get_array_module(rows, w)
        # the result is made in its final shape and filled through a 2-D view of it, so that what
        # the op returns owns its memory (a reshaped product would be a view, which costs every op
        # a search for the array it looks at: Function.apply's version sharing)
        result = xp.empty((*x.shape[:-1], w.shape[0]), dtype=xp.result_type(rows, w))
        out = result if x.ndim == 2 else result.reshape(rows.shape[0], w.shape[0])
        if rows.shape[0] <= FEW_ROWS:
            out[...] = xp.matmul(w, xp.ascontiguousarray(rows.T)).T
        elif b is not None and xp is np and addmm(rows, w, b, out):
            return result                 # the same sum, the bias added inside BLAS's own pass
        else:
            xp.matmul(rows, w.T, out=out)
        if b is not None:
            out += b
        return result

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        xp = get_array_module(x, w)
        needs = ctx.needs_input_grad
        rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        g = g.reshape(rows.shape[0], w.shape[0])
        gx = (g @ w).reshape(x.shape) if needs[0] else None
        gw = g.T @ rows if needs[1] else None
        # Σ over rows as a matrix-vector product: 1ᵀ g in BLAS's gemv, ~3x faster than NumPy's
        # column sums (768 x 192 float32: 10 against 27 µs; equal to them to rounding)
        gb = xp.ones(g.shape[0], dtype=g.dtype) @ g if needs[2] else None
        return gx, gw, gb
