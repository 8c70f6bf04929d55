"""The compiled twins: the same kernels as the references in the ops' files (ops/softmax.py ...), as explicit loops compiled by Numba.

Read each one next to its plain twin (same name, same sections, same formulas). The plain twin
walks whole arrays several times and allocates a temporary for every intermediate; the loops here
visit each row once, keep the running sums in registers, and fuse the arithmetic.

Rules every kernel here follows:
  * ``cache=True``: a second Python process loads the machine code from disk instead of compiling.
  * ``fastmath=False``: the compiler may not reorder arithmetic, so results agree with the twin to
    ~1e-15 (the tests ask for 1e-12 in float64). The LSTM layer's loops allow one relaxation,
    fused multiply-add (``_JIT_FMA``): one rounding instead of two, never a reordering. Speed comes from writing loops it can vectorise:
    innermost loops run over 1-D rows (``xr = x[r]``), transcendental functions come from
    ``fastmath.py`` (inlined arithmetic, not calls into libm), and row sums/maxima keep several
    independent partial results (``_row_sum``, ``_row_max``).
  * ``error_model="numpy"``: x / 0 is inf as in NumPy, so divisions need no Python-style check.
  * Threads only where each has plenty to do: attention runs ``prange`` over (sequence, query
    tile) or (sequence, key tile) pairs that never write to the same place; the LSTM layer runs
    each thread on its own block of sequences for the whole time loop (they meet only at the end)
    and splits its big products by rows; its per-step products use ``packed_matmul.py`` (weights
    packed once); the BLAS calls made inside kernels run on one thread per caller
    (``blas_threads.py``). The row kernels (softmax, layer norm, cross-entropy) and the
    ``lstm_sequence`` op (which is handed x_proj) are serial: at the sizes the lessons use, waking a
    second thread costs more than the work. The one scatter (embedding backward) must be serial
    anyway: threads would race on repeated rows.
    What did not work for the LSTM (README, "The LSTM gap"): threads that meet at every time step
    (hidden units per thread), and any split that left NumPy's own BLAS threads running beside
    Numba's - the two pools fought over the same cores and a step got 1.5-5x slower.
  * ``NUMBA_DISABLE_JIT=1`` turns every ``@njit`` into the plain Python function it decorates, so
    the kernels can be stepped through in a debugger (slowly).
Only NumPy arrays arrive here; CuPy arrays are sent to the xp twins by ``kernels.get``.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from . import fastmath as fm
from . import register_kernel
from .blas_threads import single_threaded_blas
from .packed_matmul import pack_panels, packed_matmul

# error_model="numpy": x / 0 gives inf as in NumPy instead of a Python ZeroDivisionError check,
# which would put a branch in every loop and stop it from vectorising
_JIT = dict(cache=True, fastmath=False, error_model="numpy")


def _rows(x, axis):
    """View x as contiguous rows (M, N) with ``axis`` last; and how to undo it."""
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


# ---------------------------------------------------------------------------------- softmax
@njit(**_JIT)
def _softmax_rows(x, keep, out):
    """out[r] = softmax(x[r]) over the kept entries (keep is (M, N) bool, or (0, 0): keep all)."""
    masked = keep.shape[0] > 0
    n = x.shape[1]
    for r in range(x.shape[0]):
        xr, outr = x[r], out[r]             # 1-D rows: loops over them vectorise
        if masked:
            kr = keep[r]
            m = -np.inf
            for j in range(n):
                if kr[j] and xr[j] > m:
                    m = xr[j]
        else:
            m = _row_max(xr, n, -np.inf)
        if m == -np.inf:                    # nothing kept (or all -inf): a row of zeros, not NaN
            m = 0.0
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
    for r in range(x.shape[0]):
        xr, outr = x[r], out[r]
        m = _row_max(xr, n, -np.inf)
        if not np.isfinite(m):
            m = 0.0
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


# ---------------------------------------------------------------------------------- layer norm
@njit(**_JIT)
def _layer_norm_rows(x, weight, bias, eps, y, mean, rstd):
    """Per row: mean, biased variance (two passes, as the twin), then y = x̂ · weight + bias.
    weight / bias of length 0 mean 'none'."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        s = 0.0
        for j in range(n):
            s += x[r, j]
        mu = s / n
        v = 0.0
        for j in range(n):
            d = x[r, j] - mu
            v += d * d
        inv = 1.0 / math.sqrt(v / n + eps)
        mean[r], rstd[r] = mu, inv
        for j in range(n):
            val = (x[r, j] - mu) * inv
            if weight.shape[0] > 0:
                val = val * weight[j]
            if bias.shape[0] > 0:
                val = val + bias[j]
            y[r, j] = val


@register_kernel("layer_norm_forward", "numba")
def layer_norm_forward(x, weight, bias, eps):
    x = np.ascontiguousarray(x)
    m, n = x.shape
    none = np.zeros(0, dtype=x.dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty(m, dtype=x.dtype), np.empty(m, dtype=x.dtype)
    _layer_norm_rows(x, none if weight is None else weight, none if bias is None else bias,
                     eps, y, mean, rstd)
    return y, mean, rstd


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
                              np.zeros(0, dtype=x.dtype) if weight is None else weight,
                              dx, dweight, dbias)
    return dx, dweight, dbias


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


# ---------------------------------------------------------------------------------- LSTM
# ``_lstm_rows_forward`` / ``_lstm_rows_backward`` run the recurrence for a block of sequences.
# ``lstm_forward`` / ``lstm_backward`` (the ``lstm_sequence`` op) run them once on the whole batch.
# The layer kernels (``lstm_layer_*``, what ``nn.LSTM`` uses) split a whole layer - input
# projection, recurrence, weight gradients - over threads so that each has plenty to do and none
# waits on another inside the time loop:
#   * the recurrence is split by *sequence*: rows b0:b1 of the batch are independent LSTMs that
#     share weights, so each thread runs the whole time loop for its rows, with its own
#     (rows, H) @ (H, 4H) products, and meets the others only at the end;
#   * the big products (the input projection; dw_ih, dw_hh, dx in the backward) are split by
#     *row* of the (T·B, ·) matrices, each thread summing its own partial weight gradient.
# The per-step products and dx use ``packed_matmul`` (weights packed once per call); the others
# run in SciPy's BLAS on one thread per caller (``single_threaded_blas``); NumPy's BLAS threads
# are not woken, so two thread pools never compete for the same cores.
MIN_ROWS_PER_THREAD = 8     # fewer rows make each thread's (rows, H) @ (H, 4H) product inefficient
# The one relaxation here: a * b + c may become one fused multiply-add (one rounding instead of two:
# never less accurate, and agreement with the twin stays ~1e-15). It makes the gate arithmetic
# (sigmoid, tanh: long chains of a * b + c) ~1.6x faster. No reordering is allowed.
_JIT_FMA = dict(_JIT, fastmath={"contract"})


def _n_chunks(rows):
    """How many threads get a share of ``rows``: at most one per MIN_ROWS_PER_THREAD rows."""
    return max(1, min(numba.get_num_threads(), rows // MIN_ROWS_PER_THREAD))


@njit(**_JIT_FMA)
def _lstm_rows_forward(gates, bias, w_hh_panels, lengths, out, cs, hs, b0, b1):
    """The recurrence for sequences b0:b1 (all of them, or one thread's block). On entry gates[t, b]
    holds the input projection x_t @ w_ih.T (without bias); on exit the activated gates. Per step
    one (rows, H) @ (H, 4H) product (``packed_matmul``), then per sequence a single pass over the
    hidden units j: the four gates of unit j, its c' and its h' (the compiler turns it into SIMD
    code: the innermost loop runs over 1-D rows). No (B, 4H) temporaries are created."""
    fm.wide_vectors()
    T, B, H4 = gates.shape
    H = H4 // 4
    z = np.empty((b1 - b0, H4), dtype=gates.dtype)
    for t in range(T):
        packed_matmul(hs[t, b0:b1], w_hh_panels, H4, z, False)     # h_t @ W_hh^T
        for b in range(b0, b1):
            zr, gr = z[b - b0], gates[t, b]
            c_prev, c_next, h_prev, h_next, o_row = cs[t, b], cs[t + 1, b], hs[t, b], hs[t + 1, b], out[t, b]
            for j in range(H):
                # pre-activation (x W_ih^T + b) + h W_hh^T, summed in the twin's order
                i = fm.sigmoid((gr[j] + bias[j]) + zr[j])
                f = fm.sigmoid((gr[H + j] + bias[H + j]) + zr[H + j])
                g = fm.tanh((gr[2 * H + j] + bias[2 * H + j]) + zr[2 * H + j])
                o = fm.sigmoid((gr[3 * H + j] + bias[3 * H + j]) + zr[3 * H + j])
                gr[j], gr[H + j], gr[2 * H + j], gr[3 * H + j] = i, f, g, o
                c = f * c_prev[j] + i * g
                h = o * fm.tanh(c)
                c_next[j], h_next[j], o_row[j] = c, h, h
            if t >= lengths[b]:                 # past its length: the state stays, the output is 0
                c_next[:] = c_prev
                h_next[:] = h_prev
                o_row[:] = 0.0


def _full_lengths(lengths, T, B):
    return np.full(B, T, dtype=np.int64) if lengths is None else np.ascontiguousarray(lengths)


@register_kernel("lstm_forward", "numba")
def lstm_forward(x_proj, w_hh, h0, c0, lengths):
    T, B, H4 = x_proj.shape
    H = H4 // 4
    dt = x_proj.dtype
    out, gates = np.empty((T, B, H), dtype=dt), np.array(x_proj, dtype=dt, order="C")
    hs, cs = np.empty((T + 1, B, H), dtype=dt), np.empty((T + 1, B, H), dtype=dt)
    hs[0], cs[0] = h0, c0
    with single_threaded_blas():
        _lstm_rows_forward(gates, np.zeros(H4, dtype=dt), pack_panels(w_hh.T),
                           _full_lengths(lengths, T, B), out, cs, hs, 0, B)
    return out, gates, cs, hs


@njit(**_JIT_FMA)
def _lstm_rows_backward(g_out, gates, cs, w_hh_panels, lengths, dz, dh, dc, b0, b1):
    """Backpropagation through time for sequences b0:b1 (formulas in the twin). dh, dc hold the
    gradient reaching the state after step t and are updated in place down to step 0; dz[t] gets
    the pre-activation gradients. Per step and sequence one pass over the hidden units, then one
    (rows, 4H) @ (4H, H) product for the next dh.
    (dz is indexed with b itself: indexed with b - b0, the same loop ran 2.3x slower - LLVM's
    vectorised version of the loop over j was no longer the one taken; not understood further.)"""
    fm.wide_vectors()
    T, B, H4 = gates.shape
    H = H4 // 4
    dh_prev = np.empty((b1 - b0, H), dtype=gates.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            dzr = dz[t, b]
            if t >= lengths[b]:                 # past its length: dh, dc pass through unchanged
                dzr[:] = 0.0
                continue
            gr, c_prev, c_cur = gates[t, b], cs[t, b], cs[t + 1, b]
            dhr, dcr, gor = dh[b], dc[b], g_out[t, b]
            for j in range(H):
                i, f, g, o = gr[j], gr[H + j], gr[2 * H + j], gr[3 * H + j]
                tc = fm.tanh(c_cur[j])
                dh_t = dhr[j] + gor[j]          # (not stored: dh[b] is replaced below)
                dc_t = dcr[j] + dh_t * o * (1 - tc * tc)
                dzr[j] = dc_t * g * i * (1 - i)
                dzr[H + j] = dc_t * c_prev[j] * f * (1 - f)
                dzr[2 * H + j] = dc_t * i * (1 - g * g)
                dzr[3 * H + j] = dh_t * tc * o * (1 - o)
                dcr[j] = dc_t * f
        packed_matmul(dz[t, b0:b1], w_hh_panels, H, dh_prev, False)  # dz_t @ W_hh
        for b in range(b0, b1):
            if t < lengths[b]:
                dh[b] = dh_prev[b - b0]


@register_kernel("lstm_backward", "numba")
def lstm_backward(g_out, g_hn, g_cn, gates, cs, hs, w_hh, lengths):
    T, B, H4 = gates.shape
    H = H4 // 4
    dx = np.empty_like(gates)
    dh, dc = np.array(g_hn, copy=True), np.array(g_cn, copy=True)
    with single_threaded_blas():
        _lstm_rows_backward(np.ascontiguousarray(g_out), gates, cs, pack_panels(w_hh),
                            _full_lengths(lengths, T, B), dx, dh, dc, 0, B)
    dw = dx.reshape(T * B, H4).T @ hs[:-1].reshape(T * B, H)   # as the twin: one product at the end
    return dx, dw, dh, dc


# ------------------------------------------------------------------------- LSTM layer, on threads
@njit(parallel=True, **_JIT)
def _project_rows(x2, w_ih, gates2, n):
    """gates2 = x2 @ w_ih.T, rows split over n threads."""
    rows = x2.shape[0]
    for k in prange(n):
        r0, r1 = k * rows // n, (k + 1) * rows // n
        np.dot(x2[r0:r1], w_ih.T, gates2[r0:r1])


@njit(parallel=True, **_JIT)
def _lstm_sequences_forward(gates, bias, w_hh_panels, lengths, out, cs, hs, n):
    B = gates.shape[1]
    for k in prange(n):
        _lstm_rows_forward(gates, bias, w_hh_panels, lengths, out, cs, hs, k * B // n, (k + 1) * B // n)


@register_kernel("lstm_layer_forward", "numba")
def lstm_layer_forward(x, w_ih, w_hh, bias, h0, c0, lengths):
    T, B, I = x.shape
    H4, H = w_hh.shape
    dt = x.dtype
    out, gates = np.empty((T, B, H), dtype=dt), np.empty((T, B, H4), dtype=dt)
    hs, cs = np.empty((T + 1, B, H), dtype=dt), np.empty((T + 1, B, H), dtype=dt)
    hs[0], cs[0] = h0, c0
    bias = np.zeros(H4, dtype=dt) if bias is None else np.ascontiguousarray(bias)
    x2 = np.ascontiguousarray(x).reshape(T * B, I)
    with single_threaded_blas():
        if T * B:
            _project_rows(x2, np.ascontiguousarray(w_ih), gates.reshape(T * B, H4),
                          _n_chunks(T * B))
            _lstm_sequences_forward(gates, bias, pack_panels(w_hh.T),
                                    _full_lengths(lengths, T, B), out, cs, hs,
                                    _n_chunks(B))
    return out, gates, cs, hs


@njit(parallel=True, **_JIT)
def _lstm_sequences_backward(g_out, gates, cs, w_hh_panels, lengths, dz, dh, dc, n):
    B = gates.shape[1]
    for k in prange(n):
        _lstm_rows_backward(g_out, gates, cs, w_hh_panels, lengths, dz, dh, dc, k * B // n, (k + 1) * B // n)


@njit(parallel=True, **_JIT)
def _weight_grads_rows(dz2, x2, h2, w_ih_panels, dx2, dw_ih, dw_hh, dbias, n):
    """Per thread k, over its rows r0:r1 of the (T·B, ·) matrices: dx rows = dz @ w_ih, and its
    partial sums dw_ih[k] = dzᵀ x, dw_hh[k] = dzᵀ h, dbias[k] = Σ dz (added up by the caller)."""
    rows, H4 = dz2.shape
    for k in prange(n):
        r0, r1 = k * rows // n, (k + 1) * rows // n
        g = dz2[r0:r1]
        packed_matmul(g, w_ih_panels, x2.shape[1], dx2[r0:r1], False)
        np.dot(g.T, x2[r0:r1], dw_ih[k])
        np.dot(g.T, h2[r0:r1], dw_hh[k])
        db = dbias[k]                   # zeros from the caller
        for r in range(r0, r1):
            gr = dz2[r]
            for j in range(H4):
                db[j] += gr[j]


@register_kernel("lstm_layer_backward", "numba")
def lstm_layer_backward(g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs, lengths):
    T, B, H4 = gates.shape
    H, I = H4 // 4, x.shape[2]
    dt = gates.dtype
    dz = np.empty_like(gates)
    dh, dc = np.array(g_hn, copy=True), np.array(g_cn, copy=True)
    dx = np.empty((T, B, I), dtype=dt)
    n = _n_chunks(T * B)
    dw_ih, dw_hh = np.zeros((n, H4, I), dtype=dt), np.zeros((n, H4, H), dtype=dt)
    dbias = np.zeros((n, H4), dtype=dt)
    with single_threaded_blas():
        if T * B:
            _lstm_sequences_backward(np.ascontiguousarray(g_out), gates, cs, pack_panels(w_hh),
                                     _full_lengths(lengths, T, B), dz, dh, dc,
                                     _n_chunks(B))
            _weight_grads_rows(dz.reshape(T * B, H4), np.ascontiguousarray(x).reshape(T * B, I),
                               hs[:-1].reshape(T * B, H), pack_panels(w_ih),
                               dx.reshape(T * B, I), dw_ih, dw_hh, dbias, n)
    return dx, dw_ih.sum(axis=0), dw_hh.sum(axis=0), dbias.sum(axis=0), dh, dc




# ---------------------------------------------------------------------------------- attention
QUERY_TILE = 64     # queries per tile: one thread's unit of work in the forward
KEY_TILE = 64       # keys per tile: the (QUERY_TILE, KEY_TILE) scores are all that exist at once


@njit(inline="always", **_JIT)
def _key_range(i0, i1, n_keys, causal, window):
    """Keys [lo, hi) that queries i0..i1-1 may see (the twin's ``key_range``; window < 0: none)."""
    lo, hi = 0, n_keys
    if causal:
        hi = min(hi, i1)
    if window >= 0:
        lo, hi = max(lo, i0 - window), min(hi, i1 + window)
    return lo, max(lo, hi)


@njit(inline="always", **_JIT)
def _allowed(i, j, n_valid, causal, window):
    return j < n_valid and (not causal or j <= i) and (window < 0 or abs(i - j) <= window)


@njit(inline="always", **_JIT)
def _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window):
    """True when every (i, j) of the tile is allowed, so the per-element test can be skipped."""
    if j1 > n_valid or (causal and j1 - 1 > i0):
        return False
    return window < 0 or (j1 - 1 - i0 <= window and i1 - 1 - j0 <= window)


@njit(parallel=True, **_JIT)
def _attention_forward_tiles(q, k, v, lengths, causal, scale, window, out, lse):
    """Online softmax. For one tile of queries, walk the key tiles keeping per query the running
    maximum m, the running sum l = Σ exp(s - m) and the running output acc = Σ exp(s - m) v. When a
    new tile raises the maximum to m', the old sums are rescaled by exp(m - m'). At the end
    out = acc / l and lse = m + log l. The scores of one (query tile, key tile) pair are all that
    ever exist. Threads take whole (sequence, query tile) pairs: they never share an output row."""
    n_seq, tq, _ = q.shape
    tk, dv = k.shape[1], v.shape[2]
    n_tiles = (tq + QUERY_TILE - 1) // QUERY_TILE
    for task in prange(n_seq * n_tiles):
        bh = task // n_tiles
        i0 = (task % n_tiles) * QUERY_TILE
        i1 = min(tq, i0 + QUERY_TILE)
        n = i1 - i0
        m = np.full(n, -np.inf, dtype=q.dtype)     # in q's dtype: float32 inputs get float32 exp
        l = np.zeros(n, dtype=q.dtype)
        acc = np.zeros((n, dv), dtype=q.dtype)
        pv = np.empty((n, dv), dtype=q.dtype)
        q_tile = q[bh, i0:i1]
        lo, hi = _key_range(i0, i1, tk, causal, window)
        hi = min(hi, lengths[bh])
        for j0 in range(lo, hi, KEY_TILE):
            j1 = min(hi, j0 + KEY_TILE)
            nk = j1 - j0
            s = np.dot(q_tile, k[bh, j0:j1].T)
            full = _tile_is_unmasked(i0, i1, j0, j1, lengths[bh], causal, window)
            for r in range(n):
                i, sr = i0 + r, s[r]        # a 1-D row: loops over it vectorise
                if full:                    # the common case: no test per element
                    for c in range(nk):
                        sr[c] = sr[c] * scale
                else:
                    for c in range(nk):
                        allowed = _allowed(i, j0 + c, lengths[bh], causal, window)
                        sr[c] = sr[c] * scale if allowed else -np.inf
                m_new = _row_max(sr, nk, m[r])  # the running maximum, raised by this tile
                if m_new == -np.inf:        # no key allowed yet for this query
                    sr[:] = 0.0
                    continue
                for c in range(nk):         # exp(-inf) = 0 for the masked entries
                    sr[c] = fm.exp(sr[c] - m_new)
                row_sum = _row_sum(sr, nk)
                alpha = fm.exp(m[r] - m_new)    # rescales what earlier tiles added up
                l[r] = l[r] * alpha + row_sum
                m[r] = m_new
                if alpha != 1.0:
                    accr = acc[r]
                    for d in range(dv):
                        accr[d] *= alpha
            np.dot(s, v[bh, j0:j1], pv)
            acc += pv
        for r in range(n):
            out_row = out[bh, i0 + r]
            if l[r] == 0.0:
                lse[bh, i0 + r] = -np.inf
                out_row[:] = 0.0
            else:
                lse[bh, i0 + r] = m[r] + math.log(l[r])
                accr = acc[r]
                for d in range(dv):
                    out_row[d] = accr[d] / l[r]


@register_kernel("attention_forward", "numba")
def attention_forward(q, k, v, key_lengths, causal, scale, window):
    q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
    out = np.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
    lse = np.empty(q.shape[:2], dtype=q.dtype)
    scale = q.dtype.type(scale)             # keep float32 arithmetic in float32
    with single_threaded_blas():
        _attention_forward_tiles(q, k, v, np.ascontiguousarray(key_lengths), causal, scale,
                                 -1 if window is None else window, out, lse)
    return out, lse


@njit(inline="always", **_JIT)
def _tile_probabilities(p, i0, j0, row_lse, n_valid, causal, scale, window, full):
    """p holds q_tile @ k_tileᵀ; turn it, in place, into P = exp(p · scale - lse) - exactly the
    forward's probabilities, rebuilt - with 0 where masked and for queries that see no key."""
    for r in range(p.shape[0]):
        i, pr, lse_i = i0 + r, p[r], row_lse[i0 + r]
        if lse_i == -np.inf:
            pr[:] = 0.0
        elif full:
            for c in range(p.shape[1]):
                pr[c] = fm.exp(pr[c] * scale - lse_i)
        else:
            for c in range(p.shape[1]):
                allowed = _allowed(i, j0 + c, n_valid, causal, window)
                pr[c] = fm.exp(pr[c] * scale - lse_i) if allowed else 0.0


@njit(inline="always", **_JIT)
def _tile_ds(ds, p, d_rows, i0):
    """ds holds g_tile @ v_tileᵀ = dP; turn it, in place, into dS = P ⊙ (dP - D)."""
    for r in range(ds.shape[0]):
        dsr, pr, d_r = ds[r], p[r], d_rows[i0 + r]
        for c in range(ds.shape[1]):
            dsr[c] = pr[c] * (dsr[c] - d_r)


@njit(inline="always", **_JIT)
def _queries_seeing(j0, j1, tq, causal, window):
    """The queries [lo, hi) that can see keys j0..j1-1: i >= j0 if causal, |i - j| <= window."""
    lo, hi = 0, tq
    if causal:
        lo = j0
    if window >= 0:
        lo, hi = max(lo, j0 - window), min(hi, j1 + window)
    return lo, max(lo, hi)


@njit(parallel=True, **_JIT)
def _attention_backward_by_sequence(g, q, k, v, lse, d_rows, lengths, causal, scale, window,
                                    dq, dk, dv):
    """Recompute P tile by tile from q, k and lse (formulas in the twin). Each thread owns whole
    sequences (bh): it walks key tiles, and for each the query tiles that can see them, adding into
    that key tile's dk, dv and into dq of its own sequence - no two threads write the same place.
    Five tile products per (query tile, key tile) pair."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    for bh in prange(n_seq):
        dq[bh] = 0.0
        dk[bh] = 0.0                        # rows of padding keys stay 0
        dv[bh] = 0.0
        n_valid = min(tk, lengths[bh])
        for j0 in range(0, n_valid, KEY_TILE):
            j1 = min(n_valid, j0 + KEY_TILE)
            k_tile, v_tile = k[bh, j0:j1], v[bh, j0:j1]
            dk_tile, dv_tile = dk[bh, j0:j1], dv[bh, j0:j1]
            qlo, qhi = _queries_seeing(j0, j1, tq, causal, window)
            for i0 in range(qlo, qhi, QUERY_TILE):
                i1 = min(qhi, i0 + QUERY_TILE)
                q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
                p = np.dot(q_tile, k_tile.T)
                _tile_probabilities(p, i0, j0, lse[bh], n_valid, causal, scale, window,
                                    _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
                dv_tile += np.dot(p.T, g_tile)
                ds = np.dot(g_tile, v_tile.T)
                _tile_ds(ds, p, d_rows[bh], i0)
                dq[bh, i0:i1] += np.dot(ds, k_tile) * scale
                dk_tile += np.dot(ds.T, q_tile) * scale


@njit(parallel=True, **_JIT)
def _attention_backward_dk_dv(g, q, k, v, lse, d_rows, lengths, causal, scale, window, dk, dv):
    """dk, dv only; threads take (sequence, key tile) pairs - each owns its key rows."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    n_tiles = (tk + KEY_TILE - 1) // KEY_TILE
    for task in prange(n_seq * n_tiles):
        bh = task // n_tiles
        j0 = (task % n_tiles) * KEY_TILE
        j_end = min(tk, j0 + KEY_TILE)
        dk[bh, j0:j_end] = 0.0
        dv[bh, j0:j_end] = 0.0
        n_valid = min(tk, lengths[bh])
        if j0 >= n_valid:                   # padding keys: no gradient
            continue
        j1 = min(n_valid, j_end)
        k_tile, v_tile = k[bh, j0:j1], v[bh, j0:j1]
        dk_tile, dv_tile = dk[bh, j0:j1], dv[bh, j0:j1]
        qlo, qhi = _queries_seeing(j0, j1, tq, causal, window)
        for i0 in range(qlo, qhi, QUERY_TILE):
            i1 = min(qhi, i0 + QUERY_TILE)
            q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
            p = np.dot(q_tile, k_tile.T)
            _tile_probabilities(p, i0, j0, lse[bh], n_valid, causal, scale, window,
                                _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
            dv_tile += np.dot(p.T, g_tile)
            ds = np.dot(g_tile, v_tile.T)
            _tile_ds(ds, p, d_rows[bh], i0)
            dk_tile += np.dot(ds.T, q_tile) * scale


@njit(parallel=True, **_JIT)
def _attention_backward_dq(g, q, k, v, lse, d_rows, lengths, causal, scale, window, dq):
    """dq only; threads take (sequence, query tile) pairs - each owns its query rows."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    n_tiles = (tq + QUERY_TILE - 1) // QUERY_TILE
    for task in prange(n_seq * n_tiles):
        bh = task // n_tiles
        i0 = (task % n_tiles) * QUERY_TILE
        i1 = min(tq, i0 + QUERY_TILE)
        dq[bh, i0:i1] = 0.0
        n_valid = min(tk, lengths[bh])
        lo, hi = _key_range(i0, i1, tk, causal, window)
        hi = min(hi, n_valid)
        q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
        for j0 in range(lo, hi, KEY_TILE):
            j1 = min(hi, j0 + KEY_TILE)
            k_tile = k[bh, j0:j1]
            p = np.dot(q_tile, k_tile.T)
            _tile_probabilities(p, i0, j0, lse[bh], n_valid, causal, scale, window,
                                _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
            ds = np.dot(g_tile, v[bh, j0:j1].T)
            _tile_ds(ds, p, d_rows[bh], i0)
            dq[bh, i0:i1] += np.dot(ds, k_tile) * scale


@register_kernel("attention_backward", "numba")
def attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale, window):
    """With at least as many sequences as threads, each thread takes whole sequences (five tile
    products per tile pair). With fewer - one long sequence - that would leave threads idle, so the
    work is split twice instead: dk, dv by key tile, then dq by query tile (seven products per
    pair, but all threads busy)."""
    g, q, k, v = (np.ascontiguousarray(a) for a in (g, q, k, v))
    d_rows = (g * out).sum(axis=2)          # D_i = Σ_d g[i, d] · out[i, d], as the twin
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    args = (np.ascontiguousarray(key_lengths), causal, q.dtype.type(scale),
            -1 if window is None else window)
    with single_threaded_blas():
        if q.shape[0] >= numba.get_num_threads():
            _attention_backward_by_sequence(g, q, k, v, lse, d_rows, *args, dq, dk, dv)
        else:
            _attention_backward_dk_dv(g, q, k, v, lse, d_rows, *args, dk, dv)
            _attention_backward_dq(g, q, k, v, lse, d_rows, *args, dq)
    return dq, dk, dv
