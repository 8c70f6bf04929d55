"""Identity, Flatten and Unflatten: the layers that only pass a tensor on or reshape it."""
from __future__ import annotations

from .. import ops
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from .module import Module


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


@register_op("nn.Identity")
class Identity(Module):
    """Returns its input unchanged; any constructor arguments are ignored (as PyTorch), so it can
    stand in for a layer that a configuration switches off."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


@register_op("nn.Flatten")
class Flatten(Module):
    """Merge axes start_dim..end_dim into one: (N, C, H, W) -> (N, C·H·W) with the defaults (the
    batch axis 0 is kept)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        x = _as_tensor(input)
        for d in (self.start_dim, self.end_dim):
            if not -max(x.ndim, 1) <= d < max(x.ndim, 1):
                raise IndexError(f"Flatten: dimension {d} is out of range for an input of shape "
                                 f"{tuple(x.shape)} (start_dim={self.start_dim}, "
                                 f"end_dim={self.end_dim}).")
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


@register_op("nn.Unflatten")
class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``: Unflatten(1, (2, 5)) maps (N, 10) to
    (N, 2, 5). One entry of the size may be -1."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        x = _as_tensor(input)
        if not -x.ndim <= self.dim < x.ndim:
            raise IndexError(f"Unflatten: dim {self.dim} is out of range for an input of shape "
                             f"{tuple(x.shape)}.")
        d = self.dim % x.ndim
        return x.reshape(*x.shape[:d], *self.unflattened_size, *x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
