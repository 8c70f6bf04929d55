"""Dropout: zero each element with probability p while training, scale the rest by 1/(1-p)."""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from .module import Module


@register_op("nn.Dropout")
class Dropout(Module):
    """Any shape -> the same shape. The identity in eval mode (``model.eval()``)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}.")
        self.p, self.inplace = float(p), inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
