"""Fast paths, chosen by one switch, each beside the plain NumPy twin it replaces.

An op that has a fast path asks ``kernels.get("softmax_forward")`` for an implementation instead of
importing one. ``use("numba")`` (the default where Numba is installed) or ``use("numpy")`` picks the
provider for CPU arrays; CuPy arrays always get the CuPy/xp implementation. Every kernel is
registered with its reference (xp) twin, and the tests check that the two agree.
"""
from __future__ import annotations

import contextlib

from ..backend import get_array_module

_KERNELS: dict[str, dict[str, object]] = {}
_choice = "numba"


def register(name: str, provider: str):
    """Decorator: ``fn`` implements kernel ``name`` for ``provider`` ('numpy'|'numba'|'cupy')."""
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
    impls = _KERNELS.get(name)
    if impls is None:
        raise KeyError(f"kernels.get: no kernel named {name!r}; known: {sorted(_KERNELS)}")
    if arrays and get_array_module(*arrays).__name__ == "cupy":
        return impls.get("cupy", impls["numpy"])
    if _choice == "numba" and any(getattr(a, "dtype", None) == "float16" for a in arrays):
        return impls["numpy"]        # compiled kernels are typed for float32/float64 only
    return impls.get(_choice, impls["numpy"])


def available(name: str) -> list[str]:
    return sorted(_KERNELS.get(name, {}))


def names() -> list[str]:
    return sorted(_KERNELS)


from . import reference  # noqa: E402,F401  - registers the plain twins

try:  # the compiled fast paths, where Numba is installed
    from . import numba_cpu  # noqa: E402,F401
except ImportError:  # pragma: no cover
    _choice = "numpy"

try:  # the GPU fast paths, where CuPy is installed (they compile on first use, on the GPU)
    from . import cupy_gpu  # noqa: E402,F401
except Exception:  # pragma: no cover - no CuPy here, or a CuPy that cannot load its CUDA libraries
    pass
