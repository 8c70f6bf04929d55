"""Activation functions as modules, for use in Sequential."""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from .module import Module


@register_op("nn.ReLU")
class ReLU(Module):
    """max(x, 0), elementwise."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)


@register_op("nn.GELU")
class GELU(Module):
    """x Φ(x); ``approximate='tanh'`` uses the tanh formula (as PyTorch)."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}.")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


@register_op("nn.Tanh")
class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


@register_op("nn.Sigmoid")
class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


@register_op("nn.Softmax")
class Softmax(Module):
    """softmax along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


@register_op("nn.LogSoftmax")
class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
