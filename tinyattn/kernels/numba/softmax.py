"""Numba: softmax and log_softmax, forward and backward, one fused pass per row (reference: ops/softmax.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..lowlevel import fastmath as fm
from .. import register_kernel
from .rows import _JIT, _rows, _row_sum, _row_max

# ---------------------------------------------------------------------------------- softmax
# Rows shorter than this go through _softmax_short_rows: a row of 12 float32 numbers is shorter
# than one 16-wide vector, so the per-row loops of _softmax_rows run as scalar code (e^ ~20 cycles
# a number: 3072 rows of 12 took ~230 µs, ~65 µs in three sweeps). Measured on AVX-512, 1 thread:
# the sweeps are faster up to rows of ~1000 (128: 710 -> 485 µs for 3072 rows), slower at 4096.
SHORT_ROW = 1024
_BLOCK = 8192           # numbers per block of short rows (32 KiB of float32: in the L1/L2 cache)


@njit(inline="always", **_JIT)
def _row_max_kept(xr, kr, n, neg_inf):
    """max of xr[j] over kept j (kr[j] True); NaN is passed over (the e^ of x - max makes the row
    NaN anyway). Selects, not branches: the pattern of a mask is hard to predict."""
    m = neg_inf
    for j in range(n):
        v = xr[j] if kr[j] else neg_inf
        m = v if v > m else m
    return m


@njit(inline="always", **_JIT)
def _normalise_row(outr, n):
    """outr /= Σ outr (as a product with the reciprocal); a row summing to 0 stays 0."""
    s = _row_sum(outr, n)
    inv = 1.0 / s if s != 0 else 1.0
    for j in range(n):
        outr[j] = outr[j] * inv


@njit(**_JIT)
def _softmax_rows(x, keep, out):
    """out[r] = softmax(x[r]) over the kept entries (keep[r % K] for keep of shape (K, N); K = 0:
    keep all)."""
    n_keep = keep.shape[0]
    n = x.shape[1]
    # the maximum in x's own dtype: a float64 -inf here would make every x - m float64, and exp()
    # of float32 rows would run in float64 (half the numbers per instruction, a longer series)
    neg_inf, zero = x.dtype.type(-np.inf), x.dtype.type(0)
    k = 0
    for r in range(x.shape[0]):
        xr, outr = x[r], out[r]             # 1-D rows: loops over them vectorise
        if n_keep:
            kr = keep[k]
            k = 0 if k + 1 == n_keep else k + 1
            m = _row_max_kept(xr, kr, n, neg_inf)
        else:
            m = _row_max(xr, n, neg_inf)
        if m == neg_inf:                    # nothing kept (or all -inf): a row of zeros, not NaN
            m = zero
        if n_keep:
            for j in range(n):
                outr[j] = fm.exp(xr[j] - m) if kr[j] else 0.0
        else:
            for j in range(n):
                outr[j] = fm.exp(xr[j] - m)
        _normalise_row(outr, n)


@njit(**_JIT)
def _select_kept(x, keep, out):
    """out = x where keep, else -inf (flat arrays; a function of its own: written inline in
    _shift_rows the loop was not vectorised and took 2x longer)."""
    neg_inf = x.dtype.type(-np.inf)
    for i in range(x.shape[0]):
        out[i] = x[i] if keep[i] else neg_inf


@njit(**_JIT)
def _shift_rows(x, keep, first, out):
    """out[r] = x[r] - max over the kept entries of x[r]; masked entries -inf (x[r] is row
    first + r of the whole array, kept by keep[(first + r) % K]). The masked entries are set
    first, in runs of rows where x and keep are both contiguous (a causal (L, L) mask: L rows at
    a time), so that the per-row loops below have no mask to test."""
    n_keep = keep.shape[0]
    rows, n = x.shape
    neg_inf, zero = x.dtype.type(-np.inf), x.dtype.type(0)
    src = x
    if n_keep:
        r, k = 0, first % n_keep
        while r < rows:
            take = min(rows - r, n_keep - k)
            _select_kept(x[r:r + take].reshape(-1), keep[k:k + take].reshape(-1),
                         out[r:r + take].reshape(-1))
            r, k = r + take, 0
        src = out
    for r in range(rows):
        sr, outr = src[r], out[r]
        m = _row_max(sr, n, neg_inf)
        m = zero if m == neg_inf else m
        for j in range(n):
            outr[j] = sr[j] - m


@njit(**_JIT)
def _exp_in_place(flat):
    for i in range(flat.shape[0]):
        flat[i] = fm.exp(flat[i])


@njit(**_JIT)
def _normalise_rows(out):
    n = out.shape[1]
    for r in range(out.shape[0]):
        _normalise_row(out[r], n)


@njit(**_JIT)
def _softmax_short_rows(x, keep, out):
    """_softmax_rows for short rows, the same numbers in three sweeps: x - max per row (masked
    entries -inf), then e^ over all rows as one flat loop, which vectorises however short the rows
    are (e^-inf = 0 gives the masked zeros), then the sums; a block of rows at a time, so that
    the three sweeps find it in the cache. The sweeps stay separate functions: inlined into one,
    LLVM stopped vectorising the e^ loop (4x slower)."""
    rows, n = x.shape
    block = max(1, _BLOCK // max(n, 1))
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        _shift_rows(x[r0:r1], keep, r0, out[r0:r1])
        _exp_in_place(out[r0:r1].reshape(-1))
        _normalise_rows(out[r0:r1])


def _keep_rows(mask, x, axis):
    """The mask as rows (K, N) of bools, x's row r kept by row r % K. A mask that repeats only over
    x's leading axes (a causal (L, S) mask on (N, H, L, S) scores) is used as it is, not broadcast
    to x's size and copied (that copy cost more than the softmax of short rows)."""
    shape = x.shape
    full = (1,) * (x.ndim - mask.ndim) + tuple(mask.shape)
    if axis in (-1, x.ndim - 1) and mask.dtype == np.bool_:
        lead = 0                            # axes before `lead` repeat the mask; from it on, equal
        for i in range(x.ndim - 1, -1, -1):
            if full[i] != shape[i]:
                lead = i + 1
                break
        if lead < x.ndim and all(d == 1 for d in full[:lead]):
            keep = np.ascontiguousarray(mask).reshape(math.prod(shape[lead:-1]), shape[-1])
            return keep if keep.flags.writeable else keep.copy()
    keep, _ = _rows(np.broadcast_to(mask, shape), axis)
    # a read-only array (a broadcast view) would compile a second specialisation (seconds, once)
    return keep if keep.flags.writeable else keep.copy()


_NO_MASK = np.zeros((0, 0), dtype=np.bool_)


@register_kernel("softmax_forward", "numba")
def softmax_forward(x, axis=-1, mask=None):
    rows, back = _rows(x, axis)
    keep = _NO_MASK if mask is None else _keep_rows(mask, x, axis)
    out = np.empty_like(rows)
    (_softmax_short_rows if rows.shape[1] < SHORT_ROW else _softmax_rows)(rows, keep, out)
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
