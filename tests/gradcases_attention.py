"""Gradient-check cases for tinyattn.attention: every score, weighting, local-p, attend and sdpa,
in float64, with broadcasting, masks (including all-masked rows), reused and non-contiguous inputs."""
from __future__ import annotations

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from gradcases import GradCase, rnd


def _const(a):
    return ta.tensor(np.asarray(a, dtype=np.float64), dtype="float64")


def _mask_with_empty_row():
    """(2, 3, 4) mask: ragged keys, and query 2 of batch 1 sees nothing (its row must give 0)."""
    m = np.ones((2, 3, 4), dtype=bool)
    m[0, :, 3] = False
    m[1, 0, 0] = False
    m[1, 2, :] = False
    return m


def _sparsemax_scores(shape, seed, margin=0.05):
    """Random scores with no entry within ``margin`` of the sparsemax threshold (its kink)."""
    rng = np.random.default_rng(seed)
    while True:
        z = rng.uniform(-1.5, 1.5, shape)
        p = A.sparsemax(_const(z)).numpy()
        tau = np.where(p > 0, z - p, -np.inf).max(axis=-1, keepdims=True)   # z - p = tau on the support
        if np.all(np.abs(z - tau) > margin):
            return ta.tensor(z, requires_grad=True, dtype="float64")


def _hard_scores(shape, seed):
    """Scores with a clear winner per row (gap > 0.1), so finite differences never flip the argmax."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, shape)
    idx = rng.integers(0, shape[-1], shape[:-1])
    np.put_along_axis(z, idx[..., None], 1.5, axis=-1)
    return ta.tensor(z, requires_grad=True, dtype="float64")


def _sdpa_dropout(q, k, v):
    ta.manual_seed(3)           # the same dropout pattern at every evaluation
    return A.scaled_dot_product_attention(q, k, v, dropout_p=0.3)


CASES = [
    # ------------------------------------------------------------------ scores
    GradCase("attention.dot_score", A.dot_score,
             lambda: [rnd(2, 3, 4, seed=1), rnd(1, 5, 4, seed=2)], "broadcast batch, Tq != Tk"),
    GradCase("attention.dot_score", lambda x: A.dot_score(x, x),
             lambda: [rnd(3, 4, seed=3)], "self-scores, reused input"),
    GradCase("attention.dot_score", lambda q, k: A.dot_score(q.transpose(0, 2, 1), k[:, ::2]),
             lambda: [rnd(2, 4, 3, seed=4), rnd(2, 6, 4, seed=5)], "non-contiguous views"),
    GradCase("attention.scaled_dot_score", A.scaled_dot_score,
             lambda: [rnd(2, 3, 4, seed=6), rnd(2, 5, 4, seed=7)], "default 1/sqrt(d)"),
    GradCase("attention.scaled_dot_score", lambda q, k: A.scaled_dot_score(q, k, scale=0.7),
             lambda: [rnd(1, 4, seed=8), rnd(3, 4, seed=9)], "custom scale, Tq = 1"),
    GradCase("attention.general_score", A.general_score,
             lambda: [rnd(2, 3, 4, seed=10), rnd(2, 5, 3, seed=11), rnd(4, 3, seed=12)], "dq != dk"),
    GradCase("attention.additive_score", A.additive_score,
             lambda: [rnd(2, 3, 4, seed=13), rnd(1, 5, 3, seed=14), rnd(6, 4, seed=15),
                      rnd(6, 3, seed=16), rnd(6, seed=17)], "broadcast batch, dq != dk"),
    GradCase("attention.additive_score", A.additive_score,
             lambda: [rnd(3, 4, seed=18), rnd(2, 4, seed=19), rnd(5, 4, seed=20), rnd(5, 4, seed=21),
                      rnd(5, seed=22), rnd(5, seed=23)], "with bias"),
    GradCase("attention.cosine_score", A.cosine_score,
             lambda: [rnd(2, 3, 4, seed=24), rnd(2, 5, 4, seed=25)]),
    GradCase("attention.cosine_score", lambda x: A.cosine_score(x, x),
             lambda: [rnd(4, 3, seed=26)], "reused input"),
    GradCase("attention.euclidean_score", A.euclidean_score,
             lambda: [rnd(2, 3, 4, seed=27), rnd(1, 5, 4, seed=28)], "squared"),
    GradCase("attention.euclidean_score", lambda q, k: A.euclidean_score(q, k, squared=False),
             lambda: [rnd(3, 4, seed=29), rnd(5, 4, seed=30)], "distance"),
    GradCase("attention.concat_sigmoid_score", A.concat_sigmoid_score,
             lambda: [rnd(2, 5, 3, seed=31), rnd(6, seed=32)], "batched, W_a (2d,)"),
    GradCase("attention.concat_sigmoid_score", A.concat_sigmoid_score,
             lambda: [rnd(4, 3, seed=33), rnd(1, 6, seed=34), rnd(1, seed=35)], "W_a (1, 2d), bias"),
    # ------------------------------------------------------------------ weights
    GradCase("attention.softmax", lambda s: A.softmax(s, mask=_mask_with_empty_row()),
             lambda: [rnd(2, 3, 4, lo=-3, hi=3, seed=36)], "mask with an all-masked row"),
    GradCase("attention.softmax", lambda s: A.softmax(s, temperature=0.5),
             lambda: [rnd(3, 1, seed=37), ], "Tk = 1"),
    GradCase("attention.softmax", lambda s: A.softmax(s, mask=A.causal_mask(3, 5), temperature=2.0),
             lambda: [rnd(2, 3, 5, seed=38)], "causal mask, temperature 2"),
    GradCase("attention.sigmoid_weights", lambda s: A.sigmoid_weights(s, mask=_mask_with_empty_row()),
             lambda: [rnd(2, 3, 4, lo=-3, hi=3, seed=39)], "masked"),
    GradCase("attention.sparsemax", A.sparsemax,
             lambda: [_sparsemax_scores((2, 3, 5), seed=40)]),
    GradCase("attention.sparsemax", lambda s: A.sparsemax(s, mask=_mask_with_empty_row()),
             lambda: [_sparsemax_scores((2, 3, 4), seed=41)], "mask with an all-masked row"),
    GradCase("attention.sparsemax", lambda s: A.sparsemax(s, axis=0),
             lambda: [_sparsemax_scores((4, 3), seed=42).detach().T.requires_grad_()],
             "axis 0, non-contiguous"),
    GradCase("attention.hard_attention", lambda s: A.hard_attention(s, mask=_mask_with_empty_row()),
             lambda: [_hard_scores((2, 3, 4), seed=43)], "true gradient is zero"),
    GradCase("attention.stochastic_hard_attention",
             lambda s: A.stochastic_hard_attention(s, mask=_mask_with_empty_row(),
                                                   generator=np.random.default_rng(0)),
             lambda: [rnd(2, 3, 4, seed=44)], "log-prob of a fixed sample, masked"),
    GradCase("attention.reinforce_loss", lambda lp: A.reinforce_loss(lp, np.array([1.0, -2.0, 0.5]), 0.3),
             lambda: [rnd(3, seed=45)]),
    GradCase("attention.reinforce_loss",
             lambda s: A.reinforce_loss(A.stochastic_hard_attention(
                 s, temperature=0.7, generator=np.random.default_rng(1))[1], 2.0, reduction="sum"),
             lambda: [rnd(2, 4, seed=46)], "through a sample"),
    # ------------------------------------------------------------------ local-p
    GradCase("attention.local_p_positions", lambda h, W, v: A.local_p_positions(h, W, v, 7),
             lambda: [rnd(2, 3, 4, seed=47), rnd(5, 4, seed=48), rnd(5, seed=49)], "T = 7"),
    GradCase("attention.local_p_positions", lambda h, W, v: A.local_p_positions(h, W, v, np.array([4, 6])),
             lambda: [rnd(2, 3, 4, seed=50), rnd(5, 4, seed=51), rnd(5, seed=52)], "per-sequence lengths"),
    GradCase("attention.local_p_weights", lambda s, p: A.local_p_weights(s, p, window=2),
             lambda: [rnd(2, 3, 6, seed=53), _const([[0.3, 2.6, 4.7], [1.2, 3.4, 5.8]]).requires_grad_()],
             "scores and centres"),
    GradCase("attention.local_p_weights",
             lambda s, h, W, v: A.local_p_weights(s, A.local_p_positions(h, W, v, np.array([6, 4])),
                                                  window=1.5, mask=A.padding_mask([6, 4], 6)),
             lambda: [rnd(2, 3, 6, seed=54), rnd(2, 3, 4, seed=55), rnd(5, 4, seed=56), rnd(5, seed=57)],
             "chained from predicted centres, padding mask"),
    # ------------------------------------------------------------------ attend
    GradCase("attention.attend", lambda s, v: A.attend(s, v, mask=_mask_with_empty_row()),
             lambda: [rnd(2, 3, 4, seed=58), rnd(2, 4, 2, seed=59)], "softmax, masked"),
    GradCase("attention.attend", lambda s, v: A.attend(s, v, weights="sigmoid"),
             lambda: [rnd(1, 3, seed=60), rnd(3, 2, seed=61)], "sigmoid, Tq = 1"),
    GradCase("attention.attend", lambda s, v: A.attend(s, v, weights="sparsemax"),
             lambda: [_sparsemax_scores((2, 3, 4), seed=62), rnd(1, 4, 2, seed=63)], "sparsemax, broadcast values"),
    GradCase("attention.attend", lambda s, v, p: A.attend(s, v, weights="local_p", positions=p, window=1),
             lambda: [rnd(3, 5, seed=64), rnd(5, 2, seed=65), _const([0.4, 2.3, 3.8]).requires_grad_()],
             "local_p"),
    GradCase("attention.attend", lambda x: A.attend(A.scaled_dot_score(x, x), x),
             lambda: [rnd(4, 3, seed=66)], "self-attention, one input used three times"),
    # ------------------------------------------------------------------ sdpa
    GradCase("attention.scaled_dot_product_attention", A.scaled_dot_product_attention,
             lambda: [rnd(2, 3, 4, seed=67), rnd(2, 5, 4, seed=68), rnd(2, 5, 3, seed=69)], "Tq != Tk"),
    GradCase("attention.scaled_dot_product_attention",
             lambda q, k, v: A.scaled_dot_product_attention(q, k, v, attn_mask=_mask_with_empty_row()),
             lambda: [rnd(2, 3, 4, seed=70), rnd(2, 4, 4, seed=71), rnd(2, 4, 2, seed=72)],
             "bool mask, all-masked row"),
    GradCase("attention.scaled_dot_product_attention",
             lambda q, k, v, b: A.scaled_dot_product_attention(q, k, v, attn_mask=b, scale=0.3),
             lambda: [rnd(2, 3, 4, seed=73), rnd(2, 4, 4, seed=74), rnd(2, 4, 2, seed=75), rnd(3, 4, seed=76)],
             "float mask with gradient, scale"),
    GradCase("attention.scaled_dot_product_attention",
             lambda q, k, v: A.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda: [rnd(1, 2, 4, 3, seed=77), rnd(1, 2, 3, 3, seed=78), rnd(1, 2, 3, 2, seed=79)],
             "causal, heads, L > S"),
    GradCase("attention.scaled_dot_product_attention",
             lambda q, k, v: A.scaled_dot_product_attention(q, k, v, enable_gqa=True),
             lambda: [rnd(1, 4, 2, 3, seed=80), rnd(1, 2, 3, 3, seed=81), rnd(1, 2, 3, 2, seed=82)],
             "grouped-query heads"),
    GradCase("attention.scaled_dot_product_attention", _sdpa_dropout,
             lambda: [rnd(2, 3, 4, seed=83), rnd(2, 4, 4, seed=84), rnd(2, 4, 2, seed=85)],
             "dropout with a fixed seed"),
]
