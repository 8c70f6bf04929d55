"""Attention masks in PyTorch's MultiheadAttention convention, turned into additive masks.

A **bool mask is True where attention is NOT allowed**; a float mask is *added* to the scores
(0 = allowed, -inf = blocked, anything else = a bias). This is the opposite of
``scaled_dot_product_attention``'s bool convention, so the layers convert every mask to the additive
form once, here, and add it to the scores.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd.tensor import Tensor, unwrap
from ..backend import active_module, device_backend, device_of, get_array_module, to_backend

__all__ = ["as_additive_mask", "causal_additive_mask", "pad_allowed_keys", "unwrap"]


def as_additive_mask(mask, name, dtype, owner="MultiheadAttention", like=None):
    """PyTorch's MHA mask convention -> something to add to the scores.

    bool (True = blocked) becomes 0 / -inf; a float mask is used as it is (a Tensor that requires
    grad stays in the graph, so a learned bias such as ALiBi gets its gradient). Other dtypes are
    an error, as in PyTorch. Returns None, a plain array (on the backend of the array ``like``,
    if given), or a Tensor.
    """
    if mask is None:
        return None
    if isinstance(mask, Tensor) and mask.requires_grad:
        if mask.dtype.kind != "f":
            raise TypeError(f"{owner}: {name} must be bool or floating point, got {mask.dtype}.")
        return mask if mask.dtype == dtype else ops.astype(mask, dtype)
    arr = unwrap(mask)
    if not hasattr(arr, "dtype"):
        arr = active_module().asarray(arr)
    if like is not None and get_array_module(arr) is not get_array_module(like):
        arr = to_backend(arr, device_backend(device_of(like)))
    xp = get_array_module(arr)
    if arr.dtype == bool:
        return xp.where(arr, -xp.inf, 0.0).astype(dtype)
    if arr.dtype.kind == "f":
        return arr.astype(dtype, copy=False)
    raise TypeError(f"{owner}: {name} has dtype {arr.dtype}; only bool masks (True = not allowed "
                    f"to attend) and float masks (added to the scores) are supported. Convert it, "
                    f"e.g. mask.astype(bool).")


def causal_additive_mask(xp, size, dtype):
    """(size, size) array: 0 on and below the diagonal, -inf above (position i sees 0..i)."""
    upper = xp.triu(xp.ones((int(size), int(size)), dtype=bool), k=1)
    return xp.where(upper, -xp.inf, 0.0).astype(dtype)


def pad_allowed_keys(mask, n):
    """Append n allowed (0) columns to a mask: for the extra bias_k / zero-attention keys."""
    if mask is None or n == 0:
        return mask
    if isinstance(mask, Tensor):
        return ops.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, n)])
    xp = get_array_module(mask)
    return xp.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, n)])
