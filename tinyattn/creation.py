"""Ways to make a tensor: from data, or filled, or random (seeded by ``tinyattn.manual_seed``)."""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd.tensor import Tensor, as_array, get_default_dtype
from .random import generator


def _dtype(dtype):
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(shape)
    if not all(hasattr(n, "__index__") and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"a tensor's shape must be whole numbers >= 0, got {shape}; e.g. "
                         f"randn(2, 3) or zeros((2, 3)).")
    return shape


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf tensor from a list, number, array or tensor (data is copied).
    Python floats become float32 unless ``dtype`` says otherwise; NumPy arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
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
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad=False):
    return Tensor(backend.active_module().zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    return Tensor(backend.active_module().ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape, fill_value, dtype=None, requires_grad=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor(backend.active_module().full(shape, fill_value, dtype=_dtype(dtype)), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None):
    """Like NumPy's arange; integer arguments give an int64 tensor, as in PyTorch."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be 0.")
    xp = backend.active_module()
    if dtype is None and all(isinstance(v, (int, np.integer)) for v in (start, stop, step)):
        dtype = np.int64
    return Tensor(xp.arange(start, stop, step, dtype=_dtype(dtype)))


def randn(*shape, dtype=None, requires_grad=False):
    """Standard normal samples."""
    arr = generator().standard_normal(_shape(shape)).astype(_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    arr = generator().random(_shape(shape)).astype(_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def randint(low, high, shape):
    """Integers drawn uniformly from [low, high), as an int64 tensor."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not low < high:
        raise ValueError(f"randint: low must be < high (draws lie in [low, high)), got low={low}, "
                         f"high={high}.")
    return Tensor(generator().integers(low, high, size=shape).astype(np.int64))
