"""Shared pieces for gradient-check cases.

Every file ``tests/gradcases_*.py`` defines ``CASES``: a list of ``GradCase``. ``op`` is the name the
op is registered under (``tinyattn.registered_ops()``); ``test_gradcheck_registry.py`` runs every
case through ``tinyattn.gradcheck`` in float64 and fails for any registered op without a case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tinyattn as ta


@dataclass
class GradCase:
    op: str                      # registered op name this case covers
    fn: Callable                 # fn(*inputs) -> Tensor (or tuple of Tensors)
    inputs: Callable             # () -> list of inputs (float64 Tensors with requires_grad, arrays)
    label: str = ""              # what is special about this case (broadcast, reused input, ...)
    kwargs: dict = field(default_factory=dict)   # extra gradcheck tolerances

    @property
    def id(self):
        return f"{self.op}[{self.label}]" if self.label else self.op


def rnd(*shape, lo=-1.0, hi=1.0, seed=0, grad=True, away_from=None, gap=0.1):
    """A float64 tensor of uniform values; ``away_from`` keeps values at least ``gap`` from a kink."""
    rng = np.random.default_rng(seed + 7919 * len(shape) + sum(shape))
    a = rng.uniform(lo, hi, shape)
    if away_from is not None:
        near = np.abs(a - away_from) < gap
        a[near] = away_from + np.sign(a[near] - away_from + 1e-12) * (gap + rng.uniform(0, gap, near.sum()))
    return ta.tensor(a, requires_grad=grad, dtype="float64")
