"""SGD with momentum, Nesterov momentum and (L2) weight decay, step for step as torch.optim.SGD.

    g ← ∇ + λ θ                                (weight_decay λ)
    b ← g at the first step, then μ b + (1 - τ) g    (momentum μ, dampening τ)
    g ← g + μ b if nesterov else b
    θ ← θ - lr g
"""
from __future__ import annotations

import math

from .optimizer import Optimizer


class SGD(Optimizer):
    hyperparameters = {"lr": (0.0, None), "momentum": (0.0, None), "dampening": (-math.inf, None),
                       "weight_decay": (0.0, None)}

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        self._check_hyperparameters(defaults)       # numbers before they are compared
        if nesterov and (defaults["momentum"] <= 0 or defaults["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0.")
        super().__init__(params, defaults)

    def _update(self, p, grad, state, group):
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.array
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            state["momentum_buffer"] = buf
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.array -= group["lr"] * grad
