"""LayerNorm: normalise each example over its last axes, then scale and shift (PyTorch's layout)."""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from . import init
from .module import Module, check_sizes, empty_parameter


@register_op("nn.LayerNorm")
class LayerNorm(Module):
    """x (..., *normalized_shape) -> the same shape.

    weight (*normalized_shape) starts at ones, bias at zeros; ``elementwise_affine=False`` has
    neither, ``bias=False`` only the weight (as in PyTorch >= 2.1).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        if hasattr(normalized_shape, "__index__"):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)):
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a tuple of ints (the "
                            f"trailing axes to normalise), got {normalized_shape!r}.")
        for n in normalized_shape:
            check_sizes("LayerNorm", normalized_shape=n)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = empty_parameter(self.normalized_shape, dtype, device)
            if bias:
                self.bias = empty_parameter(self.normalized_shape, dtype, device)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
