"""Numba: embedding backward: the scatter-add of gradient rows, as one serial loop (reference: ops/embedding.py)."""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import register_kernel
from .rows import _JIT

# ---------------------------------------------------------------------------------- embedding
@njit(**_JIT)
def _scatter_add_rows(indices, g, dweight):
    """dweight[indices[k]] += g[k] for k = 0, 1, ...: one thread, in order, so repeated indices
    simply accumulate (a parallel loop here would race on shared rows)."""
    for k in range(indices.shape[0]):
        row = indices[k]
        for j in range(g.shape[1]):
            dweight[row, j] += g[k, j]


@register_kernel("embedding_backward", "numba")
def embedding_backward(indices, g, num_embeddings, padding_idx):
    dweight = np.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    _scatter_add_rows(np.ascontiguousarray(indices), np.ascontiguousarray(g), dweight)
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return dweight
