"""Learning-rate schedules: LambdaLR (any function of the step) and NoamLR (the Transformer's
warm-up), with PyTorch's protocol: build after the optimiser, call ``scheduler.step()`` after each
``optimizer.step()``; ``state_dict()`` / ``load_state_dict()`` to resume.
"""
from __future__ import annotations

import math


class LambdaLR:
    """lr of group i at step t = base_lr_i · lr_lambda(t), t = 0, 1, 2, ... (``last_epoch``).

    Building it sets the lr for t = 0 (as PyTorch does), so the first optimiser step already uses
    the scheduled value. ``lr_lambda`` may be one function or one per parameter group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if last_epoch == -1:
            for g in groups:
                g.setdefault("initial_lr", g["lr"])
        elif any("initial_lr" not in g for g in groups):
            raise KeyError(f"{type(self).__name__}: last_epoch={last_epoch} resumes a schedule, "
                           f"but the optimiser's groups have no 'initial_lr'; load the "
                           f"optimiser's state dict first.")
        self.base_lrs = [g["initial_lr"] for g in groups]
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * len(groups)
        else:
            if len(lr_lambda) != len(groups):
                raise ValueError(f"{type(self).__name__}: {len(lr_lambda)} lr_lambdas for "
                                 f"{len(groups)} parameter groups.")
            self.lr_lambdas = list(lr_lambda)
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]

    def step(self):
        """Advance one step and set every group's lr."""
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimiser and the lambdas (functions are not data: rebuild them)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict):
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, (list, tuple)) else v)


def noam_factor(d_model, warmup_steps):
    """f(t) = d_model^-0.5 · min(s^-0.5, s · warmup^-1.5) with s = t + 1 (the paper counts steps
    from 1): a linear rise for ``warmup_steps`` steps, then decay as 1/√s ("Attention Is All You
    Need", §5.3)."""
    if d_model <= 0 or warmup_steps <= 0:
        raise ValueError(f"noam: d_model and warmup_steps must be positive, got {d_model}, "
                         f"{warmup_steps}.")
    scale = d_model ** -0.5

    def factor(t):
        s = t + 1
        return scale * min(s ** -0.5, s * warmup_steps ** -1.5)
    return factor


class NoamLR(LambdaLR):
    """The Transformer's schedule: lr = base_lr · d_model^-0.5 · min(s^-0.5, s · warmup^-1.5) at
    update s = 1, 2, ...; peaks at s = warmup_steps. Use base lr = 1 (or a small factor such as 2)
    to get the paper's values."""

    def __init__(self, optimizer, d_model, warmup_steps=4000, last_epoch=-1):
        self.d_model, self.warmup_steps = d_model, warmup_steps
        super().__init__(optimizer, noam_factor(d_model, warmup_steps), last_epoch)


def peak_noam_lr(d_model, warmup_steps):
    """The highest learning rate of NoamLR with base lr 1 (reached at step warmup_steps)."""
    return d_model ** -0.5 * warmup_steps ** -0.5 if warmup_steps > 0 else math.inf
