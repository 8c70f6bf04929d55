"""Gradient clipping: rescale all gradients together when their joint norm is too large."""
from __future__ import annotations

import math

from ..autograd.tensor import Tensor
from ..backend import active_module, get_array_module
from .grads import grad_array, set_grad_array


def _parameter_list(parameters):
    """One Tensor, or any iterable of them (often a generator: model.parameters()), as a list,
    so that the norm and the scaling below walk the same parameters."""
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the
    norm of all gradients concatenated (as torch.nn.utils.clip_grad_norm_). Returns total_norm as
    a 0-d Tensor. ``norm_type`` may be a number or ``inf``."""
    if not max_norm >= 0:                 # also refuses nan
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0 (the largest norm the gradients "
                         f"may keep), got {max_norm}; a negative one would flip every gradient.")
    parameters = _parameter_list(parameters)
    grads = [grad_array(p) for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(active_module().asarray(0.0, dtype="float32"))
    xp = get_array_module(grads[0])
    norm_type = float(norm_type)
    if norm_type == math.inf:
        norms = xp.stack([xp.abs(g).max() for g in grads])
        total = norms.max()
    else:
        norms = xp.stack([(xp.abs(g) ** norm_type).sum() ** (1.0 / norm_type) for g in grads])
        total = (norms ** norm_type).sum() ** (1.0 / norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {float(total)}; "
                           f"a loss or gradient is nan/inf. Set error_if_nonfinite=False to clip "
                           f"anyway.")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for p in parameters:
        g = grad_array(p)
        if g is not None:           # a new array: the old one may be shared with another graph
            set_grad_array(p, g * coef.astype(g.dtype))
    return Tensor(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value]."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0 (gradients are clamped to "
                         f"[-clip_value, clip_value]), got {clip_value}.")
    for p in _parameter_list(parameters):
        g = grad_array(p)
        if g is not None:
            set_grad_array(p, get_array_module(g).clip(g, -clip_value, clip_value))
