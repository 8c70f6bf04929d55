"""Seeded random generators: ``tinyattn.Generator`` objects and the default one, which
``tinyattn.manual_seed`` reseeds (and returns, as PyTorch's does).

Everything random in tinyattn (factories, initialisation, dropout, sampling) draws from the default
generator, so a seed makes a whole run reproducible; a DataLoader or random_split may be given its
own ``generator=`` so that its order does not depend on how many numbers the model drew.
Each Generator keeps one NumPy (or CuPy) generator per backend, created from its seed on first use.
The streams are NumPy's, not PyTorch's: the same seed gives other numbers than in PyTorch.
"""
from __future__ import annotations

import secrets

import numpy as np

from . import backend

_DEFAULT_SEED = 0                      # the default generator's seed until manual_seed is called
_NEW_GENERATOR_SEED = 67280421310721   # what a fresh torch.Generator() reports as initial_seed()
_generators: dict[str, object] = {}    # the default generator's per-backend generators


def _check_seed(where, seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative int, got {seed!r}")
    return int(seed)


class Generator:
    """A random stream of its own: ``g = tinyattn.Generator().manual_seed(42)``, then pass
    ``generator=g`` to DataLoader, RandomSampler or random_split."""

    def __init__(self, device="cpu"):
        self.device = device
        self._rngs: dict[str, object] = {}
        self._initial_seed = _NEW_GENERATOR_SEED

    def _backend_rngs(self):
        return self._rngs

    def manual_seed(self, seed):
        """Restart the stream from ``seed``; returns the generator itself (so it chains)."""
        self._initial_seed = _check_seed("Generator.manual_seed", seed)
        self._backend_rngs().clear()
        return self

    def seed(self):
        """Reseed from the operating system's entropy; returns the new seed."""
        self.manual_seed(secrets.randbits(63))
        return self._initial_seed

    def initial_seed(self):
        """The seed the stream last started from."""
        return self._initial_seed

    def backend_rng(self, name=None):
        """The numpy.random.Generator (``name='numpy'``) or CuPy's (``'cupy'``) behind this
        stream; the active backend's when ``name`` is None."""
        name = backend.get_backend() if name is None else name
        rngs = self._backend_rngs()
        rng = rngs.get(name)
        if rng is None:
            module = np if name == "numpy" else backend.active_module()
            rng = module.random.default_rng(self._initial_seed)
            rngs[name] = rng
        return rng

    def __repr__(self):
        return f"<tinyattn.Generator seed={self._initial_seed}>"


class _DefaultGenerator(Generator):
    def _backend_rngs(self):
        return _generators      # read at call time: the CuPy tests swap in a fresh dict


default_generator = _DefaultGenerator()
default_generator._initial_seed = _DEFAULT_SEED


def manual_seed(seed: int) -> Generator:
    """Reseed the default generator (every backend's stream); returns it, as torch.manual_seed."""
    return default_generator.manual_seed(_check_seed("manual_seed", seed))


def initial_seed() -> int:
    return default_generator.initial_seed()


def generator():
    """The default generator's stream on the active backend (numpy.random.Generator or CuPy's)."""
    return default_generator.backend_rng()
