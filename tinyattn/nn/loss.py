"""Loss modules: thin wrappers over the functional losses, with PyTorch's constructor arguments."""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from .module import Module


@register_op("nn.CrossEntropyLoss")
class CrossEntropyLoss(Module):
    """F.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


@register_op("nn.NLLLoss")
class NLLLoss(Module):
    """F.nll_loss(input, target, weight, ignore_index, reduction)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


@register_op("nn.MSELoss")
class MSELoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
