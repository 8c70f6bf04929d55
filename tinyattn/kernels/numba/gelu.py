"""Numba: exact GELU forward x·Φ(x) and its gradient, each in one pass (reference: gelu_forward and
gelu_backward in ops/elementwise.py).

Why: the twins are whole-array steps (x/√2, erf, 1 + ·, 0.5·x, the product; the gradient adds an
exp and four more), each a NumPy call with its own allocation and its own pass over memory; on a
generation step's (4, 1, 512) activation those calls, not the arithmetic, were the cost (~16 µs
against PyTorch's ~7), and on (4, 40, 512) the backward's temporaries doubled its time.

Forward: every element takes the twin's steps in the same order and dtype (float32 rounded after
each one, erf from the same compiled polynomial, kernels/numba/erf.py), so the results are
bit-identical to it. Backward: Φ(x) + x·φ(x) with φ(x) = e^(-x²/2)/√(2π); erf as in the forward,
e^ from lowlevel/fastmath.py (vectorised, within a few units in the last place of np.exp), so it
agrees with the twin to rounding, not bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import implementation, register_kernel
from ..lowlevel import fastmath as fm
from .erf import erf_of_float32
from .rows import _JIT_FMA

# erf.py's fit and how it is evaluated, inlined here (see the note at the end of erf.py's docstring)
ERF_FIT = "degree 16 on [0, 3.9²], second-order Horner"
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(**_JIT_FMA)
def _gelu_float32(x, out):
    c, half, one = np.float32(_INV_SQRT_2), np.float32(0.5), np.float32(1.0)
    for i in range(x.shape[0]):
        xi = x[i]
        # x / √2 rounded to float32 first, as in the twin
        out[i] = (half * xi) * (one + erf_of_float32(xi * c))


@njit(**_JIT_FMA)
def _gelu_float64(x, out):
    for i in range(x.shape[0]):
        xi = x[i]
        out[i] = (0.5 * xi) * (1.0 + math.erf(xi * _INV_SQRT_2))


@njit(**_JIT_FMA)
def _gelu_backward_float32(x, g, out):
    c, half, one = np.float32(_INV_SQRT_2), np.float32(0.5), np.float32(1.0)
    k, minus_half = np.float32(_INV_SQRT_2PI), np.float32(-0.5)
    for i in range(x.shape[0]):
        xi = x[i]
        cdf = half * (one + erf_of_float32(xi * c))
        pdf = k * fm.exp(minus_half * xi * xi)
        out[i] = g[i] * (cdf + xi * pdf)


@njit(**_JIT_FMA)
def _gelu_backward_float64(x, g, out):
    for i in range(x.shape[0]):
        xi = x[i]
        cdf = 0.5 * (1.0 + math.erf(xi * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * fm.exp(-0.5 * xi * xi)
        out[i] = g[i] * (cdf + xi * pdf)


def _flat(a):
    return (a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1)


@register_kernel("gelu_forward", "numba")
def gelu_forward(x):
    """x of float32 or float64, at least 1-d (the op sends 0-d and other dtypes to the twin)."""
    flat = _flat(x)
    out = np.empty_like(flat)
    (_gelu_float32 if x.dtype == np.float32 else _gelu_float64)(flat, out)
    return out.reshape(x.shape)


@register_kernel("gelu_backward", "numba")
def gelu_backward(x, g):
    """g · GELU'(x); x and g of one float dtype and one shape, else the twin (which broadcasts)."""
    if (x.shape != g.shape or x.dtype != g.dtype or x.dtype not in (np.float32, np.float64)
            or not x.ndim):
        return implementation("gelu_backward", "numpy")(x, g)
    out = np.empty(x.size, x.dtype)
    (_gelu_backward_float32 if x.dtype == np.float32 else _gelu_backward_float64)(
        _flat(x), _flat(g), out)
    return out.reshape(x.shape)
