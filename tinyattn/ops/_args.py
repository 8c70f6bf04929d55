"""PyTorch's argument names beside NumPy's: ``dim``/``axis`` and ``keepdim``/``keepdims``.

Every public function of the PyTorch-style op files takes both spellings and calls ``dims`` once,
so the rule (PyTorch's name first; both given and different is an error) lives in one place.
"""
from __future__ import annotations

import operator

import numpy as np  # identity check only: is like's backend NumPy?

from ..autograd.tensor import Tensor
from ..backend import get_array_module, to_backend


def dims(op, dim=None, axis=None, keepdim=None, keepdims=None, keepdim_default=False):
    """(dim, keepdim) from either spelling; saying both, differently, is a mistake we name."""
    if axis is not None:
        if dim is not None and dim != axis:
            raise TypeError(f"{op}: got dim={dim!r} and axis={axis!r}; they are the same argument "
                            f"(PyTorch's and NumPy's name), give one of them.")
        dim = axis
    if keepdims is not None:
        if keepdim is not None and bool(keepdim) != bool(keepdims):
            raise TypeError(f"{op}: got keepdim={keepdim!r} and keepdims={keepdims!r}; they are "
                            f"the same argument (PyTorch's and NumPy's name), give one of them.")
        keepdim = keepdims
    return dim, (keepdim_default if keepdim is None else bool(keepdim))


def one_dim(op, dim, ndim):
    """A single dim as a non-negative int, checked against ndim (a 0-d tensor accepts 0 and -1,
    as in PyTorch)."""
    try:
        d = operator.index(dim)
    except TypeError:
        raise TypeError(f"{op}: dim must be an int, got {dim!r} ({type(dim).__name__}).") from None
    top = max(ndim, 1)
    if not -top <= d < top:
        raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions "
                         f"(expected a value in [{-top}, {top - 1}]).")
    return d % top


def several_dims(op, dim, ndim):
    """dim as a sorted tuple of non-negative ints; None means every dim."""
    if dim is None:
        return tuple(range(ndim))
    parts = (dim,) if not isinstance(dim, (tuple, list)) else tuple(dim)
    out = tuple(one_dim(op, d, ndim) for d in parts)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {tuple(parts)} names the same dimension twice.")
    return tuple(sorted(out)) if ndim else ()


def shape_of(x):
    """The shape of a Tensor, an array or a number (())."""
    return tuple(getattr(x, "shape", ()))


def ndim_of(x):
    return len(shape_of(x))


def array_of(x, like=None):
    """The array behind a Tensor, or x (an array, list or number) as an array, for the integer
    work (orders, indices, masks, bounds) that builds no graph. With ``like``: on like's backend
    (a NumPy index or mask for CuPy tensors is copied over once, as tensor() would)."""
    arr = x.array if isinstance(x, Tensor) else get_array_module(x).asarray(x)
    if like is not None and get_array_module(arr) is not get_array_module(like):
        arr = to_backend(arr, "numpy" if get_array_module(like) is np else "cupy")
    return arr
