"""Ways to make a tensor: from data, or filled, or random (seeded by ``tinyattn.manual_seed``).

PyTorch's signatures: every function takes ``dtype=`` (a tinyattn/NumPy dtype or its name) and
``device=`` ('cpu', 'cuda' or a ``tinyattn.device``); the random ones take ``generator=``.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd.tensor import Tensor, as_array, get_default_dtype, resolve_dtype
from .random import default_generator


def _dtype(dtype, who="tensor"):
    return get_default_dtype() if dtype is None else resolve_dtype(dtype, who)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(shape)
    if not all(hasattr(n, "__index__") and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"a tensor's shape must be whole numbers >= 0, got {shape}; e.g. "
                         f"randn(2, 3) or zeros((2, 3)).")
    return shape


def _module(device, who):
    """The array module for ``device`` (None: the active backend's)."""
    if device is None:
        return backend.active_module()
    name = backend.device_backend(device)
    if name is None:
        raise ValueError(f"{who}(device={device!r}): unknown device; use 'cpu' or 'cuda' "
                         f"(or tinyattn.device('cpu')).")
    if name == "cupy" and not backend.cupy_available():
        raise RuntimeError(f"{who}(device={device!r}): CUDA is not available here (no working "
                           f"CuPy); use device='cpu' (tinyattn.cuda.is_available() tells).")
    return np if name == "numpy" else backend._import_cupy()


def _made(arr, device, requires_grad):
    """A new leaf from a freshly made array, on ``device``."""
    if device is not None:
        _module(device, "tensor")
        arr = backend.to_backend(arr, backend.device_backend(device))
    return Tensor._output(arr, None, 0).requires_grad_(requires_grad)


def _rng(generator):
    return (generator or default_generator).backend_rng()


# ---------------------------------------------------------------------- from data

def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor from a list, number, array or tensor (data is copied).
    Python floats become float32 unless ``dtype`` says otherwise, Python ints int64 (as in
    PyTorch); NumPy arrays keep their dtype."""
    if dtype is not None:
        dtype = resolve_dtype(dtype, "tensor")
    if isinstance(data, Tensor):
        data = data.array
    if isinstance(data, np.generic):       # a NumPy scalar keeps its dtype, like an array
        data = np.asarray(data)
    if backend.is_array(data):
        arr = backend.to_backend(data).astype(dtype or data.dtype, copy=True)
    else:
        arr = as_array(data, dtype)
        if not backend.is_array(arr):      # a Python number
            arr = backend.active_module().asarray(arr, dtype=dtype)
            if dtype is None and arr.dtype == np.float64:
                arr = arr.astype(get_default_dtype())
        elif arr is data:                  # never share memory with the caller's data
            arr = arr.copy()
    if device is not None:
        _module(device, "tensor")            # a clear error for an unknown or missing device
        arr = backend.to_backend(arr, backend.device_backend(device))
    return Tensor._output(arr, None, 0).requires_grad_(requires_grad) if device is not None \
        else Tensor(arr, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but a Tensor or array already of that dtype and device is used as it is
    (no copy)."""
    if isinstance(data, Tensor):
        same = (dtype is None or data.dtype == resolve_dtype(dtype, "as_tensor")) and \
            (device is None or backend.device_backend(device) == backend.device_backend(data.device))
        return data if same else data.to(device or data.device).to(dtype or data.dtype)
    if isinstance(data, np.ndarray) and device in (None, "cpu") and \
            (dtype is None or data.dtype == resolve_dtype(dtype, "as_tensor")) and \
            backend.get_backend() == "numpy":
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(ndarray):
    """A CPU tensor that shares memory with ``ndarray`` (changes to one show in the other)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}; "
                        f"use tinyattn.tensor(data) for lists and numbers.")
    resolve_dtype(ndarray.dtype, "from_numpy")
    return Tensor._output(ndarray, None, 0)


# ---------------------------------------------------------------------- filled

def empty(*size, dtype=None, device=None, requires_grad=False):
    xp = _module(device, "empty")
    return _made(xp.empty(_shape(size), dtype=_dtype(dtype, "empty")), None, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    xp = _module(device, "zeros")
    return _made(xp.zeros(_shape(size), dtype=_dtype(dtype, "zeros")), None, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    xp = _module(device, "ones")
    return _made(xp.ones(_shape(size), dtype=_dtype(dtype, "ones")), None, requires_grad)


def _fill_dtype(fill_value, dtype):
    """full()'s dtype: PyTorch infers it from the value (bool, int64, else the default float)."""
    if dtype is not None:
        return resolve_dtype(dtype, "full")
    if isinstance(fill_value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(fill_value, (int, np.integer)):
        return np.dtype(np.int64)
    return get_default_dtype()


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    xp = _module(device, "full")
    return _made(xp.full(_shape(size), fill_value, dtype=_fill_dtype(fill_value, dtype)), None,
                 requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    xp = _module(device, "eye")
    return _made(xp.eye(n, n if m is None else m, dtype=_dtype(dtype, "eye")), None, requires_grad)


def arange(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Evenly spaced values in [start, end); all-integer arguments give int64, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be 0.")
    if dtype is None and all(isinstance(v, (int, np.integer)) for v in (start, end, step)):
        dtype = np.int64
    xp = _module(device, "arange")
    return _made(xp.arange(start, end, step, dtype=_dtype(dtype, "arange")), None, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    xp = _module(device, "linspace")
    return _made(xp.linspace(start, end, int(steps)).astype(_dtype(dtype, "linspace")), None,
                 requires_grad)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors; indexing='ij' (matrix, PyTorch's default) or 'xy'."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}.")
    from .ops.shape import BroadcastTo, Reshape
    # Each grid is its vector reshaped to one non-1 axis and broadcast: differentiable, no copy.
    n = len(tensors)
    sizes = [t.shape[0] for t in tensors]
    axes = list(range(n))
    if indexing == "xy" and n >= 2:
        axes[0], axes[1] = 1, 0
    shape = [0] * n
    for i, a in enumerate(axes):
        shape[a] = sizes[i]
    out = []
    for i, t in enumerate(tensors):
        view = [1] * n
        view[axes[i]] = sizes[i]
        out.append(BroadcastTo.apply(Reshape.apply(t, shape=tuple(view)), shape=tuple(shape)))
    return tuple(out)


# ---------------------------------------------------------------------- *_like

def _like(t, dtype, device):
    return (t.dtype if dtype is None else dtype), (device or t.device)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return empty(input.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return zeros(input.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return ones(input.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return full(input.shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False, generator=None):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return rand(input.shape, dtype=dt, device=dev, requires_grad=requires_grad, generator=generator)


def randn_like(input, *, dtype=None, device=None, requires_grad=False, generator=None):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    return randn(input.shape, dtype=dt, device=dev, requires_grad=requires_grad, generator=generator)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, generator=None):  # noqa: A002
    dt, dev = _like(input, dtype, device)
    out = randint(low, high, input.shape, device=dev, generator=generator)
    return out if out.dtype == resolve_dtype(dt, "randint_like") else out.astype(dt)


# ---------------------------------------------------------------------- random

def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal samples."""
    arr = _rng(generator).standard_normal(_shape(size)).astype(_dtype(dtype, "randn"))
    return _made(arr, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Uniform samples in [0, 1)."""
    arr = _rng(generator).random(_shape(size)).astype(_dtype(dtype, "rand"))
    return _made(arr, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, generator=None):
    """Integers drawn uniformly from [low, high) (randint(high, size) draws from [0, high)),
    int64 unless ``dtype`` says otherwise."""
    if size is None:                         # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        raise TypeError("randint: give (low, high, size) or (high, size), e.g. randint(0, 10, (3,)).")
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    if not low < high:
        raise ValueError(f"randint: low must be < high (draws lie in [low, high)), got low={low}, "
                         f"high={high}.")
    arr = _rng(generator).integers(low, high, size=size).astype(
        np.int64 if dtype is None else resolve_dtype(dtype, "randint"))
    return _made(arr, device, False)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None):
    """Normal samples: normal(mean, std, size) with numbers, or mean/std tensors (broadcast)."""
    m, s = as_array(mean), as_array(std)
    if size is None:
        size = np.broadcast_shapes(tuple(getattr(m, "shape", ())), tuple(getattr(s, "shape", ())))
    arr = _rng(generator).standard_normal(tuple(size)) * s + m
    return _made(backend.active_module().asarray(arr).astype(_dtype(dtype, "normal")), device, False)


def randperm(n, *, generator=None, dtype=None, device=None):
    """A random permutation of 0 .. n-1 (int64)."""
    arr = _rng(generator).permutation(int(n)).astype(
        np.int64 if dtype is None else resolve_dtype(dtype, "randperm"))
    return _made(arr, device, False)


def multinomial(input, num_samples, replacement=False, *, generator=None):  # noqa: A002
    """Indices drawn from each row of ``input`` (non-negative weights, not necessarily summing
    to 1): with replacement independent draws; without, distinct indices (so num_samples may not
    exceed the non-zero weights of a row). int64, shape (rows, num_samples) or (num_samples,)."""
    w = backend.to_numpy(input.array if isinstance(input, Tensor) else np.asarray(input))
    w = w.astype(np.float64)
    if w.ndim not in (1, 2) or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"multinomial: input must be a 1-D or 2-D tensor of finite weights >= 0, "
                         f"got shape {w.shape}.")
    rows = w.reshape(-1, w.shape[-1])
    if not replacement and (np.count_nonzero(rows, axis=1) < num_samples).any():
        raise ValueError(f"multinomial: without replacement each row needs at least num_samples="
                         f"{num_samples} non-zero weights; pass replacement=True or draw fewer.")
    if (rows.sum(axis=1) <= 0).any():
        raise ValueError("multinomial: every row needs a positive total weight.")
    rng = (generator or default_generator).backend_rng("numpy")
    picks = np.stack([rng.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum())
                      for r in rows]).astype(np.int64)
    return _made(picks.reshape(w.shape[:-1] + (num_samples,)), input.device if isinstance(
        input, Tensor) else None, False)
