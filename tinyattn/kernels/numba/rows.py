"""Shared by the compiled kernels: the jit options, rows of an array, and row sums/maxima with
independent partial results."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..lowlevel import numba_cache

# error_model="numpy": x / 0 gives inf as in NumPy instead of a Python ZeroDivisionError check,
# which would put a branch in every loop and stop it from vectorising
_JIT = dict(cache=numba_cache.ENABLED, fastmath=False, error_model="numpy")
# the one relaxation some kernels allow: a * b + c as one fused multiply-add (one rounding, never a
# reordering) where the CPU has the instruction
_JIT_FMA = dict(_JIT, fastmath={"contract"})


def _rows(x, axis):
    """View x as contiguous rows (M, N) with ``axis`` last; and how to undo it."""
    if axis == -1 or axis == x.ndim - 1:        # the usual case: no axes to move (cheaper)
        shape = x.shape
        rows = np.ascontiguousarray(x).reshape(math.prod(shape[:-1]), shape[-1])
        return rows, lambda r: r.reshape(shape)
    moved = np.moveaxis(x, axis, -1)
    # the row count is spelled out, since reshape(-1, 0) is ambiguous for an empty last axis
    rows = np.ascontiguousarray(moved).reshape(math.prod(moved.shape[:-1]), moved.shape[-1])
    return rows, lambda r: np.moveaxis(r.reshape(moved.shape), -1, axis)


# ---------------------------------------------------------------------------------- row reductions
# A plain loop ``for c: s += row[c]`` is one long chain: each add waits ~4 cycles for the one
# before (the compiler may not reorder float additions). Eight running sums make eight independent
# chains; they are combined at the end. The result differs from NumPy's pairwise sum only in the
# last bits (both are legitimate roundings of the exact sum).
@njit(inline="always", **_JIT)
def _row_sum(row, n):
    """Σ row[:n], accumulated in float64."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = n - n % 8
    for c in range(0, n8, 8):
        s0 += row[c]
        s1 += row[c + 1]
        s2 += row[c + 2]
        s3 += row[c + 3]
        s4 += row[c + 4]
        s5 += row[c + 5]
        s6 += row[c + 6]
        s7 += row[c + 7]
    for c in range(n8, n):
        s0 += row[c]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(inline="always", **_JIT)
def _row_max(row, n, start):
    """max(start, row[0], ..., row[n-1]) with four running maxima (same reason as _row_sum)."""
    m0 = m1 = m2 = m3 = start
    n4 = n - n % 4
    for c in range(0, n4, 4):
        m0 = max(m0, row[c])
        m1 = max(m1, row[c + 1])
        m2 = max(m2, row[c + 2])
        m3 = max(m3, row[c + 3])
    for c in range(n4, n):
        m0 = max(m0, row[c])
    return max(max(m0, m1), max(m2, m3))


# ----------------------------------------------------------------- sums the compiler may regroup
# The eight running sums above still run as scalar code: LLVM does not pack them into one vector.
# With "reassoc" (only here, in functions of their own that are NOT inlined, since a caller's
# flags would apply to inlined code) the loop vectoriser keeps a vector of partial sums itself:
# the same kind of regrouping as the eight sums, chosen by the compiler (layer norm of (768, 64):
# 57 -> 34 µs). Still float64 sums, so they agree with NumPy's to ~1e-16 relative.
# (A kernel calling these holds a copy of their machine code in its disk cache entry: after a
# change here, change the callers' files too, or they run the old code from the cache.)
_JIT_SUM = dict(_JIT, fastmath={"reassoc"})


@njit(**_JIT_SUM)
def row_total(row):
    """Σ row, in float64."""
    s = 0.0
    for j in range(row.shape[0]):
        s += row[j]
    return s


@njit(**_JIT_SUM)
def centred_square_total(row, mu):
    """Σ (row[j] - mu)², in float64."""
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - mu
        s += d * d
    return s


@njit(**_JIT_SUM)
def dot_totals(a, b, c, mu, rstd):
    """(Σ a·b, Σ a·b·(c - mu)·rstd) in float64: layer norm's two backward row sums with ĝ = a·b."""
    s, t = 0.0, 0.0
    for j in range(a.shape[0]):
        gh = a[j] * b[j]
        s += gh
        t += gh * ((c[j] - mu) * rstd)
    return s, t
