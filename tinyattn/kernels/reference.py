"""The plain twins: each kernel written with whole-array xp (NumPy or CuPy) expressions.
These are the definitions; the compiled kernels must agree with them."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, scatter_add
from . import register


@register("softmax_forward", "numpy")
def softmax_forward(x, axis=-1, mask=None):
    """exp(x - max) / Σ exp(x - max) along ``axis``; ``mask`` (True = keep) zeroes entries, and a
    row with no kept entry is all zeros rather than 0/0 = NaN."""
    xp = get_array_module(x)
    if mask is not None:
        x = xp.where(mask, x, -xp.inf)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    e = xp.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return e / xp.where(s == 0, 1, s)


@register("softmax_backward", "numpy")
def softmax_backward(y, g, axis=-1):
    """dx = y ⊙ (g - Σ g y): the Jacobian of softmax applied to g without forming it."""
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


@register("log_softmax_forward", "numpy")
def log_softmax_forward(x, axis=-1):
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    shifted = x - m
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


@register("log_softmax_backward", "numpy")
def log_softmax_backward(out, g, axis=-1):
    xp = get_array_module(out)
    return g - xp.exp(out) * g.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------- layer norm
@register("layer_norm_forward", "numpy")
def layer_norm_forward(x, weight, bias, eps):
    """Rows of x (M, N) normalised to zero mean and unit (biased) variance, then scaled and shifted:

        mean = Σ x / N,   var = Σ (x - mean)² / N,   rstd = 1 / sqrt(var + eps)
        y = (x - mean) · rstd · weight + bias          weight, bias: (N,) or None

    Returns y (M, N), mean (M,), rstd (M,): backward needs the last two."""
    xp = get_array_module(x)
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    var = (centred * centred).mean(axis=1)
    rstd = 1.0 / xp.sqrt(var + eps)
    y = centred * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


@register("layer_norm_backward", "numpy")
def layer_norm_backward(g, x, mean, rstd, weight):
    """Gradients of layer_norm for rows x (M, N), upstream g (M, N).

    With x̂ = (x - mean)·rstd and ĝ = g·weight (or g):
        dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂))      (means along the row)
        dweight = Σ_rows g ⊙ x̂,   dbias = Σ_rows g
    Returns dx, dweight, dbias (the last two computed even without weight/bias; the op drops them)."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    gh = g * weight if weight is not None else g
    dx = rstd[:, None] * (gh - gh.mean(axis=1, keepdims=True)
                          - xhat * (gh * xhat).mean(axis=1, keepdims=True))
    return dx, (g * xhat).sum(axis=0), g.sum(axis=0)


# ---------------------------------------------------------------------------------- cross-entropy
@register("cross_entropy_forward", "numpy")
def cross_entropy_forward(logits, target, class_weight, ignore_index, label_smoothing):
    """Per-row loss of log-softmax + negative log-likelihood, with PyTorch's label smoothing.

    logits (N, C), target (N,) ints, class_weight (C,) or None (then all ones), ε = label_smoothing:

        logp = log_softmax(logits)
        loss_n = (1 - ε) · w[y_n] · (-logp[n, y_n])  +  (ε / C) · Σ_c w_c · (-logp[n, c])
        loss_n = 0 where y_n == ignore_index

    Returns loss (N,), weight_of_row (N,) = w[y_n] (0 where ignored: the 'mean' denominator is its
    sum) and logp (N, C), which backward turns into the softmax."""
    xp = get_array_module(logits)
    n, c = logits.shape
    m = logits.max(axis=1, keepdims=True)
    shifted = logits - m
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    keep = target != ignore_index
    safe_target = xp.where(keep, target, 0)
    w = xp.ones(c, dtype=logits.dtype) if class_weight is None else class_weight
    row_weight = xp.where(keep, w[safe_target], 0).astype(logits.dtype)
    picked = logp[xp.arange(n), safe_target]
    loss = (1.0 - label_smoothing) * row_weight * (-picked)
    if label_smoothing > 0:
        smooth = -(logp * w).sum(axis=1)
        loss = loss + (label_smoothing / c) * xp.where(keep, smooth, 0)
    return loss, row_weight, logp


@register("cross_entropy_backward", "numpy")
def cross_entropy_backward(g_rows, logp, target, class_weight, ignore_index, label_smoothing):
    """d loss / d logits for upstream per-row gradients g_rows (N,); with p = softmax = exp(logp),
    k = (1 - ε)·w[y] + (ε / C)·Σ_c w_c:

        dlogits[n, j] = g_n · ( p_j · k - (1 - ε) · w[y_n] · [j == y_n] - (ε / C) · w_j )

    and 0 for ignored rows."""
    xp = get_array_module(logp)
    n, c = logp.shape
    keep = target != ignore_index
    safe_target = xp.where(keep, target, 0)
    w = xp.ones(c, dtype=logp.dtype) if class_weight is None else class_weight
    wy = w[safe_target]
    k = (1.0 - label_smoothing) * wy + (label_smoothing / c) * w.sum()
    d = xp.exp(logp) * k[:, None] - (label_smoothing / c) * w
    d[xp.arange(n), safe_target] -= (1.0 - label_smoothing) * wy
    g_rows = xp.where(keep, g_rows, 0)
    return d * g_rows[:, None]


# ---------------------------------------------------------------------------------- embedding
@register("embedding_backward", "numpy")
def embedding_backward(indices, g, num_embeddings, padding_idx):
    """dweight (V, D): row v is the sum of g[k] over every position k with indices[k] == v.

    indices (K,) ints, g (K, D). The plain twin lets the array library do the scatter-add
    (np.add.at / cupyx.scatter_add); the padding row gets no gradient."""
    xp = get_array_module(g)
    dweight = xp.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    scatter_add(dweight, indices, g)
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return dweight


# ---------------------------------------------------------------------------------- LSTM
def _sigmoid(z):
    xp = get_array_module(z)
    e = xp.exp(-xp.abs(z))                      # never overflows
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@register("lstm_forward", "numpy")
def lstm_forward(x_proj, w_hh, h0, c0, lengths):
    """The LSTM recurrence over T steps, gate order i, f, g, o (as PyTorch):

        z = x_proj[t] + h @ w_hh.T                 (B, 4H)
        i, f, o = σ(z_i), σ(z_f), σ(z_o);  g = tanh(z_g)
        c' = f ⊙ c + i ⊙ g;   h' = o ⊙ tanh(c')

    Sequence b only advances while t < lengths[b]; afterwards its state is frozen and out[t, b] = 0.
    Returns out (T, B, H), gates (T, B, 4H) after their activations, cs (T+1, B, H) (cs[0] = c0)
    and hs (T+1, B, H) (hs[0] = h0); the last three are what backward needs."""
    xp = get_array_module(x_proj)
    T, B, H4 = x_proj.shape
    H = H4 // 4
    out = xp.zeros((T, B, H), dtype=x_proj.dtype)
    gates = xp.empty((T, B, H4), dtype=x_proj.dtype)
    hs = xp.empty((T + 1, B, H), dtype=x_proj.dtype)
    cs = xp.empty((T + 1, B, H), dtype=x_proj.dtype)
    hs[0], cs[0] = h0, c0
    for t in range(T):
        h, c = hs[t], cs[t]
        z = x_proj[t] + h @ w_hh.T
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
        g = xp.tanh(z[:, 2 * H:3 * H])
        c_new = f * c + i * g
        h_new = o * xp.tanh(c_new)
        gates[t] = xp.concatenate([i, f, g, o], axis=1)
        if lengths is None:
            hs[t + 1], cs[t + 1], out[t] = h_new, c_new, h_new
        else:
            valid = (t < lengths)[:, None]
            hs[t + 1] = xp.where(valid, h_new, h)
            cs[t + 1] = xp.where(valid, c_new, c)
            out[t] = xp.where(valid, h_new, 0)
    return out, gates, cs, hs


@register("lstm_backward", "numpy")
def lstm_backward(g_out, g_hn, g_cn, gates, cs, hs, w_hh, lengths):
    """Backpropagation through time for ``lstm_forward``. Walking t = T-1 ... 0 with dh, dc the
    gradients reaching the state after step t:

        dh += g_out[t];  tc = tanh(c_t+1)
        do = dh ⊙ tc;  dc += dh ⊙ o ⊙ (1 - tc²)
        di = dc ⊙ g;  dg = dc ⊙ i;  df = dc ⊙ c_t
        dz = [di·i(1-i), df·f(1-f), dg·(1-g²), do·o(1-o)]          (B, 4H)
        dx_proj[t] = dz;  dh = dz @ w_hh;  dc = dc ⊙ f;   and at the end dw_hh = Σ_t dz_tᵀ h_t

    Rows past their length pass dh, dc through unchanged and get dz = 0.
    Returns dx_proj (T, B, 4H), dw_hh (4H, H), dh0 (B, H), dc0 (B, H)."""
    xp = get_array_module(gates)
    T, B, H4 = gates.shape
    H = H4 // 4
    dx = xp.empty_like(gates)
    dh, dc = g_hn.copy(), g_cn.copy()
    for t in range(T - 1, -1, -1):
        i, f, g, o = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        valid = None if lengths is None else (t < lengths)[:, None]
        dh_t = dh + g_out[t]
        tc = xp.tanh(cs[t + 1])
        dc_t = dc + dh_t * o * (1 - tc * tc)
        dz = xp.concatenate([dc_t * g * i * (1 - i), dc_t * cs[t] * f * (1 - f),
                             dc_t * i * (1 - g * g), dh_t * tc * o * (1 - o)], axis=1)
        if valid is not None:
            dz = xp.where(valid, dz, 0)
        dx[t] = dz
        dh_prev, dc_prev = dz @ w_hh, dc_t * f
        if valid is None:
            dh, dc = dh_prev, dc_prev
        else:
            dh, dc = xp.where(valid, dh_prev, dh), xp.where(valid, dc_prev, dc)
    # dw_hh = Σ_t dz_t.T @ h_t: one big product once the loop is done, not T small ones
    dw = dx.reshape(T * B, H4).T @ hs[:-1].reshape(T * B, H)
    return dx, dw, dh, dc


# A whole LSTM layer: the input projection for every step as one product, then the recurrence.
# Written over the sequence kernels it is given, so the GPU provider can reuse it with its own.
def lstm_layer_forward_with(sequence_forward, x, w_ih, w_hh, bias, h0, c0, lengths):
    T, B, I = x.shape
    x_proj = (x.reshape(T * B, I) @ w_ih.T).reshape(T, B, -1)
    if bias is not None:
        x_proj += bias
    return sequence_forward(x_proj, w_hh, h0, c0, lengths)


def lstm_layer_backward_with(sequence_backward, g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs,
                             lengths):
    T, B, I = x.shape
    dx_proj, dw_hh, dh0, dc0 = sequence_backward(g_out, g_hn, g_cn, gates, cs, hs, w_hh, lengths)
    dz = dx_proj.reshape(T * B, -1)
    dx = (dz @ w_ih).reshape(T, B, I)
    dw_ih = dz.T @ x.reshape(T * B, I)
    return dx, dw_ih, dw_hh, dz.sum(axis=0), dh0, dc0


@register("lstm_layer_forward", "numpy")
def lstm_layer_forward(x, w_ih, w_hh, bias, h0, c0, lengths):
    """One LSTM layer on x (T, B, I): x_proj = x @ w_ih.T + bias (one product for all steps), then
    ``lstm_forward``. Returns what ``lstm_forward`` returns."""
    return lstm_layer_forward_with(lstm_forward, x, w_ih, w_hh, bias, h0, c0, lengths)


@register("lstm_layer_backward", "numpy")
def lstm_layer_backward(g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs, lengths):
    """``lstm_backward``, then through the projection: dx = dz @ w_ih, dw_ih = Σ dzᵀ x,
    dbias = Σ dz. Returns dx (T, B, I), dw_ih (4H, I), dw_hh (4H, H), dbias (4H,), dh0, dc0."""
    return lstm_layer_backward_with(lstm_backward, g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs,
                                    lengths)


# ---------------------------------------------------------------------------------- attention
QUERY_BLOCK = 128   # queries handled together by the plain twin: memory O(QUERY_BLOCK · Tk)


def key_range(i0, i1, n_keys, causal, window):
    """The keys [lo, hi) that queries i0..i1-1 may see: j <= i if causal, |i - j| <= window."""
    lo, hi = 0, n_keys
    if causal:
        hi = min(hi, i1)
    if window is not None:
        lo, hi = max(lo, i0 - window), min(hi, i1 + window)
    return lo, max(lo, hi)


def _allowed(xp, i0, i1, lo, hi, key_lengths, causal, window):
    """Boolean (BH, i1 - i0, hi - lo): may query i see key j?"""
    i = xp.arange(i0, i1)[:, None]
    j = xp.arange(lo, hi)[None, :]
    ok = j < key_lengths[:, None, None]
    if causal:
        ok = ok & (j <= i)
    if window is not None:
        ok = ok & (xp.abs(i - j) <= window)
    return ok


def _probabilities(xp, q_blk, k_blk, lse_blk, ok, scale):
    """P = exp(q kᵀ · scale - logsumexp) where allowed, else 0 (also for rows with no key)."""
    s = (q_blk @ k_blk.transpose(0, 2, 1)) * scale
    finite = xp.isfinite(lse_blk)[:, :, None]
    p = xp.exp(xp.where(ok & finite, s, -xp.inf) - xp.where(finite, lse_blk[:, :, None], 0))
    return p


@register("attention_forward", "numpy")
def attention_forward(q, k, v, key_lengths, causal, scale, window):
    """softmax(q kᵀ · scale + mask) v, one block of QUERY_BLOCK queries at a time.

    q (BH, Tq, D), k (BH, Tk, D), v (BH, Tk, Dv), key_lengths (BH,) ints. Query i may attend to key
    j when j < key_lengths, j <= i (causal) and |i - j| <= window. A block of queries sees all the
    keys it may attend to at once, so an ordinary softmax works; only (BH, QUERY_BLOCK, Tk) scores
    exist at any time, never (BH, Tq, Tk). Rows with no allowed key give 0.
    Returns out (BH, Tq, Dv) and lse (BH, Tq) = log Σ_j exp(score), -inf for empty rows."""
    xp = get_array_module(q)
    bh, tq, _ = q.shape
    out = xp.zeros((bh, tq, v.shape[2]), dtype=q.dtype)
    lse = xp.full((bh, tq), -xp.inf, dtype=q.dtype)
    for i0 in range(0, tq, QUERY_BLOCK):
        i1 = min(tq, i0 + QUERY_BLOCK)
        lo, hi = key_range(i0, i1, k.shape[1], causal, window)
        if hi == lo:
            continue
        ok = _allowed(xp, i0, i1, lo, hi, key_lengths, causal, window)
        s = xp.where(ok, (q[:, i0:i1] @ k[:, lo:hi].transpose(0, 2, 1)) * scale, -xp.inf)
        m = s.max(axis=2, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(s - m)
        total = e.sum(axis=2, keepdims=True)
        out[:, i0:i1] = (e / xp.where(total == 0, 1, total)) @ v[:, lo:hi]
        with np.errstate(divide="ignore"):
            lse[:, i0:i1] = (m + xp.log(total))[:, :, 0]
    return out, lse


@register("attention_backward", "numpy")
def attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale, window):
    """Gradients by recomputation: the probabilities are rebuilt block by block from q, k and the
    saved logsumexp instead of being stored. With D_i = Σ_d g[i, d] · out[i, d]:

        P = exp(q kᵀ · scale - lse);   dv = Pᵀ g;   dP = g vᵀ;   dS = P ⊙ (dP - D)
        dq = dS k · scale;   dk = dSᵀ q · scale
    Returns dq, dk, dv shaped like q, k, v."""
    xp = get_array_module(q)
    tq = q.shape[1]
    dq, dk, dv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    d_rows = (g * out).sum(axis=2)
    for i0 in range(0, tq, QUERY_BLOCK):
        i1 = min(tq, i0 + QUERY_BLOCK)
        lo, hi = key_range(i0, i1, k.shape[1], causal, window)
        if hi == lo:
            continue
        ok = _allowed(xp, i0, i1, lo, hi, key_lengths, causal, window)
        p = _probabilities(xp, q[:, i0:i1], k[:, lo:hi], lse[:, i0:i1], ok, scale)
        g_blk = g[:, i0:i1]
        dv[:, lo:hi] += p.transpose(0, 2, 1) @ g_blk
        ds = p * (g_blk @ v[:, lo:hi].transpose(0, 2, 1) - d_rows[:, i0:i1, None])
        dq[:, i0:i1] = (ds @ k[:, lo:hi]) * scale
        dk[:, lo:hi] += (ds.transpose(0, 2, 1) @ q[:, i0:i1]) * scale
    return dq, dk, dv
