"""Luong's local-p attention (Luong, Pham & Manning, 2015, §3.2): predict where to look, then look
near there.

    p_t    = T · σ(v_pᵀ tanh(W_p h_t))                       the predicted centre, a real number in (0, T)
    a_t(s) = align_t(s) · exp(-(s - p_t)² / (2 σ²)),  σ = D / 2
    align_t(s) = softmax over the keys in the window |s - p_t| <= D (others get 0)

(Luong's other local variant, local-m, takes p_t = t with no Gaussian: that is attention under
``local_window_mask(Tq, Tk, window=D)``.)

Source positions s are 0, 1, ..., T-1. The window edges are fixed from the value of p_t (moving
p_t by a hair does not change which keys are inside), so the gradient with respect to p_t flows
through the Gaussian, which is what makes the centre learnable.
"""
from __future__ import annotations

import numbers

from .. import backend, ops
from ..autograd.registry import register_op
from ..autograd.tensor import unwrap
from ._checks import as_tensor, broadcasts_to, check_min_ndim, plain_mask


@register_op("attention.local_p_positions")
def local_p_positions(h, W_p, v_p, source_length):
    """Predicted centres p_t = T · σ(v_pᵀ tanh(W_p h_t)).

    h: (..., Tq, d) decoder states; W_p: (hidden, d) (Linear layout); v_p: (hidden,);
    source_length T: an int, or one length per sequence of shape (B,) for h of shape (B, Tq, d)
    -> positions (..., Tq), each in (0, T).
    """
    name = "local_p_positions"
    h, W_p, v_p = as_tensor(h, name, "h"), as_tensor(W_p, name, "W_p"), as_tensor(v_p, name, "v_p")
    check_min_ndim(name, "h", h, 1, "(..., Tq, d)")
    if v_p.ndim != 1 or W_p.shape != (v_p.shape[0], h.shape[-1]):
        raise ValueError(f"{name}: expected W_p: (hidden, d) and v_p: (hidden,) for h of shape "
                         f"{tuple(h.shape)}; got W_p {tuple(W_p.shape)}, v_p {tuple(v_p.shape)}.")
    gate = ops.sigmoid(ops.tanh(h @ W_p.T) @ v_p)               # (..., Tq), in (0, 1)
    if isinstance(source_length, numbers.Number):
        if source_length <= 0:
            raise ValueError(f"{name}: source_length must be > 0, got {source_length!r}.")
        return gate * float(source_length)
    T = backend.active_module().asarray(unwrap(source_length))
    if T.ndim != 1 or h.ndim < 3 or T.shape[0] != h.shape[0]:
        raise ValueError(f"{name}: per-sequence source lengths need shape (B,) with h of shape "
                         f"(B, Tq, d); got lengths {tuple(T.shape)} and h {tuple(h.shape)}.")
    T = T.astype(gate.dtype).reshape((T.shape[0],) + (1,) * (gate.ndim - 1))
    return gate * T


@register_op("attention.local_p_weights")
def local_p_weights(scores, positions, window, mask=None):
    """Local-p weights a_t(s) = softmax_{|s - p_t| <= D}(scores_t)(s) · exp(-(s - p_t)² / (2 (D/2)²)).

    scores: (..., Tq, Tk); positions p: (..., Tq) (e.g. from ``local_p_positions``), broadcastable
    to the scores without their last axis; window D > 0; mask: bool, True = may attend (e.g. a
    padding mask). -> (..., Tq, Tk). The weights are not renormalised after the Gaussian (as in
    the paper), so a row sums to at most 1.
    """
    name = "local_p_weights"
    scores, positions = as_tensor(scores, name, "scores"), as_tensor(positions, name, "positions")
    if not isinstance(window, numbers.Real) or not window > 0:
        raise ValueError(f"{name}: window D must be a number > 0 (the Gaussian's σ is D/2), got {window!r}.")
    m = plain_mask(name, mask, scores.shape)
    p = ops.unsqueeze(positions, -1)                             # (..., Tq, 1)
    if not broadcasts_to(p.shape, scores.shape):
        raise ValueError(f"{name}: positions of shape {tuple(positions.shape)} must match the scores "
                         f"{tuple(scores.shape)} without their last axis (one centre per query).")
    xp = backend.get_array_module(scores.array)
    s = xp.arange(scores.shape[-1], dtype=scores.dtype)           # key positions 0..Tk-1
    inside = abs(s - p.array) <= window                           # the window, fixed by p's value
    keep = inside if m is None else inside & m
    align = ops.softmax(scores, axis=-1, mask=keep)
    sigma = window / 2.0
    gaussian = ops.exp(-((s - p) ** 2) / (2.0 * sigma * sigma))  # differentiable in p
    return align * gaussian

