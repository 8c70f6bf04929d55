"""GPU fast paths: the CuPy counterparts of the Numba kernels, with the same signatures as the plain
twins in the ops' own files (``ops/softmax.py`` ...) (which already run on CuPy arrays, one CuPy call per expression).

What a GPU kernel buys here is *fusion*: the twin's ``y * (g - dot)`` launches three kernels and
allocates two temporaries; one ``ElementwiseKernel`` reads y, g, dot once and writes dx once. The
reductions (max, sum, mean along rows) stay CuPy reductions, and matrix products stay cuBLAS. So
each kernel below is the twin's formula with its elementwise chain written once in CUDA C:

  softmax / log_softmax       masked shift-exp and the normalise step fused; backward one pass
  layer_norm                  normalise-scale-shift fused; backward's dx formula in one pass
  cross_entropy               log-softmax fused; backward writes d logits in one pass over (N, C)
  LSTM                        per time step, the whole gate arithmetic (3 sigmoids, 2 tanh, the
                              cell update, the length mask) in one kernel; h @ W_hh by cuBLAS
  memory-efficient attention  per query tile: mask (from indices, no mask array), scale, exp and
                              the dS formula fused; the products by cuBLAS

Imported by ``kernels/__init__.py`` only where CuPy imports. Kernels compile on first use (CuPy
caches them on disk). Only float32/float64 take these paths; other dtypes (float16) use the twins.
tests/test_cupy_backend.py compares every kernel here with its twin on a GPU.
"""
from __future__ import annotations

import cupy as cp
import numpy as np

from ..ops import cross_entropy as cross_entropy_ref
from ..ops import layernorm as layer_norm_ref
from ..ops import lstm as lstm_ref
from ..ops import memory_efficient_attention as attention_ref
from ..ops import softmax as softmax_ref
from . import register_kernel

_FAST = (np.dtype(np.float32), np.dtype(np.float64))


def _fast(*arrays):
    return all(a is None or a.dtype in _FAST for a in arrays)


_SIGMOID = """
template <typename T> __device__ T ta_sigmoid(T z) {
    T e = exp(-fabs(z));                       // never overflows
    return z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}
"""

# ------------------------------------------------------------------------------------ softmax
_masked_fill = cp.ElementwiseKernel(
    "T x, bool keep, T neg_inf", "T z", "z = keep ? x : neg_inf", "tinyattn_masked_fill")
# exp(x - m) where m is the row max (0 for rows of -inf only, whose exp(-inf) = 0; +inf, NaN: NaN)
_shift_exp = cp.ElementwiseKernel(
    "T x, T m", "T e", "e = exp(x - ((isinf(m) && m < T(0)) ? T(0) : m))", "tinyattn_shift_exp")
_normalise = cp.ElementwiseKernel(
    "T e, T s", "T y", "y = s == T(0) ? T(0) : e / s", "tinyattn_normalise")
_softmax_bwd = cp.ElementwiseKernel(
    "T y, T g, T dot", "T dx", "dx = y * (g - dot)", "tinyattn_softmax_bwd")
_log_softmax_fwd = cp.ElementwiseKernel(
    "T x, T m, T s", "T out", "out = x - ((isinf(m) && m < T(0)) ? T(0) : m) - log(s)", "tinyattn_log_softmax")
_log_softmax_bwd = cp.ElementwiseKernel(
    "T out, T g, T gsum", "T dx", "dx = g - exp(out) * gsum", "tinyattn_log_softmax_bwd")


@register_kernel("softmax_forward", "cupy")
def softmax_forward(x, axis=-1, mask=None):
    if not _fast(x):
        return softmax_ref.softmax_forward(x, axis, mask)
    if mask is not None:
        x = _masked_fill(x, cp.asarray(mask), x.dtype.type(-np.inf))
    e = _shift_exp(x, x.max(axis=axis, keepdims=True))
    return _normalise(e, e.sum(axis=axis, keepdims=True), e)          # in place into e


@register_kernel("softmax_backward", "cupy")
def softmax_backward(y, g, axis=-1):
    if not _fast(y, g):
        return softmax_ref.softmax_backward(y, g, axis)
    return _softmax_bwd(y, g, (g * y).sum(axis=axis, keepdims=True))


@register_kernel("log_softmax_forward", "cupy")
def log_softmax_forward(x, axis=-1):
    if not _fast(x):
        return softmax_ref.log_softmax_forward(x, axis)
    m = x.max(axis=axis, keepdims=True)
    s = _shift_exp(x, m).sum(axis=axis, keepdims=True)
    return _log_softmax_fwd(x, m, s)


@register_kernel("log_softmax_backward", "cupy")
def log_softmax_backward(out, g, axis=-1):
    if not _fast(out, g):
        return softmax_ref.log_softmax_backward(out, g, axis)
    return _log_softmax_bwd(out, g, g.sum(axis=axis, keepdims=True))


# ------------------------------------------------------------------------------------ layer norm
_ln_fwd = cp.ElementwiseKernel(
    "T x, T mean, T rstd, T w, T b", "T y", "y = (x - mean) * rstd * w + b", "tinyattn_ln_fwd")
_ln_bwd = cp.ElementwiseKernel(
    "T gh, T xhat, T rstd, T a, T c", "T dx", "dx = rstd * (gh - a - xhat * c)", "tinyattn_ln_bwd")
_centred_sq = cp.ElementwiseKernel(
    "T x, T mean", "T d2", "T d = x - mean; d2 = d * d", "tinyattn_centred_sq")
_xhat = cp.ElementwiseKernel(
    "T x, T mean, T rstd", "T xhat", "xhat = (x - mean) * rstd", "tinyattn_xhat")


@register_kernel("layer_norm_forward", "cupy")
def layer_norm_forward(x, weight, bias, eps):
    if not _fast(x, weight, bias):
        return layer_norm_ref.layer_norm_forward(x, weight, bias, eps)
    mean = x.mean(axis=1)
    var = _centred_sq(x, mean[:, None]).mean(axis=1)
    rstd = 1.0 / cp.sqrt(var + eps)
    one, zero = x.dtype.type(1), x.dtype.type(0)
    y = _ln_fwd(x, mean[:, None], rstd[:, None], one if weight is None else weight,
                zero if bias is None else bias)
    return y, mean, rstd


@register_kernel("layer_norm_backward", "cupy")
def layer_norm_backward(g, x, mean, rstd, weight):
    if not _fast(g, x, weight):
        return layer_norm_ref.layer_norm_backward(g, x, mean, rstd, weight)
    xhat = _xhat(x, mean[:, None], rstd[:, None])
    gh = g * weight if weight is not None else g
    dx = _ln_bwd(gh, xhat, rstd[:, None], gh.mean(axis=1, keepdims=True),
                 (gh * xhat).mean(axis=1, keepdims=True))
    return dx, (g * xhat).sum(axis=0), g.sum(axis=0)


# ------------------------------------------------------------------------------------ cross-entropy
# d logits[n, j] = g_n (p_j k_n - (ε/C) w_j - (1-ε) w[y_n] [j == y_n]), 0 for ignored rows;
# one thread per (n, j) of the C-contiguous (N, C) output.
_ce_bwd = cp.ElementwiseKernel(
    "raw T logp, raw int64 target, raw T w, raw T k, raw T g, int64 C, int64 ignore, "
    "T eps_c, T one_m_eps",
    "T d",
    """
    ptrdiff_t row = i / C, j = i % C;        // (n and i are CuPy's own names: i = flat index)
    long long t = target[row];
    if (t == ignore) {
        d = T(0);
    } else {
        T v = exp(logp[i]) * k[row] - eps_c * w[j];
        if (j == t) v -= one_m_eps * w[t];
        d = g[row] * v;
    }
    """, "tinyattn_cross_entropy_bwd")


@register_kernel("cross_entropy_forward", "cupy")
def cross_entropy_forward(logits, target, class_weight, ignore_index, label_smoothing):
    if not _fast(logits, class_weight):
        return cross_entropy_ref.cross_entropy_forward(logits, target, class_weight, ignore_index,
                                               label_smoothing)
    n, c = logits.shape
    logp = log_softmax_forward(logits, 1)
    keep = target != ignore_index
    safe = cp.where(keep, target, 0)
    w = cp.ones(c, dtype=logits.dtype) if class_weight is None else class_weight
    row_weight = cp.where(keep, w[safe], 0).astype(logits.dtype)
    picked = cp.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    loss = (1.0 - label_smoothing) * row_weight * (-picked)
    if label_smoothing > 0:
        loss = loss + (label_smoothing / c) * cp.where(keep, -(logp * w).sum(axis=1), 0)
    return loss.astype(logits.dtype, copy=False), row_weight, logp


@register_kernel("cross_entropy_backward", "cupy")
def cross_entropy_backward(g_rows, logp, target, class_weight, ignore_index, label_smoothing):
    if not _fast(logp, class_weight):
        return cross_entropy_ref.cross_entropy_backward(g_rows, logp, target, class_weight, ignore_index,
                                                label_smoothing)
    n, c = logp.shape
    dt = logp.dtype.type
    logp = cp.ascontiguousarray(logp)
    target = cp.ascontiguousarray(target.astype(cp.int64, copy=False))
    w = cp.ones(c, dtype=logp.dtype) if class_weight is None else cp.ascontiguousarray(class_weight)
    wy = w[cp.where(target != ignore_index, target, 0)]
    k = cp.ascontiguousarray((1.0 - label_smoothing) * wy + (label_smoothing / c) * w.sum(),
                             dtype=logp.dtype)
    g = cp.ascontiguousarray(cp.broadcast_to(cp.asarray(g_rows, dtype=logp.dtype), (n,)))
    d = cp.empty((n, c), dtype=logp.dtype)
    return _ce_bwd(logp, target, w, k, g, c, int(ignore_index), dt(label_smoothing / c),
                   dt(1.0 - label_smoothing), d)


# ------------------------------------------------------------------------------------ LSTM
# One time step of the recurrence for (B, H) elements, gate order i, f, g, o. The gate
# pre-activations come in as four (B, H) column blocks of z; the activated gates go out into the
# four blocks of gates[t]; rows with valid == false keep their state and output 0.
_lstm_fwd_step = cp.ElementwiseKernel(
    "T zi, T zf, T zg, T zo, T c, T h, bool valid",
    "T gi, T gf, T gg, T go, T c_new, T h_new, T out",
    """
    T i_ = ta_sigmoid(zi), f_ = ta_sigmoid(zf), g_ = tanh(zg), o_ = ta_sigmoid(zo);
    T cn = f_ * c + i_ * g_;
    T hn = o_ * tanh(cn);
    gi = i_; gf = f_; gg = g_; go = o_;
    c_new = valid ? cn : c;
    h_new = valid ? hn : h;
    out = valid ? hn : T(0);
    """, "tinyattn_lstm_fwd_step", preamble=_SIGMOID)

# Backward through one step: dz for the four gates (0 for rows past their length) and the cell
# gradient handed to step t-1 (unchanged for rows past their length).
_lstm_bwd_step = cp.ElementwiseKernel(
    "T i_, T f_, T g_, T o_, T c_prev, T c_t, T dh, T gout, T dc, bool valid",
    "T dzi, T dzf, T dzg, T dzo, T dc_prev",
    """
    T dh_t = dh + gout;
    T tc = tanh(c_t);
    T dc_t = dc + dh_t * o_ * (T(1) - tc * tc);
    dzi = valid ? dc_t * g_ * i_ * (T(1) - i_) : T(0);
    dzf = valid ? dc_t * c_prev * f_ * (T(1) - f_) : T(0);
    dzg = valid ? dc_t * i_ * (T(1) - g_ * g_) : T(0);
    dzo = valid ? dh_t * tc * o_ * (T(1) - o_) : T(0);
    dc_prev = valid ? dc_t * f_ : dc;
    """, "tinyattn_lstm_bwd_step")


def _blocks(a, H):
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:]


@register_kernel("lstm_forward", "cupy")
def lstm_forward(x_proj, w_hh, h0, c0, lengths):
    if not _fast(x_proj):
        return lstm_ref.lstm_forward(x_proj, w_hh, h0, c0, lengths)
    T, B, H4 = x_proj.shape
    H = H4 // 4
    out = cp.empty((T, B, H), dtype=x_proj.dtype)
    gates = cp.empty((T, B, H4), dtype=x_proj.dtype)
    hs = cp.empty((T + 1, B, H), dtype=x_proj.dtype)
    cs = cp.empty((T + 1, B, H), dtype=x_proj.dtype)
    hs[0], cs[0] = h0, c0
    w_t = w_hh.T
    for t in range(T):
        z = x_proj[t] + hs[t] @ w_t                                   # (B, 4H): cuBLAS
        valid = True if lengths is None else (t < lengths)[:, None]
        _lstm_fwd_step(*_blocks(z, H), cs[t], hs[t], valid,
                       *_blocks(gates[t], H), cs[t + 1], hs[t + 1], out[t])
    return out, gates, cs, hs


@register_kernel("lstm_backward", "cupy")
def lstm_backward(g_out, g_hn, g_cn, gates, cs, hs, w_hh, lengths):
    if not _fast(gates):
        return lstm_ref.lstm_backward(g_out, g_hn, g_cn, gates, cs, hs, w_hh, lengths)
    T, B, H4 = gates.shape
    H = H4 // 4
    dx = cp.empty_like(gates)
    dh = cp.array(g_hn, dtype=gates.dtype)
    dc = cp.array(g_cn, dtype=gates.dtype)
    dc_next = cp.empty_like(dc)
    for t in range(T - 1, -1, -1):
        valid = True if lengths is None else (t < lengths)[:, None]
        _lstm_bwd_step(*_blocks(gates[t], H), cs[t], cs[t + 1], dh, g_out[t], dc, valid,
                       *_blocks(dx[t], H), dc_next)
        dh_prev = dx[t] @ w_hh                                        # rows past length: dz = 0
        dh = dh_prev if lengths is None else cp.where(valid, dh_prev, dh)
        dc, dc_next = dc_next, dc
    dw = dx.reshape(T * B, H4).T @ hs[:-1].reshape(T * B, H)
    return dx, dw, dh, dc


@register_kernel("lstm_layer_forward", "cupy")
def lstm_layer_forward(x, w_ih, w_hh, bias, h0, c0, lengths):
    return lstm_ref.lstm_layer_forward_with(lstm_forward, x, w_ih, w_hh, bias, h0, c0, lengths)


@register_kernel("lstm_layer_backward", "cupy")
def lstm_layer_backward(g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs, lengths):
    return lstm_ref.lstm_layer_backward_with(lstm_backward, g_out, g_hn, g_cn, x, w_ih, w_hh,
                                              gates, cs, hs, lengths)


# ------------------------------------------------------------------------------------ attention
# For a tile of scores s (BH, QB, KB) = q[:, i0:i0+QB] @ k[:, lo:lo+KB]ᵀ (C-contiguous), decide
# from indices alone whether query i0+r may see key lo+c (no mask array is ever built):
#   j < key_lengths[n],  j <= i if causal,  |i - j| <= window if window >= 0
_ALLOWED = """
    ptrdiff_t bh = i / (QB * KB), r = (i / KB) % QB, col = i % KB;
    long long qi = i0 + r, kj = lo + col;
    bool ok = kj < lengths[bh] && (!causal || kj <= qi) && (window < 0 || llabs(qi - kj) <= window);
"""
_att_scores = cp.ElementwiseKernel(
    "T s, raw int64 lengths, int64 QB, int64 KB, int64 i0, int64 lo, bool causal, int64 window, "
    "T scale, T neg_inf", "T out",
    _ALLOWED + "out = ok ? s * scale : neg_inf;", "tinyattn_attention_scores")
_att_probs = cp.ElementwiseKernel(
    "T s, T lse, raw int64 lengths, int64 QB, int64 KB, int64 i0, int64 lo, bool causal, "
    "int64 window, T scale", "T p",
    _ALLOWED + "p = (ok && !(isinf(lse) && lse < T(0))) ? exp(s * scale - lse) : T(0);",
    "tinyattn_attention_probs")
_att_ds = cp.ElementwiseKernel(
    "T p, T dp, T d, raw int64 lengths, int64 QB, int64 KB, int64 i0, int64 lo, bool causal, "
    "int64 window", "T ds",
    _ALLOWED + "ds = ok ? p * (dp - d) : T(0);",      # masked keys: 0, even from a NaN row
    "tinyattn_attention_ds")
_lse = cp.ElementwiseKernel(
    "T m, T total", "T lse", "lse = (isfinite(m) ? m : T(0)) + log(total)", "tinyattn_lse")


@register_kernel("attention_forward", "cupy")
def attention_forward(q, k, v, key_lengths, causal, scale, window):
    if not _fast(q):
        return attention_ref.attention_forward(q, k, v, key_lengths, causal, scale, window)
    bh, tq, _ = q.shape
    lengths = cp.ascontiguousarray(key_lengths, dtype=cp.int64)
    out = cp.zeros((bh, tq, v.shape[2]), dtype=q.dtype)
    lse = cp.full((bh, tq), -cp.inf, dtype=q.dtype)
    win = -1 if window is None else int(window)
    qb_max = attention_ref.QUERY_BLOCK
    for i0 in range(0, tq, qb_max):
        i1 = min(tq, i0 + qb_max)
        lo, hi = attention_ref.key_range(i0, i1, k.shape[1], causal, window)
        if hi == lo:
            continue
        s = _att_scores(q[:, i0:i1] @ k[:, lo:hi].transpose(0, 2, 1), lengths, i1 - i0, hi - lo,
                        i0, lo, bool(causal), win, q.dtype.type(scale), q.dtype.type(-np.inf))
        m = s.max(axis=2, keepdims=True)
        e = _shift_exp(s, m)
        total = e.sum(axis=2, keepdims=True)
        out[:, i0:i1] = _normalise(e, total, e) @ v[:, lo:hi]
        lse[:, i0:i1] = _lse(m, total)[:, :, 0]                     # log 0 = -inf: empty rows
    return out, lse


@register_kernel("attention_backward", "cupy")
def attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale, window):
    if not _fast(q):
        return attention_ref.attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale,
                                            window)
    tq = q.shape[1]
    lengths = cp.ascontiguousarray(key_lengths, dtype=cp.int64)
    dq, dk, dv = cp.zeros_like(q), cp.zeros_like(k), cp.zeros_like(v)
    d_rows = (g * out).sum(axis=2)
    win = -1 if window is None else int(window)
    sc = q.dtype.type(scale)
    qb_max = attention_ref.QUERY_BLOCK
    for i0 in range(0, tq, qb_max):
        i1 = min(tq, i0 + qb_max)
        lo, hi = attention_ref.key_range(i0, i1, k.shape[1], causal, window)
        if hi == lo:
            continue
        s = q[:, i0:i1] @ k[:, lo:hi].transpose(0, 2, 1)
        p = _att_probs(s, lse[:, i0:i1, None], lengths, i1 - i0, hi - lo, i0, lo, bool(causal),
                       win, sc)
        g_blk = g[:, i0:i1]
        dv[:, lo:hi] += p.transpose(0, 2, 1) @ g_blk
        ds = _att_ds(p, g_blk @ v[:, lo:hi].transpose(0, 2, 1), d_rows[:, i0:i1, None], lengths,
                     i1 - i0, hi - lo, i0, lo, bool(causal), win)
        dq[:, i0:i1] = (ds @ k[:, lo:hi]) * sc
        dk[:, lo:hi] += (ds.transpose(0, 2, 1) @ q[:, i0:i1]) * sc
    return dq, *attention_ref.padding_keys_zeroed(cp, dk, dv, lengths)
