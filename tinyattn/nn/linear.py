"""Linear: y = x Wᵀ + b, with PyTorch's parameter layout and initialisation."""
from __future__ import annotations

import math

from .. import functional as F
from ..autograd.registry import register_op
from .module import Module, check_sizes, empty_parameter
from . import init


@register_op("nn.Linear")
class Linear(Module):
    """x (..., in_features) -> (..., out_features).

    weight: (out_features, in_features); bias: (out_features,). Both start U(-1/√in, 1/√in), as in
    PyTorch (kaiming_uniform with a = √5 for the weight).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        check_sizes("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = empty_parameter((self.out_features, self.in_features), dtype, device)
        if bias:
            self.bias = empty_parameter((self.out_features,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
