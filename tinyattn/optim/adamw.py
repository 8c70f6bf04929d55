"""AdamW (Loshchilov & Hutter, 2019): Adam with *decoupled* weight decay, as torch.optim.AdamW.

The weights shrink by a factor (1 - lr λ) before the Adam step, instead of λθ being added to the
gradient (where Adam's per-parameter scaling would weaken it for parameters with large gradients).
"""
from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
