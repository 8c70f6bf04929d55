"""Attention primitives: scores, weights, masks, and the weighted sum that puts them together.

    scores  (..., Tq, Tk) = score(queries (..., Tq, d), keys (..., Tk, d))
    weights (..., Tq, Tk) = softmax / sigmoid / sparsemax / hard (scores, mask)
    context (..., Tq, dv) = weights @ values (..., Tk, dv)

Masks are boolean, True = may attend (PyTorch's convention for scaled_dot_product_attention).
"""
from .attend import WEIGHTINGS, attend, scaled_dot_product_attention
from .hard import hard_attention, reinforce_loss, stochastic_hard_attention
from .alibi import alibi_bias, alibi_slopes
from .linear_attention import linear_attention, linear_attention_step
from .local import local_p_positions, local_p_weights
from .masks import causal_mask, local_window_mask, padding_mask
from .rotary import rotary_embedding
from .scores import (additive_score, concat_sigmoid_score, cosine_score, dot_score,
                     euclidean_score, general_score, scaled_dot_score)
from .sliding_window import sliding_window_attention, sliding_window_mask
from .sparsemax import sparsemax
from .weights import sigmoid_weights, softmax

__all__ = [
    "dot_score", "scaled_dot_score", "general_score", "additive_score", "cosine_score",
    "euclidean_score", "concat_sigmoid_score",
    "softmax", "sigmoid_weights", "sparsemax", "hard_attention", "stochastic_hard_attention",
    "reinforce_loss",
    "local_window_mask", "causal_mask", "padding_mask", "local_p_positions", "local_p_weights",
    "attend", "scaled_dot_product_attention", "WEIGHTINGS",
    # attention as it is used today (lessons 21-25)
    "rotary_embedding", "alibi_slopes", "alibi_bias", "sliding_window_mask", "sliding_window_attention",
    "linear_attention", "linear_attention_step",
]
