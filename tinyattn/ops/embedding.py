"""embedding: look up rows of a (V, D) table; the backward is a scatter-add of gradients into rows.

Forward is plain indexing, ``weight[indices]``. Backward: every position k that looked up row v adds
its output gradient to dweight[v]. Repeated indices must *accumulate*, which is why this is a kernel
(``embedding_backward``): the compiled one is a serial loop over positions - never a parallel loop,
whose threads would race on the same row.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module, scatter_add
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
@register_kernel("embedding_backward", "numpy")
def embedding_backward(indices, g, num_embeddings, padding_idx):
    """dweight (V, D): row v is the sum of g[k] over every position k with indices[k] == v.

    indices (K,) ints, g (K, D). The plain twin lets the array library do the scatter-add
    (np.add.at / cupyx.scatter_add); the padding row gets no gradient."""
    xp = get_array_module(g)
    dweight = xp.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    scatter_add(dweight, indices, g)
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return dweight


@register_op("embedding")
class Embedding(Function):
    """weight (V, D), static indices (any shape, ints) -> (*indices.shape, D)."""

    @staticmethod
    def forward(ctx, weight, indices=None, padding_idx=None):
        ctx.indices, ctx.num_embeddings, ctx.padding_idx = indices, weight.shape[0], padding_idx
        return weight[indices]

    @staticmethod
    def backward(ctx, g):
        flat = ctx.indices.reshape(-1)
        g_rows = g.reshape(flat.shape[0], g.shape[-1])
        return kernels.get("embedding_backward", g_rows)(flat, g_rows, ctx.num_embeddings,
                                                         ctx.padding_idx)


def embedding(indices, weight, padding_idx=None):
    """``torch.nn.functional.embedding``: rows of ``weight`` (V, D) picked by integer ``indices``
    (array or Tensor, any shape) -> Tensor (*indices.shape, D). ``padding_idx`` (may be negative,
    counted from the end) names a row that receives no gradient."""
    weight = weight if isinstance(weight, Tensor) else Tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be a (num_embeddings, dim) table, got shape "
                         f"{tuple(weight.shape)}.")
    v = weight.shape[0]
    xp = get_array_module(weight.array)
    idx = indices.array if isinstance(indices, Tensor) else xp.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}. Token ids are "
                        f"whole numbers: convert with indices.astype('int64').")
    out_of_range = (idx < 0) | (idx >= v)           # checked where the indices live: on a GPU one
    if idx.size and bool(out_of_range.any()):       # bool comes back, never the index array
        bad = idx[out_of_range].ravel()[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for a table of {v} rows; "
                         f"indices must lie in [0, {v - 1}].")
    if padding_idx is not None:
        if not -v <= padding_idx < v:
            raise ValueError(f"embedding: padding_idx={padding_idx} is out of range for {v} rows; "
                             f"it must lie in [-{v}, {v - 1}].")
        padding_idx = int(padding_idx) % v
    return Embedding.apply(weight, indices=idx.astype(np.int64, copy=False), padding_idx=padding_idx)
