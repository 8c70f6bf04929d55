"""Initialisers, as ``torch.nn.init`` names and defines them, drawing from ``tinyattn.random``.

Each fills a tensor in place (under no_grad) and returns it. The layers call these in
``reset_parameters`` with exactly PyTorch's choices, so ``manual_seed`` makes a model reproducible
and its initial weights follow the same distributions as PyTorch's (not the same numbers: the two
libraries have different random generators).
"""
from __future__ import annotations

import math
import warnings

from ..autograd.function import no_grad
from ..random import generator


def _fill(tensor, values):
    with no_grad():
        tensor.data[...] = values.astype(tensor.dtype, copy=False)
        tensor._version += 1
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Samples from U(a, b)."""
    return _fill(tensor, generator().uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Samples from N(mean, std²)."""
    # mean + std·z rather than Generator.normal: CuPy's Generator has standard_normal but no normal
    # (the numbers are the same as NumPy's normal(mean, std) to the last bit)
    return _fill(tensor, mean + std * generator().standard_normal(tensor.shape))


def constant_(tensor, value):
    """Every element = value."""
    with no_grad():
        return tensor.fill_(value)


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight laid out (out, in, *receptive field), as PyTorch computes it."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in/out: need a tensor with at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}.")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan). With a = sqrt(5) (Linear's default)
    this is bound = 1 / sqrt(fan_in)."""
    if tensor.size == 0:                 # Linear(0, n): nothing to fill, and fan_in = 0
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
