"""Gradient-check cases for the layers and losses of PyTorch's API added in issue 16 (RNN, GRU,
their cells, Identity, Flatten, Unflatten, LazyLinear, the KL / BCE / smooth-L1 / Huber losses)."""
from __future__ import annotations

import numpy as np
from gradcases import GradCase, rnd
from gradcases_nn import _module

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn


def _materialised_lazy_linear(bias=True):
    m = nn.LazyLinear(2, bias=bias)
    m(ta.zeros(1, 3))                       # the first call creates the weight (3 in_features)
    return m


def _probs(*shape, seed=0, grad=True):
    return rnd(*shape, lo=0.1, hi=0.9, seed=seed, grad=grad)


def _log_probs(*shape, seed=0):
    z = rnd(*shape, seed=seed, grad=False).numpy()
    return ta.tensor(z - np.log(np.exp(z).sum(-1, keepdims=True)), requires_grad=True)


CASES = [
    # ------------------------------------------------------------------ recurrent layers
    _module("nn.RNNCell", lambda: nn.RNNCell(3, 2), lambda: [rnd(4, 3)], label="zero state"),
    _module("nn.RNNCell", lambda: nn.RNNCell(3, 2, nonlinearity="relu", bias=False),
            lambda: [rnd(3, seed=1), rnd(2, seed=2)], call=lambda m, x, h: m(x, h),
            label="relu, no bias, unbatched, given state"),
    _module("nn.GRUCell", lambda: nn.GRUCell(3, 2), lambda: [rnd(4, 3), rnd(4, 2, seed=1)],
            call=lambda m, x, h: m(x, h), label="given state"),
    _module("nn.GRUCell", lambda: nn.GRUCell(3, 2, bias=False), lambda: [rnd(3, seed=3)],
            label="no bias, unbatched"),
    _module("nn.RNN", lambda: nn.RNN(2, 3), lambda: [rnd(4, 2, 2)], label="one layer"),
    _module("nn.RNN", lambda: nn.RNN(2, 2, num_layers=2, bidirectional=True, batch_first=True,
                                     nonlinearity="relu"),
            lambda: [rnd(2, 3, 2, seed=1, away_from=0.0), rnd(4, 2, 2, seed=2)],
            call=lambda m, x, h: m(x, h), label="relu, 2 layers, bidirectional, initial state"),
    _module("nn.GRU", lambda: nn.GRU(2, 3), lambda: [rnd(4, 2, 2)], label="one layer"),
    _module("nn.GRU", lambda: nn.GRU(2, 2, num_layers=2, bidirectional=True, batch_first=True),
            lambda: [rnd(2, 3, 2, seed=1), rnd(4, 2, 2, seed=2)], call=lambda m, x, h: m(x, h),
            label="2 layers, bidirectional, batch_first, initial state"),
    _module("nn.GRU", lambda: nn.GRU(2, 2, num_layers=2, dropout=0.3, bias=False),
            lambda: [rnd(3, 2, seed=6)], label="unbatched, no bias, dropout in training mode"),
    # ------------------------------------------------------------------ shape layers
    _module("nn.Identity", nn.Identity, lambda: [rnd(2, 3)]),
    _module("nn.Flatten", nn.Flatten, lambda: [rnd(2, 3, 2)]),
    _module("nn.Unflatten", lambda: nn.Unflatten(1, (2, 3)), lambda: [rnd(2, 6)]),
    _module("nn.LazyLinear", _materialised_lazy_linear, lambda: [rnd(4, 3)]),
    _module("nn.LazyLinear", lambda: _materialised_lazy_linear(bias=False),
            lambda: [rnd(2, 2, 3, seed=1)], label="no bias, 3-d input"),
    # ------------------------------------------------------------------ losses
    _module("nn.KLDivLoss", lambda: nn.KLDivLoss(reduction="batchmean"),
            lambda: [_log_probs(3, 4), _probs(3, 4, seed=1)], label="both sides"),
    _module("nn.BCELoss", nn.BCELoss, lambda: [_probs(3, 4), _probs(3, 4, seed=1)],
            label="both sides"),
    _module("nn.BCEWithLogitsLoss", lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 0.5])),
            lambda: [rnd(3, 2, lo=-3, hi=3), _probs(3, 2, seed=1)], label="pos_weight, both sides"),
    _module("nn.SmoothL1Loss", lambda: nn.SmoothL1Loss(beta=0.5),
            lambda: [rnd(3, 4, lo=-2, hi=2), rnd(3, 4, seed=1)], label="both sides"),
    _module("nn.HuberLoss", lambda: nn.HuberLoss(delta=0.7),
            lambda: [rnd(3, 4, lo=-2, hi=2), rnd(3, 4, seed=1)], label="both sides"),
    GradCase("F.kl_div", lambda x, y: F.kl_div(x, y, reduction="sum", log_target=True),
             lambda: [_log_probs(3, 4), _log_probs(3, 4, seed=1)], label="log_target"),
    GradCase("F.kl_div", lambda x, y: F.kl_div(x, y, reduction="none"),
             lambda: [_log_probs(2, 3), _probs(2, 3, seed=1)], label="none"),
    GradCase("F.binary_cross_entropy",
             lambda x, y: F.binary_cross_entropy(x, y, weight=np.array([1.0, 2.0, 0.5]),
                                                 reduction="sum"),
             lambda: [_probs(2, 3), _probs(2, 3, seed=1)], label="weight, sum"),
    GradCase("F.binary_cross_entropy_with_logits",
             lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=np.array([1.0, 3.0])),
             lambda: [rnd(3, 2, lo=-25, hi=25), _probs(3, 2, seed=1)],
             label="large logits, weight"),
    GradCase("F.smooth_l1_loss", lambda x, y: F.smooth_l1_loss(x, y, beta=0.0, reduction="sum"),
             lambda: [rnd(3, 4, away_from=0.0), rnd(3, 4, seed=1, grad=False)],
             label="beta 0 (L1)"),
    GradCase("F.huber_loss", lambda x, y: F.huber_loss(x, y, delta=2.0, reduction="none"),
             lambda: [rnd(3, 4, lo=-4, hi=4), rnd(3, 4, seed=1)], label="none"),
]
