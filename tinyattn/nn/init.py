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
from ..backend import get_array_module
from ..random import default_generator


def _fill(tensor, values):
    with no_grad():
        tensor.array[...] = values.astype(tensor.dtype, copy=False)
        tensor._version += 1
    return tensor


def _stream(generator):
    """The random stream to draw from: ``generator``'s (a tinyattn.Generator) or the default."""
    return (default_generator if generator is None else generator).backend_rng()


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Samples from U(a, b)."""
    return _fill(tensor, _stream(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Samples from N(mean, std²)."""
    # mean + std·z rather than Generator.normal: CuPy's Generator has standard_normal but no normal
    # (the numbers are the same as NumPy's normal(mean, std) to the last bit)
    return _fill(tensor, mean + std * _stream(generator).standard_normal(tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Samples from N(mean, std²) restricted to [a, b] (values outside are redrawn). Note that a
    and b are absolute bounds, not multiples of std, as in PyTorch."""
    def cdf(v):
        return 0.5 * (1 + math.erf((v - mean) / (std * math.sqrt(2))))
    if not a < b or not std > 0:
        raise ValueError(f"trunc_normal_: need a < b and std > 0, got a={a}, b={b}, std={std}.")
    if cdf(b) - cdf(a) < 1e-4:        # redrawing would take thousands of rounds
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds less than 0.01% of "
                         f"N({mean}, {std}²); put the bounds near the mean (a few std).")
    rng = _stream(generator)
    values = mean + std * rng.standard_normal(tensor.shape)
    outside = (values < a) | (values > b)
    while bool(outside.any()):
        values[outside] = mean + std * rng.standard_normal(int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


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


_UNIT_GAIN = ("linear", "sigmoid", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table): 1 for linear/conv/sigmoid,
    5/3 for tanh, √2 for relu, √(2 / (1 + slope²)) for leaky_relu (slope ``param``, default
    0.01), 3/4 for selu."""
    if nonlinearity in _UNIT_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number.")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; choose one of "
                     f"{(*_UNIT_GAIN, 'tanh', 'relu', 'leaky_relu', 'selu')}.")


def _fan(tensor, mode, where):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{where}: mode must be 'fan_in' or 'fan_out', got {mode!r}.")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015). With a = sqrt(5)
    (Linear's default) this is bound = 1 / sqrt(fan_in)."""
    if tensor.numel() == 0:                 # Linear(0, n): nothing to fill, and fan_in = 0
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _fan(tensor, mode, "kaiming_uniform_")
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std²) with std = gain / sqrt(fan) (He et al., 2015)."""
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _fan(tensor, mode, "kaiming_normal_")
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2013): the Q of a Gaussian
    matrix's QR decomposition, signs fixed by R's diagonal so that Q is uniformly distributed.
    Axes after the first are flattened: rows = shape[0]."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: need a tensor with at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}.")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    xp = get_array_module(tensor.array)
    flat = _stream(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T                      # QR of the tall side: then Q's columns are orthonormal
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diagonal(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
