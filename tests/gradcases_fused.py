"""Gradient-check cases for the fused ops (layer_norm, cross_entropy, embedding, lstm_sequence,
lstm_layer,
memory-efficient attention). The registry test runs each under the current kernel provider;
tests/test_kernels.py runs them again under both providers."""
from __future__ import annotations

import numpy as np

from gradcases import GradCase, rnd
from tinyattn.ops.cross_entropy import cross_entropy
from tinyattn.ops.embedding import embedding
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention
from tinyattn.ops.layernorm import layer_norm
from tinyattn.ops.lstm import lstm_layer, lstm_sequence

def named(*tensors_and_names):
    """Give each input a name: gradcheck then reports failures by name (and never has to look an
    input up by equality, which is elementwise for tensors)."""
    out = []
    for t, name in tensors_and_names:
        t.name = name
        out.append(t)
    return out


_TARGET = np.array([2, 0, -100, 4, 4, 1, -100])
_CLASS_WEIGHT = np.array([0.5, 1.5, 1.0, 2.0, 0.25])
_INDICES = np.array([[1, 3, 3], [0, 5, 1]])


def _lstm_inputs(T=4, B=3, H=2, seed=0):
    return named((rnd(T, B, 4 * H, seed=seed), "x_proj"),
                 (rnd(4 * H, H, seed=seed + 1, lo=-0.7, hi=0.7), "w_hh"),
                 (rnd(B, H, seed=seed + 2), "h0"), (rnd(B, H, seed=seed + 3), "c0"))


def _lstm_layer_inputs(T=3, B=3, I=2, H=2, seed=0, bias=True):
    """B = 16 gives the compiled path two sequence blocks on two threads (8 rows each)."""
    return named(*[(rnd(T, B, I, seed=seed), "x"),
                   (rnd(4 * H, I, seed=seed + 1, lo=-0.7, hi=0.7), "w_ih"),
                   (rnd(4 * H, H, seed=seed + 2, lo=-0.7, hi=0.7), "w_hh"),
                   (rnd(B, H, seed=seed + 3), "h0"), (rnd(B, H, seed=seed + 4), "c0")]
                 + ([(rnd(4 * H, seed=seed + 5), "bias")] if bias else []))


def _qkv(tq=5, tk=5, d=3, lead=(2,), seed=0):
    return named((rnd(*lead, tq, d, seed=seed), "q"), (rnd(*lead, tk, d, seed=seed + 1), "k"),
                 (rnd(*lead, tk, d + 1, seed=seed + 2), "v"))


def _lstm_all_outputs(lengths=None):
    return lambda xp, w, h, c: lstm_sequence(xp, w, h, c, lengths)


CASES = [
    GradCase("layer_norm", lambda x, w, b: layer_norm(x, 5, w, b),
             lambda: named((rnd(3, 5), "x"), (rnd(5, seed=1), "weight"), (rnd(5, seed=2), "bias")), "affine"),
    GradCase("layer_norm", lambda x: layer_norm(x, (2, 3), eps=1e-3),
             lambda: [rnd(4, 2, 3)], "two axes, no affine"),
    GradCase("layer_norm", lambda x, w: layer_norm(x, (1,), w),
             lambda: named((rnd(3, 1), "x"), (rnd(1, seed=3), "weight")), "length-1 axis"),
    GradCase("cross_entropy", lambda x: cross_entropy(x, _TARGET),
             lambda: [rnd(7, 5, lo=-2, hi=2)], "mean, ignore_index"),
    GradCase("cross_entropy", lambda x: cross_entropy(x, _TARGET, weight=_CLASS_WEIGHT,
                                                      label_smoothing=0.2),
             lambda: [rnd(7, 5, lo=-2, hi=2)], "weighted mean, smoothing"),
    GradCase("cross_entropy", lambda x: cross_entropy(x, _TARGET, weight=_CLASS_WEIGHT,
                                                      reduction="none", label_smoothing=0.1),
             lambda: [rnd(7, 5, lo=-2, hi=2)], "none"),
    GradCase("cross_entropy", lambda x: cross_entropy(x, np.array([1, 0, 2]), reduction="sum"),
             lambda: [rnd(3, 3, lo=-2, hi=2)], "sum"),
    GradCase("embedding", lambda w: embedding(_INDICES, w),
             lambda: [rnd(6, 4)], "repeated indices"),
    # the padding row is read by the forward but gets no gradient (by design, as PyTorch), so finite
    # differences can only be compared where the indices avoid it; tests/test_fused_ops.py checks
    # the zero row itself
    GradCase("embedding", lambda w: embedding(_INDICES, w, padding_idx=2),
             lambda: [rnd(6, 4)], "padding_idx not looked up"),
    GradCase("lstm_sequence", _lstm_all_outputs(), _lstm_inputs, "full length"),
    GradCase("lstm_sequence", _lstm_all_outputs(np.array([4, 2, 1])), _lstm_inputs, "lengths"),
    GradCase("lstm_layer", lambda x, wi, wh, h, c, b: lstm_layer(x, wi, wh, b, h, c),
             _lstm_layer_inputs, "bias, full length"),
    GradCase("lstm_layer", lambda x, wi, wh, h, c: lstm_layer(x, wi, wh, None, h, c),
             lambda: _lstm_layer_inputs(bias=False), "no bias"),
    GradCase("lstm_layer",
             lambda x, wi, wh, h, c, b: lstm_layer(x, wi, wh, b, h, c, np.array([3, 1, 2])),
             _lstm_layer_inputs, "lengths incl. an empty sequence"),
    GradCase("lstm_layer", lambda x, wi, wh, h, c, b: lstm_layer(x, wi, wh, b, h, h),
             _lstm_layer_inputs, "one tensor as both h0 and c0"),
    GradCase("lstm_layer",
             lambda x, wi, wh, h, c, b: lstm_layer(x, wi, wh, b, h, c, np.arange(16) % 3 + 1),
             lambda: _lstm_layer_inputs(B=16), "16 sequences: two blocks of rows, lengths"),
    GradCase("memory_efficient_attention", lambda q, k, v: memory_efficient_attention(q, k, v),
             _qkv, "plain"),
    GradCase("memory_efficient_attention",
             lambda q, k, v: memory_efficient_attention(q, k, v, causal=True,
                                                        key_lengths=np.array([4, 0])),
             _qkv, "causal, key_lengths incl. an empty sequence"),
    GradCase("memory_efficient_attention",
             lambda q, k, v: memory_efficient_attention(q, k, v, window=1, scale=0.7),
             lambda: _qkv(tq=6, tk=6), "window"),
    GradCase("memory_efficient_attention",
             lambda q, k, v: memory_efficient_attention(q, k, v, causal=True),
             lambda: _qkv(tq=3, tk=5, lead=(1, 2)), "Tq != Tk, two leading axes"),
]
