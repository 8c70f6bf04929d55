"""Which array library holds the numbers: NumPy on the CPU, CuPy on a GPU.

Op code never imports numpy for array math. It asks the arrays it was given for their module
(``xp = get_array_module(x)``), so the same op runs unchanged on CuPy arrays. This module is the one
place that knows both libraries exist.
"""
from __future__ import annotations

import numpy as np

_ACTIVE = "numpy"   # the backend new tensors are created on
_cupy = None        # the cupy module, once imported successfully


class BackendError(RuntimeError):
    """Raised when a backend is asked for that cannot be used on this machine."""


def _import_cupy():
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as exc:
        raise BackendError(
            "set_backend('cupy'): CuPy is not installed. Install the GPU extra with "
            "`pip install -e \".[gpu]\"` on a machine with an NVIDIA GPU, or stay on "
            "set_backend('numpy')."
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendError(
            f"set_backend('cupy'): CuPy is installed but no usable GPU was found ({exc}). "
            "Use set_backend('numpy') on this machine."
        ) from exc
    if n < 1:
        raise BackendError("set_backend('cupy'): no GPU is visible. Use set_backend('numpy').")
    _cupy = cupy
    return cupy


def cupy_available() -> bool:
    """True if CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
        return True
    except BackendError:
        return False


def set_backend(name: str) -> None:
    """Choose where new tensors live: ``"numpy"`` (CPU) or ``"cupy"`` (GPU)."""
    global _ACTIVE
    if name not in ("numpy", "cupy"):
        raise ValueError(f"set_backend: unknown backend {name!r}; choose 'numpy' or 'cupy'.")
    if name == "cupy":
        _import_cupy()
    _ACTIVE = name


# Every spelling of a device - PyTorch's ('cpu', 'cuda'), the backends' ('numpy', 'cupy') and
# 'gpu' - and the backend it means: the one table of them.
DEVICE_BACKENDS = {"cpu": "numpy", "numpy": "numpy", "cuda": "cupy", "cupy": "cupy", "gpu": "cupy"}


def device_backend(device):
    """The backend ('numpy' or 'cupy') that a device name means ('cuda:0' is 'cuda': one GPU);
    None if it names no device."""
    return DEVICE_BACKENDS.get(device.split(":")[0]) if isinstance(device, str) else None


def device_of(arr) -> str:
    """Where an array lives, in PyTorch's words: 'cpu' (NumPy) or 'cuda' (CuPy)."""
    return "cpu" if isinstance(arr, np.ndarray) else "cuda"


def get_backend() -> str:
    """The name of the active backend, ``"numpy"`` or ``"cupy"``."""
    return _ACTIVE


def active_module():
    """The array module new tensors are created with."""
    return np if _ACTIVE == "numpy" else _import_cupy()


def get_array_module(*xs):
    """The array module (numpy or cupy) that owns the given arrays.

    Like ``cupy.get_array_module``: if any argument is a CuPy array the answer is cupy, else numpy.
    Tensors are looked through to their data.
    """
    if _cupy is not None:
        for x in xs:
            # a Tensor is looked through to its ``.array``
            if isinstance(x, _cupy.ndarray) or isinstance(getattr(x, "array", None), _cupy.ndarray):
                return _cupy
    return np


def is_array(x) -> bool:
    """True for a NumPy or CuPy array."""
    if isinstance(x, np.ndarray):
        return True
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def to_numpy(a) -> np.ndarray:
    """A NumPy copy (or view) of an array from any backend: the one device-to-host transfer."""
    if isinstance(a, np.ndarray):
        return a
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def to_backend(a, name: str | None = None):
    """Move an array to backend ``name`` (default: the active one)."""
    name = name or _ACTIVE
    if name == "numpy":
        return to_numpy(a)
    cp = _import_cupy()
    return cp.asarray(a)


def scatter_add(target, index, values):
    """target[index] += values, accumulating repeated indices (unbuffered), on any backend."""
    xp = get_array_module(target)
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, index, values)
    return target
