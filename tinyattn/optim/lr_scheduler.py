"""Learning-rate schedules: LambdaLR (any function of the step), StepLR, CosineAnnealingLR and
NoamLR (the Transformer's warm-up), with PyTorch's protocol: build after the optimiser, call
``scheduler.step()`` after each ``optimizer.step()``; ``state_dict()`` / ``load_state_dict()`` to resume.
"""
from __future__ import annotations

import math


class LRScheduler:
    """Base class of the schedules, with PyTorch's protocol: building one records each group's
    ``initial_lr`` and sets the lr of step t = 0 (``last_epoch`` = 0), so the first optimiser step
    already uses it; each ``step()`` advances t and sets every group's lr to ``get_lr()``.
    Pass ``last_epoch`` = the last step taken to resume (after loading the optimiser's state)."""

    _not_state = ("optimizer",)       # what state_dict leaves out

    def __init__(self, optimizer, last_epoch=-1):
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
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self):
        """Advance one step and set every group's lr."""
        self._step_count += 1
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self):
        """The lr of each group set by the last step."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimiser (and functions, which are not data: rebuild them)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k not in self._not_state}

    def load_state_dict(self, state_dict):
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, (list, tuple)) else v)


class LambdaLR(LRScheduler):
    """lr of group i at step t = base_lr_i · lr_lambda(t), t = 0, 1, 2, ... (``last_epoch``).
    ``lr_lambda`` may be one function or one per parameter group."""

    _not_state = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            if len(lr_lambda) != n:
                raise ValueError(f"{type(self).__name__}: {len(lr_lambda)} lr_lambdas for "
                                 f"{n} parameter groups.")
            self.lr_lambdas = list(lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """Multiply every group's lr by ``gamma`` each ``step_size`` steps:
    lr_t = base_lr · gamma^⌊t / step_size⌋ (applied to the current lr, so changes made to a
    group's lr in between are kept, as in PyTorch)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int (steps between decays), "
                             f"got {step_size!r}.")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        decay = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
        return [g["lr"] * self.gamma if decay else g["lr"] for g in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from base_lr down to ``eta_min`` over ``T_max`` steps (SGDR without
    restarts, Loshchilov & Hutter 2017): lr_t = eta_min + (base_lr - eta_min)(1 + cos(π t/T_max))/2,
    then back up again past T_max.

    Like PyTorch, each step rescales the current lr by the ratio of consecutive cosine values
    rather than evaluating the formula, so the numbers are PyTorch's to the last bit and a lr
    changed by hand in between is carried along."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max (the number of steps of the half cosine) "
                             f"must be > 0, got {T_max!r}.")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _closed_form(self, base):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch
                                                                     / self.T_max)) / 2

    def get_lr(self):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if t == 0:
            return [g["lr"] for g in groups]
        if self._step_count == 1:                  # resumed at t > 0: nothing to rescale yet
            return [self._closed_form(base) for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:             # the cosine's minimum: the ratio is 0/0
            return [g["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for g, base in zip(groups, self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (g["lr"] - eta_min) + eta_min for g in groups]


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
