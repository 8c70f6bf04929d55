"""One seeded random generator per backend, set by ``tinyattn.manual_seed``.

Everything random in tinyattn (factories, initialisation, dropout, sampling) draws from here, so a
seed makes a whole run reproducible.
"""
from __future__ import annotations

import numpy as np

from . import backend

_seed = 0
_generators: dict[str, object] = {}


def manual_seed(seed: int) -> None:
    """Reseed every backend's generator."""
    global _seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def generator():
    """The active backend's generator (numpy.random.Generator or cupy's)."""
    name = backend.get_backend()
    gen = _generators.get(name)
    if gen is None:
        gen = backend.active_module().random.default_rng(_seed)
        _generators[name] = gen
    return gen
