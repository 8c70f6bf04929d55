"""Rotary position embedding (RoPE; Su et al., 2021, "RoFormer").

Split the d features of a query or key into d/2 pairs and turn pair m of the vector at position p
by the angle p·θ_m, θ_m = base^(-2m/d). A rotation keeps lengths, and rotating q by p_q·θ and
k by p_k·θ leaves q·k depending on the positions only through p_q - p_k: attention scores become
relative-position aware while q and k are still computed position by position.

Pairing convention: **halves** ("rotate_half"): pair m is (x[m], x[m + d/2]), not the interleaved
(x[2m], x[2m+1]) of the paper's formula. Both are the same rotation up to a fixed permutation of the
features (which a learnt projection absorbs), so neither is more correct; we use halves because it
is what the GPT-NeoX / Llama family and most PyTorch code use, so weights and numbers carry over,
and it needs only two contiguous slices and a cat rather than a strided interleave.

    out[..., :h] = x1·cos - x2·sin,   out[..., h:] = x2·cos + x1·sin,   h = d/2, angle = p·θ_m

Positions are an argument (not 0..T-1 implied) so a KV cache can rotate a new token at its absolute
position. The angles are constants (positions are integers, not learnt), so the op is composed of
differentiable ops (slices, mul, add, cat) and its gradient is theirs.
"""
from __future__ import annotations

import numpy as np

from .. import backend, ops
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, unwrap
from ._checks import as_tensor


def rotary_angles(positions, dim: int, base: float = 10000.0, xp=None):
    """Angles p·θ_m of shape positions.shape + (dim/2,), θ_m = base^(-2m/dim), as a float64 array."""
    xp = backend.active_module() if xp is None else xp
    p = xp.asarray(unwrap(positions))
    inv_freq = base ** (-xp.arange(0, dim, 2, dtype=xp.float64) / dim)     # (dim/2,)
    return p.astype(xp.float64)[..., None] * inv_freq


@register_op("attention.rotary_embedding")
def rotary_embedding(x, positions, base: float = 10000.0):
    """Rotate x (..., T, d) by its positions: (T,) shared by every sequence, or (N, T) per sequence
    for x of shape (N, ..., T, d). d must be even. Returns a Tensor of x's shape and dtype."""
    name = "rotary_embedding"
    x = as_tensor(x, name, "x")
    if x.ndim < 2:
        raise ValueError(f"{name}: x must be laid out as (..., T, d), got shape {tuple(x.shape)}.")
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"{name}: the feature size d={d} must be even (features are rotated in "
                         f"pairs); got x of shape {tuple(x.shape)}.")
    if not (isinstance(base, (int, float)) and not isinstance(base, bool) and base > 0):
        raise ValueError(f"{name}: base must be a positive number, got {base!r}.")
    xp = backend.get_array_module(x.array)
    p = xp.asarray(unwrap(positions))
    if p.dtype.kind not in "iu":
        raise TypeError(f"{name}: positions must be integers (token indices), got dtype {p.dtype}.")
    if p.ndim == 1:
        ok = p.shape[0] == T
    elif p.ndim == 2:
        ok = p.shape[1] == T and x.ndim >= 3 and p.shape[0] in (x.shape[0], 1)
    else:
        ok = False
    if not ok:
        raise ValueError(f"{name}: positions must have shape (T,) = ({T},) or (N, T) = "
                         f"({x.shape[0]}, {T}) for x of shape {tuple(x.shape)}; got "
                         f"{tuple(p.shape)}.")
    angles = rotary_angles(p, d, base, xp)                          # (T, h) or (N, T, h)
    if p.ndim == 2:                                                 # (N, 1, ..., 1, T, h)
        angles = angles.reshape((angles.shape[0],) + (1,) * (x.ndim - 3) + angles.shape[1:])
    cos = Tensor(xp.cos(angles).astype(x.dtype))
    sin = Tensor(xp.sin(angles).astype(x.dtype))
    h = d // 2
    x1, x2 = x[..., :h], x[..., h:]
    return ops.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
