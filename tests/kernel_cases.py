"""Inputs for every kernel, in NumPy, so a kernel on another array library (CuPy, or the test
stand-in ``fakecupy``) can be compared with its NumPy twin on the same numbers.

``cases(dtype)`` yields (kernel name, label, args); ``move(args, to)`` converts the array arguments
with ``to`` (e.g. ``cupy.asarray``) and leaves numbers, None and bools alone; ``host(out, to_host)``
brings outputs back. Shared by tests/test_backend_purity.py and tests/test_cupy_backend.py.
"""
from __future__ import annotations

import numpy as np


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cases(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)

    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dt)

    # softmax / log_softmax: last axis and a middle axis; a mask with an all-blocked row
    x = r(3, 4, 7, scale=3.0)
    mask = rng.random((3, 4, 7)) > 0.3
    mask[0, 0] = False
    y = _softmax(x)
    g = r(3, 4, 7)
    yield "softmax_forward", "last axis", (x, -1, None)
    yield "softmax_forward", "axis 1", (x, 1, None)
    yield "softmax_forward", "mask with an empty row", (x, -1, mask)
    yield "softmax_backward", "last axis", (y, g, -1)
    yield "log_softmax_forward", "last axis", (x, -1)
    yield "log_softmax_forward", "axis 1", (x, 1)
    yield "log_softmax_backward", "last axis", (np.log(y), g, -1)

    # layer norm: rows (M, N), with and without affine parameters
    xs, w, b = r(6, 10, scale=2.0) + 1.0, r(10), r(10)
    yield "layer_norm_forward", "affine", (xs, w, b, 1e-5)
    yield "layer_norm_forward", "plain", (xs, None, None, 1e-5)
    mean = xs.mean(axis=1)
    rstd = 1.0 / np.sqrt(xs.var(axis=1) + 1e-5)
    yield "layer_norm_backward", "affine", (r(6, 10), xs, mean.astype(dt), rstd.astype(dt), w)
    yield "layer_norm_backward", "plain", (r(6, 10), xs, mean.astype(dt), rstd.astype(dt), None)

    # cross-entropy: ignore_index, class weights, label smoothing
    n, c = 8, 5
    logits = r(n, c, scale=2.0)
    target = rng.integers(0, c, n).astype(np.int64)
    target[2] = -100
    cw = (rng.random(c) + 0.5).astype(dt)
    logp = np.log(_softmax(logits)).astype(dt)
    for label, weight, eps in (("plain", None, 0.0), ("weights", cw, 0.0),
                               ("smoothing", cw, 0.1)):
        yield "cross_entropy_forward", label, (logits, target, weight, -100, eps)
        yield "cross_entropy_backward", label, (r(n), logp, target, weight, -100, eps)

    # embedding backward: repeated indices accumulate, padding row stays 0
    idx = np.array([1, 3, 1, 0, 3, 3], dtype=np.int64)
    yield "embedding_backward", "repeats", (idx, r(6, 4), 5, None)
    yield "embedding_backward", "padding_idx", (idx, r(6, 4), 5, 3)

    # LSTM: with and without lengths
    T, B, H = 5, 3, 4
    xp_ = r(T, B, 4 * H)
    w_hh = r(4 * H, H, scale=0.5)
    h0, c0 = r(B, H), r(B, H)
    lengths = np.array([5, 2, 0], dtype=np.int64)
    for label, lens in (("full", None), ("lengths", lengths)):
        yield "lstm_forward", label, (xp_, w_hh, h0, c0, lens)
        out, gates, cs, hs = _lstm_reference(xp_, w_hh, h0, c0, lens)
        yield "lstm_backward", label, (r(T, B, H), r(B, H), r(B, H), gates, cs, hs, w_hh, lens)
    x, w_ih, bias = r(T, B, 2), r(4 * H, 2), r(4 * H)
    for label, lens, b in (("full", None, bias), ("lengths, no bias", lengths, None)):
        yield "lstm_layer_forward", label, (x, w_ih, w_hh, b, h0, c0, lens)
        out, gates, cs, hs = _lstm_layer_reference(x, w_ih, w_hh, b, h0, c0, lens)
        yield "lstm_layer_backward", label, (r(T, B, H), r(B, H), r(B, H), x, w_ih, w_hh, gates,
                                             cs, hs, lens)

    # memory-efficient attention: causal, key lengths (one empty), a window
    bh, tq, tk, d = 3, 9, 9, 4
    q, k, v = r(bh, tq, d), r(bh, tk, d), r(bh, tk, d)
    kl = np.array([9, 4, 0], dtype=np.int64)
    for label, causal, window in (("plain", False, None), ("causal", True, None),
                                  ("window", False, 2)):
        yield "attention_forward", label, (q, k, v, kl, causal, 0.5, window)
        out, lse = _attention_reference(q, k, v, kl, causal, 0.5, window)
        yield "attention_backward", label, (r(bh, tq, d), q, k, v, out, lse, kl, causal, 0.5, window)
    # a NaN query row: NaN out, forward and backward, as from the plain path (issue 17)
    q_nan = q.copy()
    q_nan[1, 2] = np.nan
    yield "attention_forward", "NaN query", (q_nan, k, v, kl, False, 0.5, None)
    out, lse = _attention_reference(q_nan, k, v, kl, False, 0.5, None)
    yield "attention_backward", "NaN query", (r(bh, tq, d), q_nan, k, v, out, lse, kl, False, 0.5, None)
    # rows with +inf and NaN entries: NaN rows, as PyTorch (a row of -inf only is all zeros)
    x_odd = x.copy()
    x_odd[0, 0, 0], x_odd[1, 1, 1], x_odd[2, 2] = np.inf, np.nan, -np.inf
    yield "softmax_forward", "inf, NaN and -inf rows", (x_odd, -1, None)
    yield "log_softmax_forward", "inf and NaN rows", (x_odd, -1)


def _lstm_layer_reference(*args):
    from tinyattn.ops import lstm as reference  # noqa: PLC0415

    return reference.lstm_layer_forward(*args)


def _lstm_reference(*args):
    from tinyattn.ops import lstm as reference  # noqa: PLC0415

    return reference.lstm_forward(*args)


def _attention_reference(*args):
    from tinyattn.ops import memory_efficient_attention as reference  # noqa: PLC0415

    return reference.attention_forward(*args)


def move(args, to):
    return tuple(to(a) if isinstance(a, np.ndarray) else a for a in args)


def host(out, to_host):
    if isinstance(out, (tuple, list)):
        return [host(o, to_host) for o in out]
    return None if out is None else np.asarray(to_host(out))
