"""Numba: softmax and log_softmax, forward and backward, one fused pass per row (reference: ops/softmax.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..lowlevel import fastmath as fm
from .. import register_kernel
from .rows import _JIT, _rows, _row_sum, _row_max

# ---------------------------------------------------------------------------------- softmax
@njit(**_JIT)
def _softmax_rows(x, keep, out):
    """out[r] = softmax(x[r]) over the kept entries (keep is (M, N) bool, or (0, 0): keep all)."""
    masked = keep.shape[0] > 0
    n = x.shape[1]
    # the maximum in x's own dtype: a float64 -inf here would make every x - m float64, and exp()
    # of float32 rows would run in float64 (half the numbers per instruction, a longer series)
    neg_inf, zero = x.dtype.type(-np.inf), x.dtype.type(0)
    for r in range(x.shape[0]):
        xr, outr = x[r], out[r]             # 1-D rows: loops over them vectorise
        if masked:
            kr = keep[r]
            m = neg_inf
            for j in range(n):
                if kr[j] and xr[j] > m:
                    m = xr[j]
        else:
            m = _row_max(xr, n, neg_inf)
        if m == neg_inf:                    # nothing kept (or all -inf): a row of zeros, not NaN
            m = zero
        if masked:
            for j in range(n):
                outr[j] = fm.exp(xr[j] - m) if kr[j] else 0.0
        else:
            for j in range(n):
                outr[j] = fm.exp(xr[j] - m)
        s = _row_sum(outr, n)
        inv = 1.0 / s if s != 0 else 1.0
        for j in range(n):
            outr[j] = outr[j] * inv


@register_kernel("softmax_forward", "numba")
def softmax_forward(x, axis=-1, mask=None):
    rows, back = _rows(x, axis)
    if mask is None:
        keep = np.zeros((0, 0), dtype=np.bool_)
    else:
        keep, _ = _rows(np.broadcast_to(mask, x.shape), axis)
        if not keep.flags.writeable:    # a broadcast view: a read-only array would compile a
            keep = keep.copy()          # second specialisation of the kernel (seconds, once)
    out = np.empty_like(rows)
    _softmax_rows(rows, keep, out)
    return back(out)


@njit(**_JIT)
def _softmax_backward_rows(y, g, out):
    """out[r] = y[r] ⊙ (g[r] - Σ_j g[r, j] y[r, j])."""
    n = y.shape[1]
    for r in range(y.shape[0]):
        yr, gr, outr = y[r], g[r], out[r]
        for j in range(n):                  # g ⊙ y first (vectorised), then its sum
            outr[j] = gr[j] * yr[j]
        dot = _row_sum(outr, n)
        for j in range(n):
            outr[j] = yr[j] * (gr[j] - dot)


@register_kernel("softmax_backward", "numba")
def softmax_backward(y, g, axis=-1):
    y_rows, back = _rows(y, axis)
    g_rows, _ = _rows(g, axis)
    out = np.empty_like(y_rows)
    _softmax_backward_rows(y_rows, g_rows, out)
    return back(out)


@njit(**_JIT)
def _log_softmax_rows(x, out):
    """out[r] = x[r] - max - log Σ exp(x[r] - max)."""
    n = x.shape[1]
    neg_inf, zero = x.dtype.type(-np.inf), x.dtype.type(0)     # (x's dtype: see _softmax_rows)
    for r in range(x.shape[0]):
        xr, outr = x[r], out[r]
        m = _row_max(xr, n, neg_inf)
        if m == neg_inf:                    # rows of -inf only; +inf and NaN give NaN (twin)
            m = zero
        for j in range(n):
            outr[j] = fm.exp(xr[j] - m)
        log_s = math.log(_row_sum(outr, n))
        for j in range(n):
            outr[j] = (xr[j] - m) - log_s


@register_kernel("log_softmax_forward", "numba")
def log_softmax_forward(x, axis=-1):
    rows, back = _rows(x, axis)
    out = np.empty_like(rows)
    _log_softmax_rows(rows, out)
    return back(out)


@njit(**_JIT)
def _log_softmax_backward_rows(out, g, dx):
    """dx[r] = g[r] - exp(out[r]) · Σ_j g[r, j]."""
    n = out.shape[1]
    for r in range(out.shape[0]):
        outr, gr, dxr = out[r], g[r], dx[r]
        s = _row_sum(gr, n)
        for j in range(n):
            dxr[j] = gr[j] - fm.exp(outr[j]) * s


@register_kernel("log_softmax_backward", "numba")
def log_softmax_backward(out, g, axis=-1):
    out_rows, back = _rows(out, axis)
    g_rows, _ = _rows(g, axis)
    dx = np.empty_like(out_rows)
    _log_softmax_backward_rows(out_rows, g_rows, dx)
    return back(dx)
