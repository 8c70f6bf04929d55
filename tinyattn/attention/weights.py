"""From scores to weights: softmax (normalised) and sigmoid gates (independent).

scores: (..., Tq, Tk) -> weights: (..., Tq, Tk), masks broadcast to the scores, True = may attend.
The other two ways to turn scores into weights live beside this file: ``sparsemax.py`` (normalised
and sparse) and ``hard.py`` (one key per query).
"""
from __future__ import annotations

import numbers

import numpy as np  # errstate only

from .. import ops
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._checks import as_tensor, plain_mask


def _check_temperature(name: str, temperature) -> None:
    if not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(f"{name}: temperature must be a number > 0, got {temperature!r}. Small values "
                         f"sharpen the weights towards argmax, large ones flatten them towards uniform.")


@register_op("attention.softmax")
def softmax(scores, mask=None, temperature=1.0, axis=-1):
    """Masked softmax over the keys, with a temperature:

        w_ij = exp(s_ij / τ) / Σ_{j' allowed} exp(s_ij' / τ)   for allowed j,   w_ij = 0 otherwise.

    scores: (..., Tq, Tk); mask: bool, broadcastable to scores, True = may attend; temperature τ > 0.
    Returns (..., Tq, Tk), each row summing to 1 over its allowed keys.

    Stable for any finite scores (±1e4 in float32 included): the row maximum is subtracted before
    exp, so the largest exponent is e^0 = 1. A row whose keys are all masked gets weights 0 and
    gradient 0 (PyTorch's F.softmax would give NaN there).
    """
    scores = as_tensor(scores, "softmax", "scores")
    _check_temperature("softmax", temperature)
    m = plain_mask("softmax", mask, scores.shape)
    if temperature != 1.0:
        # the allowed row maximum first, then the division: s / τ alone overflows for large
        # finite scores (3e38 / 0.5 = inf in float32, and the row becomes NaN). The shift is a
        # constant (no gradient): softmax does not change when a row is shifted.
        xp = get_array_module(scores.array)
        allowed = scores.array if m is None else xp.where(m, scores.array, -xp.inf)
        top = allowed.max(axis=axis, keepdims=True) if allowed.size else xp.zeros((), allowed.dtype)
        top = xp.where(xp.isfinite(top), top, 0).astype(scores.dtype)
        with np.errstate(over="ignore"):     # -inf where a score is far below the maximum:
            scores = (scores - top) / temperature   # its weight is 0 either way
    return ops.softmax(scores, axis=axis, mask=m)


@register_op("attention.sigmoid_weights")
def sigmoid_weights(scores, mask=None):
    """Sigmoid gates, one per (query, key) pair, each in (0, 1) on its own (doc 000 §3.2, §4.2):

        w_ij = σ(s_ij) = 1 / (1 + e^{-s_ij})   (0 where masked)

    scores: (..., Tq, Tk) -> (..., Tq, Tk). Unlike softmax the weights are not normalised: a row can
    sum to anything in (0, Tk), and raising one score does not lower the others' weights.
    """
    scores = as_tensor(scores, "sigmoid_weights", "scores")
    m = plain_mask("sigmoid_weights", mask, scores.shape)
    w = ops.sigmoid(scores)
    return w if m is None else ops.where(m, w, 0.0)
