"""LazyLinear: a Linear layer whose in_features is read from the first input it sees."""
from __future__ import annotations

from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from .linear import Linear
from .module import check_sizes, empty_parameter


@register_op("nn.LazyLinear")
class LazyLinear(Linear):
    """``LazyLinear(out_features)``: the weight (out_features, in_features) is created and
    initialised (as Linear's) at the first call, from the input's last axis. Until then it has
    no parameters to give an optimiser, so run one batch through the model before building the
    optimiser (as in PyTorch, where they are placeholders until then)."""

    def __init__(self, out_features, bias=True, device=None, dtype=None):
        check_sizes("LazyLinear", out_features=out_features)
        super().__init__(0, out_features, bias=False, device=device, dtype=dtype)
        self._want_bias, self._factory = bias, (device, dtype)
        self.register_parameter("weight", None)

    def has_uninitialized_params(self):
        return self.weight is None

    def reset_parameters(self):
        if self.in_features:        # not before the first call: there is no weight to fill yet
            super().reset_parameters()

    def forward(self, input):
        if self.weight is None:
            x = input if isinstance(input, Tensor) else Tensor(input)
            if x.ndim == 0:
                raise ValueError("LazyLinear: the input must have at least one axis (the "
                                 "features), got a scalar.")
            device, dtype = self._factory
            self.in_features = int(x.shape[-1])
            self.weight = empty_parameter((self.out_features, self.in_features), dtype, device)
            if self._want_bias:
                self.bias = empty_parameter((self.out_features,), dtype, device)
            self.reset_parameters()
        return super().forward(input)
