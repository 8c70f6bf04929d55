"""lstm_sequence / lstm_layer: the whole LSTM time loop as one op, with backpropagation through
time by hand.

The caller computes the input projection for every step at once, ``x_proj = x @ W_ih.T + b_ih +
b_hh`` (T, B, 4H): one big matrix product instead of T small ones. What is left is inherently
sequential - each step needs the previous h - so it runs as one kernel (``lstm_forward`` /
``lstm_backward``; a plain NumPy loop and a compiled one with the gate arithmetic fused) instead of
~15 tiny graph ops per step.

``lstm_layer`` takes x and w_ih instead of x_proj and does the projection itself: one op per
layer, so the compiled path can split the whole layer - projection, recurrence and weight
gradients - over its threads (``kernels/numba/lstm.py``), and ``nn.LSTM`` uses it.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
def _sigmoid(z):
    xp = get_array_module(z)
    e = xp.exp(-xp.abs(z))                      # never overflows
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@register_kernel("lstm_forward", "numpy")
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


@register_kernel("lstm_backward", "numpy")
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


@register_kernel("lstm_layer_forward", "numpy")
def lstm_layer_forward(x, w_ih, w_hh, bias, h0, c0, lengths):
    """One LSTM layer on x (T, B, I): x_proj = x @ w_ih.T + bias (one product for all steps), then
    ``lstm_forward``. Returns what ``lstm_forward`` returns."""
    return lstm_layer_forward_with(lstm_forward, x, w_ih, w_hh, bias, h0, c0, lengths)


@register_kernel("lstm_layer_backward", "numpy")
def lstm_layer_backward(g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs, lengths):
    """``lstm_backward``, then through the projection: dx = dz @ w_ih, dw_ih = Σ dzᵀ x,
    dbias = Σ dz. Returns dx (T, B, I), dw_ih (4H, I), dw_hh (4H, H), dbias (4H,), dh0, dc0."""
    return lstm_layer_backward_with(lstm_backward, g_out, g_hn, g_cn, x, w_ih, w_hh, gates, cs, hs,
                                    lengths)


@register_op("lstm_sequence")
class LSTMSequence(Function):
    """x_proj (T, B, 4H), w_hh (4H, H), h0 (B, H), c0 (B, H) -> out (T, B, H), h_n (B, H), c_n (B, H).

    Static ``lengths`` (B,) ints or None: sequence b only advances for t < lengths[b]."""

    real_inputs = (0, 1, 2, 3)

    @staticmethod
    def forward(ctx, x_proj, w_hh, h0, c0, lengths=None):
        out, gates, cs, hs = kernels.get("lstm_forward", x_proj)(x_proj, w_hh, h0, c0, lengths)
        ctx.save_for_backward(gates, cs, hs, w_hh)
        ctx.lengths = lengths
        return out, hs[-1].copy(), cs[-1].copy()

    @staticmethod
    def backward(ctx, g_out, g_hn, g_cn):
        gates, cs, hs, w_hh = ctx.saved
        return kernels.get("lstm_backward", gates)(g_out, g_hn, g_cn, gates, cs, hs, w_hh,
                                                   ctx.lengths)


def _check_shapes_and_dtype(op, given, expected, context):
    """Each (name, tensor, shape) in ``expected`` has its shape; all tensors share one dtype."""
    for name, t, shape in expected:
        if tuple(t.shape) != shape:
            raise ValueError(f"{op}: {name} has shape {tuple(t.shape)}, expected {shape} {context}.")
    dtypes = {t.dtype for t in given + [t for _, t, _ in expected]}
    if len(dtypes) != 1:
        raise TypeError(f"{op}: inputs have mixed dtypes {sorted(map(str, dtypes))}; "
                        f"convert them to one (e.g. all float32).")


def check_lstm_lengths(op, lengths, T, B, xp):
    """The one check of LSTM sequence lengths (the ops here and nn.LSTM): B integers in [1, T], as
    PyTorch's pack_padded_sequence demands; returned as int64 on xp's device. Checked on the device
    (one bool comes back, the numbers only for the message)."""
    lengths = lengths.array if isinstance(lengths, Tensor) else xp.asarray(lengths)
    if lengths.dtype.kind not in "iu" or tuple(lengths.shape) != (B,):
        raise ValueError(f"{op}: lengths must be {B} integers (one per sequence in the batch), got "
                         f"shape {tuple(lengths.shape)} dtype {lengths.dtype}.")
    if B and bool(((lengths < 1) | (lengths > T)).any()):
        raise ValueError(f"{op}: lengths must lie in [1, T={T}], got min "
                         f"{int(lengths.min())} max {int(lengths.max())}.")
    return lengths.astype(np.int64, copy=False)


def _checked_lengths(op, lengths, like, T, B):
    """lengths as int64 beside ``like``'s data, or None."""
    if lengths is None:
        return None
    return check_lstm_lengths(op, lengths, T, B, get_array_module(like.array))


def lstm_sequence(x_proj, w_hh, h0, c0, lengths=None):
    """Run an LSTM over a whole (padded) batch of sequences; gate order i, f, g, o as PyTorch.

    x_proj: Tensor (T, B, 4H) = x @ W_ih.T + b_ih + b_hh for all steps; w_hh: Tensor (4H, H);
    h0, c0: Tensors (B, H); lengths: optional ints (B,) in [1, T] - past its length a sequence's state
    is frozen and its outputs are 0 (as PyTorch packed sequences), so h_n, c_n are the states after
    each sequence's last valid step. Returns (out (T, B, H), h_n (B, H), c_n (B, H))."""
    x_proj, w_hh, h0, c0 = (t if isinstance(t, Tensor) else Tensor(t) for t in (x_proj, w_hh, h0, c0))
    if x_proj.ndim != 3 or x_proj.shape[2] % 4:
        raise ValueError(f"lstm_sequence: x_proj must be (T, B, 4H), got {tuple(x_proj.shape)}.")
    T, B, H4 = x_proj.shape
    H = H4 // 4
    _check_shapes_and_dtype("lstm_sequence", [x_proj],
                            [("w_hh", w_hh, (H4, H)), ("h0", h0, (B, H)), ("c0", c0, (B, H))],
                            f"for x_proj of shape {(T, B, H4)} (T, B, 4H with H = {H})")
    lengths = _checked_lengths("lstm_sequence", lengths, x_proj, T, B)
    return LSTMSequence.apply(x_proj, w_hh, h0, c0, lengths=lengths)


@register_op("lstm_layer")
class LSTMLayer(Function):
    """x (T, B, I), w_ih (4H, I), w_hh (4H, H), h0, c0 (B, H), bias (4H,) if there is one ->
    out (T, B, H), h_n, c_n: ``lstm_sequence(x @ w_ih.T + bias, w_hh, h0, c0, lengths)``."""

    real_inputs = (0, 1, 2, 3, 4)

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, h0, c0, bias=None, lengths=None):
        out, gates, cs, hs = kernels.get("lstm_layer_forward", x)(x, w_ih, w_hh, bias, h0, c0,
                                                                  lengths)
        # the backward that understands this forward's saved arrays, whatever is chosen later
        ctx.kernel = kernels.get("lstm_layer_backward", x)
        ctx.save_for_backward(x, w_ih, w_hh, gates, cs, hs)
        ctx.lengths = lengths
        return out, hs[-1].copy(), cs[-1].copy()

    @staticmethod
    def backward(ctx, g_out, g_hn, g_cn):
        x, w_ih, w_hh, gates, cs, hs = ctx.saved
        dx, dw_ih, dw_hh, dbias, dh0, dc0 = ctx.kernel(g_out, g_hn, g_cn, x, w_ih, w_hh, gates,
                                                        cs, hs, ctx.lengths)
        return dx, dw_ih, dw_hh, dh0, dc0, dbias      # dbias is dropped when bias was None


def lstm_layer(x, w_ih, w_hh, bias, h0, c0, lengths=None):
    """One LSTM layer over a whole (padded) batch: the input projection for all steps, then the
    recurrence; gate order i, f, g, o as PyTorch.

    x: Tensor (T, B, I); w_ih: (4H, I); w_hh: (4H, H); bias: (4H,) (b_ih + b_hh) or None;
    h0, c0: (B, H); lengths: as ``lstm_sequence``. Returns (out (T, B, H), h_n (B, H), c_n (B, H))."""
    x, w_ih, w_hh, h0, c0 = (t if isinstance(t, Tensor) else Tensor(t) for t in (x, w_ih, w_hh, h0, c0))
    if bias is not None and not isinstance(bias, Tensor):
        bias = Tensor(bias)
    if x.ndim != 3:
        raise ValueError(f"lstm_layer: x must be (T, B, input_size), got shape {tuple(x.shape)}.")
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        raise ValueError(f"lstm_layer: w_hh must be (4H, H), got shape {tuple(w_hh.shape)}.")
    T, B, I = x.shape
    H4, H = w_hh.shape
    expected = [("w_ih", w_ih, (H4, I)), ("h0", h0, (B, H)), ("c0", c0, (B, H))]
    if bias is not None:
        expected.append(("bias", bias, (H4,)))
    _check_shapes_and_dtype("lstm_layer", [x, w_hh], expected,
                            f"for x of shape {(T, B, I)} and w_hh of shape {(H4, H)} (H = {H})")
    lengths = _checked_lengths("lstm_layer", lengths, x, T, B)
    return LSTMLayer.apply(x, w_ih, w_hh, h0, c0, bias, lengths=lengths)
