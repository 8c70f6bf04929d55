"""Numba: cross_entropy forward and backward with label smoothing, one pass per row (reference: ops/cross_entropy.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..lowlevel import fastmath as fm
from .. import register_kernel
from .rows import _JIT

# ---------------------------------------------------------------------------------- cross-entropy
@njit(**_JIT)
def _cross_entropy_rows(logits, target, w, ignore_index, eps, loss, row_weight, logp):
    n, c = logits.shape
    for r in range(n):
        m = -np.inf
        for j in range(c):
            if logits[r, j] > m:
                m = logits[r, j]
        for j in range(c):
            logp[r, j] = fm.exp(logits[r, j] - m)
        s = 0.0
        for j in range(c):
            s += logp[r, j]
        log_s = math.log(s)
        smooth = 0.0
        for j in range(c):
            lp = (logits[r, j] - m) - log_s
            logp[r, j] = lp
            smooth -= lp * w[j]
        y = target[r]
        if y == ignore_index:
            loss[r], row_weight[r] = 0.0, 0.0
            continue
        row_weight[r] = w[y]
        loss[r] = (1.0 - eps) * w[y] * (-logp[r, y])
        if eps > 0:
            loss[r] += (eps / c) * smooth


@register_kernel("cross_entropy_forward", "numba")
def cross_entropy_forward(logits, target, class_weight, ignore_index, label_smoothing):
    logits = np.ascontiguousarray(logits)
    n, c = logits.shape
    w = np.ones(c, dtype=logits.dtype) if class_weight is None else class_weight
    loss, row_weight = np.empty(n, dtype=logits.dtype), np.empty(n, dtype=logits.dtype)
    logp = np.empty_like(logits)
    _cross_entropy_rows(logits, target, w, ignore_index, label_smoothing, loss, row_weight, logp)
    return loss, row_weight, logp


@njit(**_JIT)
def _cross_entropy_backward_rows(g_rows, logp, target, w, ignore_index, eps, d):
    n, c = logp.shape
    w_sum = 0.0
    for j in range(c):
        w_sum += w[j]
    for r in range(n):
        y = target[r]
        if y == ignore_index:
            for j in range(c):
                d[r, j] = 0.0
            continue
        k = (1.0 - eps) * w[y] + (eps / c) * w_sum
        for j in range(c):
            d[r, j] = (fm.exp(logp[r, j]) * k - (eps / c) * w[j]) * g_rows[r]
        d[r, y] -= (1.0 - eps) * w[y] * g_rows[r]


@register_kernel("cross_entropy_backward", "numba")
def cross_entropy_backward(g_rows, logp, target, class_weight, ignore_index, label_smoothing):
    c = logp.shape[1]
    w = np.ones(c, dtype=logp.dtype) if class_weight is None else class_weight
    d = np.empty_like(logp)
    _cross_entropy_backward_rows(np.ascontiguousarray(g_rows), logp, target, w, ignore_index,
                                 label_smoothing, d)
    return d
