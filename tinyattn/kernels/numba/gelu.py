"""Numba: exact GELU forward, x·Φ(x), in one pass (reference: gelu_forward in ops/elementwise.py).

Why: the twin is five whole-array steps (x/√2, erf, 1 + ·, 0.5·x, the product), each a NumPy call
with its own allocation; on a generation step's (4, 1, 512) activation those calls, not the
arithmetic, were the cost (~16 us against PyTorch's ~7). Here every element takes the same steps
in the same order and dtype as the twin (float32 rounded after each one, erf from the same
series, kernels/numba/erf.py), so the results are bit-identical to it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import register_kernel
from .erf import LIMIT, _series
from .rows import _JIT

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@njit(**_JIT)
def _gelu_float32(x, out):
    c, half, one = np.float32(_INV_SQRT_2), np.float32(0.5), np.float32(1.0)
    for i in range(x.shape[0]):
        xi = x[i]
        v = np.float64(xi * c)                          # x / √2 rounded to float32, as the twin
        a = min(abs(v), LIMIT)
        r = 1.0 if a >= LIMIT else a * _series(a * a)
        e = np.float32(v if v != v else math.copysign(r, v))
        out[i] = (half * xi) * (one + e)


@njit(**_JIT)
def _gelu_float64(x, out):
    for i in range(x.shape[0]):
        xi = x[i]
        out[i] = (0.5 * xi) * (1.0 + math.erf(xi * _INV_SQRT_2))


@register_kernel("gelu_forward", "numba")
def gelu_forward(x):
    """x of float32 or float64, at least 1-d (the op sends 0-d and other dtypes to the twin)."""
    flat = (x if x.flags.c_contiguous else np.ascontiguousarray(x)).reshape(-1)
    out = np.empty_like(flat)
    (_gelu_float32 if x.dtype == np.float32 else _gelu_float64)(flat, out)
    return out.reshape(x.shape)
