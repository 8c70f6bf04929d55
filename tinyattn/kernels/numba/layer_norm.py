"""Numba: layer_norm forward and backward, one fused pass per row (reference: ops/layernorm.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import register_kernel
from .rows import _JIT, _row_sum

# ---------------------------------------------------------------------------------- layer norm
# The row sums keep several running sums (rows._row_sum explains why): one running sum is a chain
# of dependent float64 additions, ~4 cycles each, and a (768, 64) input spent most of its time
# waiting on them (~100 µs; with four or eight chains ~3x less).
@njit(inline="always", **_JIT)
def _centred_square_sum(row, n, mu):
    """Σ (row[j] - mu)², in float64, with four running sums."""
    s0 = s1 = s2 = s3 = 0.0
    n4 = n - n % 4
    for c in range(0, n4, 4):
        d0, d1, d2, d3 = row[c] - mu, row[c + 1] - mu, row[c + 2] - mu, row[c + 3] - mu
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
    for c in range(n4, n):
        d = row[c] - mu
        s0 += d * d
    return (s0 + s1) + (s2 + s3)


@njit(**_JIT)
def _layer_norm_rows(x, weight, bias, eps, y, mean, rstd):
    """Per row: mean, biased variance (two passes, as the twin), then y = x̂ · weight + bias.
    weight / bias of length 0 mean 'none'."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        mu = _row_sum(xr, n) / n
        inv = 1.0 / math.sqrt(_centred_square_sum(xr, n, mu) / n + eps)
        mean[r], rstd[r] = mu, inv
        for j in range(n):
            val = (xr[j] - mu) * inv
            if weight.shape[0] > 0:
                val = val * weight[j]
            if bias.shape[0] > 0:
                val = val + bias[j]
            yr[j] = val


@register_kernel("layer_norm_forward", "numba")
def layer_norm_forward(x, weight, bias, eps):
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    m = x.shape[0]
    none = _none(x.dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty(m, dtype=x.dtype), np.empty(m, dtype=x.dtype)
    _layer_norm_rows(x, none if weight is None else weight, none if bias is None else bias,
                     eps, y, mean, rstd)
    return y, mean, rstd


_NONE = {}


def _none(dtype):
    """The length-0 array that stands for an absent weight or bias: one per dtype, made once
    (it has no element anyone could write, so sharing it is safe)."""
    arr = _NONE.get(dtype)
    if arr is None:
        arr = _NONE[dtype] = np.zeros(0, dtype=dtype)
    return arr


@njit(**_JIT)
def _layer_norm_backward_rows(g, x, mean, rstd, weight, dx, dweight, dbias):
    """One pass per row for dx (two row sums first), adding the row's share into dweight, dbias."""
    m, n = x.shape
    dweight[:] = 0.0
    dbias[:] = 0.0
    for r in range(m):
        sum_gh, sum_gh_xhat = 0.0, 0.0
        for j in range(n):
            gh = g[r, j] * weight[j] if weight.shape[0] > 0 else g[r, j]
            sum_gh += gh
            sum_gh_xhat += gh * ((x[r, j] - mean[r]) * rstd[r])
        a, b = sum_gh / n, sum_gh_xhat / n
        for j in range(n):
            gh = g[r, j] * weight[j] if weight.shape[0] > 0 else g[r, j]
            xhat = (x[r, j] - mean[r]) * rstd[r]
            dx[r, j] = rstd[r] * (gh - a - xhat * b)
            dweight[j] += g[r, j] * xhat
            dbias[j] += g[r, j]


@register_kernel("layer_norm_backward", "numba")
def layer_norm_backward(g, x, mean, rstd, weight):
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    n = x.shape[1]
    dx = np.empty_like(x)
    dweight, dbias = np.empty(n, dtype=x.dtype), np.empty(n, dtype=x.dtype)
    _layer_norm_backward_rows(g, x, mean, rstd,
                              _none(x.dtype) if weight is None else weight,
                              dx, dweight, dbias)
    return dx, dweight, dbias
