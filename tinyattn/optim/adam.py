"""Adam (Kingma & Ba, 2015), with L2 weight decay and AMSGrad, step for step as torch.optim.Adam.

    g ← ∇ + λ θ                              (weight_decay λ: L2, added to the gradient)
    m ← β1 m + (1 - β1) g                    first moment (running mean of g)
    v ← β2 v + (1 - β2) g²                   second moment (running mean of g²)
    v̂ ← max(v̂, v) if amsgrad else v
    θ ← θ - lr/(1 - β1ᵗ) · m / (√v̂ / √(1 - β2ᵗ) + ε)

The order of the floating-point operations follows PyTorch's implementation, so float32 runs
agree with it to rounding.
"""
from __future__ import annotations

import math

from ..backend import get_array_module
from .optimizer import Optimizer


def _lerp_(start, end, weight):
    """start ← start + weight (end - start), computed as torch.lerp does (two formulas, for
    accuracy on either side of weight = 0.5)."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


class Adam(Optimizer):
    _decoupled = False      # AdamW: decay the weights directly instead of adding λθ to the gradient

    hyperparameters = {"lr": (0.0, None), "betas": (0.0, 1.0), "eps": (0.0, None),
                       "weight_decay": (0.0, None)}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, p, grad, state, group):
        xp = get_array_module(p.array)
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.array)
            state["exp_avg_sq"] = xp.zeros_like(p.array)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.array)
        state["step"] += 1
        step = state["step"]
        if wd:
            if self._decoupled:
                p.array *= 1 - lr * wd
            else:
                grad = grad + wd * p.array
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += ((1 - beta2) * grad) * grad
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        else:
            second = exp_avg_sq
        denom = xp.sqrt(second) / bias_correction2_sqrt + eps
        p.array += (-step_size * exp_avg) / denom
