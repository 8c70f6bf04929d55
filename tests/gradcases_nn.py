"""Gradient-check cases for the layers (``nn.*``) and the functional API (``F.*``).

Modules are checked w.r.t. ALL their parameters and inputs, in float64, with
``module_case`` from tests/module_gradcheck.py (transformer layers reuse it the same way)::

    from module_gradcheck import module_case            # or gradcheck_module in a plain test
    fn, inputs = module_case(lambda: nn.Linear(3, 2), lambda: [rnd(4, 3)])
    GradCase("nn.Linear", fn, inputs)

``module_case`` builds the module seeded and in float64 each time, passes its parameters to
gradcheck as extra inputs, reseeds before every call (so dropout in training mode is checkable),
and flattens nested outputs such as LSTM's ``(output, (h_n, c_n))``.
"""
from __future__ import annotations

import numpy as np
from gradcases import GradCase, rnd
from module_gradcheck import module_case

import tinyattn.functional as F
import tinyattn.nn as nn


def _module(op, make_module, make_inputs, label="", call=None, **kwargs):
    fn, inputs = module_case(make_module, make_inputs, call=call)
    return GradCase(op, fn, inputs, label=label, kwargs=kwargs)


LENGTHS = np.array([4, 2, 3])


def _lstm_with_state(m, x, h0, c0):
    return m(x, (h0, c0))


def _lstm_with_lengths(m, x):
    return m(x, lengths=LENGTHS)


CASES = [
    # ------------------------------------------------------------------ layers
    _module("nn.Linear", lambda: nn.Linear(3, 2), lambda: [rnd(4, 3)]),
    _module("nn.Linear", lambda: nn.Linear(3, 2, bias=False), lambda: [rnd(2, 4, 3, seed=1)],
            label="no bias, 3-d input"),
    _module("nn.Linear", lambda: nn.Linear(3, 2), lambda: [rnd(3, seed=2)], label="1-d input"),
    _module("nn.Embedding", lambda: nn.Embedding(6, 3),
            lambda: [np.array([[1, 5, 1], [0, 2, 1]])], label="repeated ids"),
    _module("nn.Embedding", lambda: nn.Embedding(6, 3, padding_idx=-1),
            lambda: [np.array([4, 2, 4, 3])], label="padding_idx set (its row is not looked up: its gradient is zero by design)"),
    _module("nn.Dropout", lambda: nn.Dropout(0.4), lambda: [rnd(4, 5)], label="training mode"),
    _module("nn.LayerNorm", lambda: nn.LayerNorm(4), lambda: [rnd(3, 4, lo=-2, hi=2)]),
    _module("nn.LayerNorm", lambda: nn.LayerNorm((2, 3), elementwise_affine=False),
            lambda: [rnd(2, 2, 3, seed=3)], label="two axes, no affine"),
    _module("nn.LayerNorm", lambda: nn.LayerNorm(4, bias=False), lambda: [rnd(2, 4, seed=4)],
            label="no bias"),
    _module("nn.ReLU", nn.ReLU, lambda: [rnd(3, 4, away_from=0.0)]),
    _module("nn.GELU", nn.GELU, lambda: [rnd(3, 4, lo=-3, hi=3)]),
    _module("nn.GELU", lambda: nn.GELU("tanh"), lambda: [rnd(3, 4, lo=-3, hi=3)], label="tanh"),
    _module("nn.Tanh", nn.Tanh, lambda: [rnd(3, 4, lo=-2, hi=2)]),
    _module("nn.Sigmoid", nn.Sigmoid, lambda: [rnd(3, 4, lo=-4, hi=4)]),
    _module("nn.Softmax", lambda: nn.Softmax(dim=0), lambda: [rnd(3, 4)]),
    _module("nn.LogSoftmax", lambda: nn.LogSoftmax(dim=-1), lambda: [rnd(3, 4)]),
    # ------------------------------------------------------------------ LSTM
    _module("nn.LSTMCell", lambda: nn.LSTMCell(3, 2), lambda: [rnd(4, 3)], label="zero state"),
    _module("nn.LSTMCell", lambda: nn.LSTMCell(3, 2), lambda: [rnd(4, 3), rnd(4, 2, seed=1),
                                                              rnd(4, 2, seed=2)],
            call=lambda m, x, h, c: m(x, (h, c)), label="given state"),
    _module("nn.LSTMCell", lambda: nn.LSTMCell(3, 2, bias=False), lambda: [rnd(3, seed=5)],
            label="no bias, unbatched"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 3), lambda: [rnd(4, 2, 2)], label="one layer"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 2, num_layers=2, bidirectional=True, batch_first=True),
            lambda: [rnd(2, 3, 2, seed=1), rnd(4, 2, 2, seed=2), rnd(4, 2, 2, seed=3)],
            call=_lstm_with_state, label="2 layers, bidirectional, batch_first, initial state"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 2, bidirectional=True, bias=False),
            lambda: [rnd(4, 3, 2, seed=4)], call=_lstm_with_lengths,
            label="bidirectional, no bias, lengths"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 2, num_layers=2, bidirectional=True, batch_first=True),
            lambda: [rnd(3, 4, 2, seed=7), rnd(4, 3, 2, seed=8), rnd(4, 3, 2, seed=9)],
            call=lambda m, x, h, c: m(x, (h, c), lengths=LENGTHS),
            label="2 layers, bidirectional, batch_first, lengths, initial state"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 2, num_layers=2, dropout=0.3),
            lambda: [rnd(3, 2, 2, seed=5)], label="dropout between layers (training)"),
    _module("nn.LSTM", lambda: nn.LSTM(2, 2), lambda: [rnd(3, 2, seed=6)], label="unbatched"),
    _module("nn.CrossEntropyLoss", lambda: nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0),
            lambda: [rnd(4, 3), np.array([0, 2, 1, 2])], label="label smoothing, ignore_index"),
    _module("nn.NLLLoss", lambda: nn.NLLLoss(reduction="sum"), lambda: [rnd(3, 4), np.array([3, 0, 1])]),
    _module("nn.MSELoss", nn.MSELoss, lambda: [rnd(2, 3), rnd(2, 3, seed=1)], label="both sides"),
    # ------------------------------------------------------------------ functional
    GradCase("F.linear", lambda x, w, b: F.linear(x, w, b),
             lambda: [rnd(2, 3, 4), rnd(5, 4, seed=1), rnd(5, seed=2)], label="3-d input"),
    GradCase("F.linear", lambda x, w: F.linear(x, w), lambda: [rnd(4, seed=3), rnd(2, 4, seed=4)],
             label="1-d input, no bias"),
    GradCase("F.dropout", lambda x: (F.dropout(x, 0.5, training=True)
                                     if not _reseed() else None), lambda: [rnd(4, 6)]),
    GradCase("F.cross_entropy", lambda x: F.cross_entropy(x, np.array([[0, 2], [1, 1]]),
                                                          label_smoothing=0.1),
             lambda: [rnd(2, 3, 2)], label="(N, C, d) with label smoothing"),
    GradCase("F.cross_entropy", lambda x: F.cross_entropy(x, np.array(2), reduction="sum"),
             lambda: [rnd(4)], label="unbatched"),
    GradCase("F.cross_entropy",
             lambda x, p: F.cross_entropy(x, p, weight=np.array([1.0, 2.0, 0.5]),
                                          label_smoothing=0.2),
             lambda: [rnd(4, 3), rnd(4, 3, lo=0.0, hi=1.0, seed=1, grad=False)],
             label="probability targets, class weights"),
    GradCase("F.nll_loss", lambda x: F.nll_loss(x, np.array([0, 2, -100, 1]),
                                                weight=np.array([1.0, 2.0, 0.5])),
             lambda: [rnd(4, 3)], label="weights, ignore_index"),
    GradCase("F.nll_loss", lambda x: F.nll_loss(x, np.array([[0, 2], [1, 0]]), reduction="none"),
             lambda: [rnd(2, 3, 2)], label="(N, C, d), none"),
    GradCase("F.mse_loss", lambda x, y: F.mse_loss(x, y), lambda: [rnd(3, 4), rnd(3, 4, seed=1)],
             label="both sides"),
    GradCase("F.mse_loss", lambda x, y: F.mse_loss(x, y, reduction="none"),
             lambda: [rnd(2, 3), rnd(2, 3, seed=1, grad=False)], label="none"),
]


def _reseed():
    """Same dropout mask on every gradcheck evaluation."""
    import tinyattn as ta

    ta.manual_seed(0)
    return False
