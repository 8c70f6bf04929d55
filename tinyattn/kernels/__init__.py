"""Fast paths for a few ops, chosen by one switch; each registered against the op's reference math.

The reference (whole-array xp) forward and backward of an op live in the op's own file, e.g.
``ops/softmax.py`` defines ``softmax_forward`` and registers it with
``@register_kernel("softmax_forward", "numpy")``. A faster version registers under the same name for
its provider (``numba.py`` files here: "numba"; ``cupy_gpu.py``: "cupy"), and the op asks
``kernels.get("softmax_forward", x)`` at run time instead of importing any one of them. The registry
is keyed by name so that neither side imports the other: ops import only this small module, the
compiled files never import an op, and no import cycle can form. ``use("numba")`` (the default where
Numba is installed) or ``use("numpy")`` picks the provider for CPU arrays; CuPy arrays always get the
CuPy (else the reference) implementation. The twin tests compare every registered kernel with the
op's reference. Both sides are loaded on first use (``get``), after the ops exist.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..backend import get_array_module

_KERNELS: dict[str, dict[str, object]] = {}
_FLOAT16 = np.dtype(np.float16)
_choice = "numba"


def register_kernel(name: str, provider: str):
    """Decorator: ``fn`` implements kernel ``name`` for ``provider`` ('numpy' = the op's reference,
    'numba' | 'cupy' = a fast version that must agree with it)."""
    def deco(fn):
        _KERNELS.setdefault(name, {})[provider] = fn
        return fn
    return deco


def use(provider: str) -> None:
    """Select the CPU provider for every kernel: 'numba' (compiled) or 'numpy' (plain twin)."""
    global _choice
    if provider not in ("numba", "numpy"):
        raise ValueError(f"kernels.use: unknown provider {provider!r}; choose 'numba' or 'numpy'.")
    _choice = provider


def current() -> str:
    _load()
    return _choice


@contextlib.contextmanager
def using(provider: str):
    """Temporarily select a provider (for tests and benchmarks)."""
    prev = _choice
    use(provider)
    try:
        yield
    finally:
        use(prev)


def get(name: str, *arrays):
    """The implementation of kernel ``name`` for the given arrays under the current choice."""
    _load()
    impls = _KERNELS.get(name)
    if impls is None:
        raise KeyError(f"kernels.get: no kernel named {name!r}; known: {sorted(_KERNELS)}")
    if arrays and get_array_module(*arrays).__name__ == "cupy":
        _load_gpu_kernels()
        return impls.get("cupy", impls["numpy"])
    if _choice == "numba":
        for a in arrays:
            if getattr(a, "dtype", None) == _FLOAT16:
                return impls["numpy"]    # compiled kernels are typed for float32/float64 only
    return impls.get(_choice, impls["numpy"])


def implementation(name: str, provider: str):
    """Kernel ``name`` as ``provider`` ('numpy' = the op's reference, 'numba', 'cupy') wrote it,
    whatever the current choice (for the twin tests)."""
    _load()
    return _KERNELS[name][provider]


def available(name: str) -> list[str]:
    _load()
    return sorted(_KERNELS.get(name, {}))


def names() -> list[str]:
    _load()
    return sorted(_KERNELS)


# The ops whose reference math registers here, and the fast providers. Loaded on first use, not
# at import: the op files import this module (for register_kernel and get), so importing them from
# here at import time would be a cycle.
_REFERENCE_OPS = ("softmax", "layernorm", "cross_entropy", "embedding", "lstm",
                  "memory_efficient_attention", "elementwise")
_loaded = False
_gpu_loaded = False


def _load():
    global _loaded, _choice
    if _loaded:
        return
    _loaded = True
    import importlib  # noqa: PLC0415

    for op in _REFERENCE_OPS:
        importlib.import_module(f"tinyattn.ops.{op}")
    try:  # the compiled fast paths, where Numba is installed
        from . import numba  # noqa: F401,PLC0415 - kernels/numba/: one file per op
    except ImportError:  # pragma: no cover
        _choice = "numpy"


def _load_gpu_kernels():
    """Import the GPU fast paths once, where CuPy is installed (they compile on first use, on the
    GPU)."""
    global _gpu_loaded
    _load()
    if not _gpu_loaded:
        _gpu_loaded = True
        try:
            from . import cupy_gpu  # noqa: F401,PLC0415
        except Exception:  # pragma: no cover - no CuPy here, or one that cannot load its CUDA libraries
            pass
