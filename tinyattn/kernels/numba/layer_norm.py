"""Numba: layer_norm forward and backward, one fused pass per row (reference: ops/layernorm.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import register_kernel
from .rows import _JIT, centred_square_total, dot_totals, row_total

# ---------------------------------------------------------------------------------- layer norm
# The row sums are rows.row_total and friends: compiled on their own with the one relaxation that
# lets LLVM keep a vector of partial sums (rows.py says why). With eight scalar running sums a
# (768, 64) input took ~57 µs, ~34 with these; one running sum (a chain of dependent float64
# additions, ~4 cycles each) had taken ~100.
# An absent weight is a row of ones and an absent bias a row of -0.0: x · 1 and x + (-0.0) are x
# exactly (signed zeros, inf and NaN included), so the loops have no branch and vectorise.
@njit(**_JIT)
def _layer_norm_rows(x, weight, bias, eps, y, mean, rstd):
    """Per row: mean, biased variance (two passes, as the twin), then y = x̂ · weight + bias."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        mu = row_total(xr) / n
        inv = 1.0 / math.sqrt(centred_square_total(xr, mu) / n + eps)
        mean[r], rstd[r] = mu, inv
        mu, inv = mean[r], rstd[r]          # in x's dtype, as the twin: float32 rows stay float32
        for j in range(n):                  # (16 numbers per instruction; float64 took 2.4x longer)
            yr[j] = ((xr[j] - mu) * inv) * weight[j] + bias[j]


def _ones(n, dtype):
    return np.ones(n, dtype=dtype)


def _no_bias(n, dtype):
    return np.full(n, -0.0, dtype=dtype)


@register_kernel("layer_norm_forward", "numba")
def layer_norm_forward(x, weight, bias, eps):
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    m, n = x.shape
    y = np.empty_like(x)
    mean, rstd = np.empty(m, dtype=x.dtype), np.empty(m, dtype=x.dtype)
    _layer_norm_rows(x, _ones(n, x.dtype) if weight is None else weight,
                     _no_bias(n, x.dtype) if bias is None else bias, eps, y, mean, rstd)
    return y, mean, rstd


@njit(**_JIT)
def _layer_norm_backward_rows(g, x, mean, rstd, weight, dx, dweight, dbias):
    """One pass per row for dx (two row sums first), adding the row's share into dweight, dbias."""
    m, n = x.shape
    dweight[:] = 0.0
    dbias[:] = 0.0
    for r in range(m):
        gr, xr, dxr = g[r], x[r], dx[r]
        mu, rs = mean[r], rstd[r]
        sum_gh, sum_gh_xhat = dot_totals(gr, weight, xr, mu, rs)
        T = type(mu)                        # the means in x's dtype (see the forward)
        a, b = T(sum_gh / n), T(sum_gh_xhat / n)
        for j in range(n):
            xhat = (xr[j] - mu) * rs
            dxr[j] = rs * (gr[j] * weight[j] - a - xhat * b)
            dweight[j] += gr[j] * xhat
            dbias[j] += gr[j]


@register_kernel("layer_norm_backward", "numba")
def layer_norm_backward(g, x, mean, rstd, weight):
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    n = x.shape[1]
    dx = np.empty_like(x)
    dweight, dbias = np.empty(n, dtype=x.dtype), np.empty(n, dtype=x.dtype)
    _layer_norm_backward_rows(g, x, mean, rstd, _ones(n, x.dtype) if weight is None else weight,
                              dx, dweight, dbias)
    return dx, dweight, dbias
