"""Numba: the LSTM recurrence and whole LSTM layer, forward and backward, fused gates and sequences on threads (reference: ops/lstm.py)."""
from __future__ import annotations

import numpy as np
from numba import njit

from ..lowlevel import fastmath as fm
from ..lowlevel.blas_threads import single_threaded_blas
from ..lowlevel.packed_matmul import pack_panels, packed_matmul
from ..lowlevel.thread_split import num_threads, split
from .. import register_kernel
from .rows import _JIT

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
    return max(1, min(num_threads(), rows // MIN_ROWS_PER_THREAD))


@njit(nogil=True, **_JIT_FMA)
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
    # int64 whatever the caller's integer type: one compiled specialisation
    return np.full(B, T, dtype=np.int64) if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)


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


@njit(nogil=True, **_JIT_FMA)
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
# Each function below is call k of n (``thread_split.split`` runs the n calls on n threads): it
# takes block k of the rows or sequences.
@njit(nogil=True, **_JIT)
def _project_rows(x2, w_ih, gates2, k, n):
    """gates2 = x2 @ w_ih.T for block k of n of the rows."""
    rows = x2.shape[0]
    r0, r1 = k * rows // n, (k + 1) * rows // n
    np.dot(x2[r0:r1], w_ih.T, gates2[r0:r1])


@njit(nogil=True, **_JIT_FMA)
def _lstm_sequences_forward(gates, bias, w_hh_panels, lengths, out, cs, hs, k, n):
    B = gates.shape[1]
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
            split(_project_rows, _n_chunks(T * B), x2, np.ascontiguousarray(w_ih),
                  gates.reshape(T * B, H4))
            split(_lstm_sequences_forward, _n_chunks(B), gates, bias, pack_panels(w_hh.T),
                  _full_lengths(lengths, T, B), out, cs, hs)
    return out, gates, cs, hs


@njit(nogil=True, **_JIT_FMA)
def _lstm_sequences_backward(g_out, gates, cs, w_hh_panels, lengths, dz, dh, dc, k, n):
    B = gates.shape[1]
    _lstm_rows_backward(g_out, gates, cs, w_hh_panels, lengths, dz, dh, dc, k * B // n, (k + 1) * B // n)


@njit(nogil=True, **_JIT)
def _weight_grads_rows(dz2, x2, h2, w_ih_panels, dx2, dw_ih, dw_hh, dbias, products, k, n):
    """Call k of n, over its rows r0:r1 of the (T·B, ·) matrices: dx rows = dz @ w_ih, and its
    partial sums dw_ih[k] = dzᵀ x, dw_hh[k] = dzᵀ h (if ``products``), dbias[k] = Σ dz (added up
    by the caller)."""
    rows, H4 = dz2.shape
    r0, r1 = k * rows // n, (k + 1) * rows // n
    g = dz2[r0:r1]
    packed_matmul(g, w_ih_panels, x2.shape[1], dx2[r0:r1], False)
    if products:
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
            split(_lstm_sequences_backward, _n_chunks(B), np.ascontiguousarray(g_out), gates, cs,
                  pack_panels(w_hh), _full_lengths(lengths, T, B), dz, dh, dc)
            dz2, h2 = dz.reshape(T * B, H4), hs[:-1].reshape(T * B, H)
            x2 = np.ascontiguousarray(x).reshape(T * B, I)
            # On one thread the two weight products go to NumPy's own BLAS: on these shapes it
            # ran 10-15% faster than SciPy's copy, which np.dot inside a kernel calls ((512 x
            # 1600) @ (1600 x 128): 2.2 against 2.5 ms on an AMD EPYC). On several, each
            # thread's share stays inside its kernel, so that no second thread pool wakes up.
            split(_weight_grads_rows, n, dz2, x2, h2, pack_panels(w_ih), dx.reshape(T * B, I),
                  dw_ih, dw_hh, dbias, n > 1)
            if n == 1:
                np.dot(dz2.T, x2, dw_ih[0])
                np.dot(dz2.T, h2, dw_hh[0])
    return dx, dw_ih.sum(axis=0), dw_hh.sum(axis=0), dbias.sum(axis=0), dh, dc
