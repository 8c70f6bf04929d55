"""Tensor: an array plus the record of how it was computed, and reverse-mode autograd.

The whole of backpropagation is ``Tensor.backward`` (``backpropagate``): walk the graph from the
output back to the leaves in topological order (newest op first: each op is numbered when it is
applied, after the ops that made its inputs), asking each op for the gradients of its inputs and
adding them up where an input was used more than once.

Every operator and maths method is a one-line delegation to the public op function of the same
name in ``tinyattn.ops`` (``x.exp()`` is ``tinyattn.ops.exp(x)``). The ops import this module, so
this module does not import them: it holds the ``tinyattn`` package (already being imported when
this file runs) and looks ``tinyattn.ops`` up when a method is called.
"""
from __future__ import annotations

from heapq import heappop, heappush

import numpy as np

import tinyattn  # the package, for tinyattn.ops.<name> at call time (see above)

from .. import backend
from . import anomaly
from .grad_mode import is_grad_enabled, no_grad
from .size import Size

_DEFAULT_DTYPE = np.float32


def set_default_dtype(dtype) -> None:
    """float32 (the default, fast) or float64 (for gradient checks)."""
    global _DEFAULT_DTYPE
    _DEFAULT_DTYPE = np.dtype(dtype).type


def get_default_dtype():
    return np.dtype(_DEFAULT_DTYPE)


def as_array(x, dtype=None):
    """Plain array on the active backend from an array, a Python number or a (nested) list.

    Python numbers stay Python numbers, so that NumPy treats them as "weak" and ``x + 2.5`` keeps
    x's dtype. NumPy scalars (``np.float64(2)``) are turned into Python numbers for the same reason:
    in PyTorch ``float32 tensor + np.float64 scalar`` stays float32. Lists of floats become the
    default dtype (float32); arrays keep theirs."""
    if isinstance(x, Tensor):
        return x.array
    if backend.is_array(x):
        arr = x
        if backend.get_array_module(arr) is not backend.active_module():
            arr = backend.to_backend(arr)
        return arr if dtype is None else arr.astype(dtype, copy=False)
    if dtype is None:
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, (bool, int, float)):
            return x
    xp = backend.active_module()
    if isinstance(x, (list, tuple)) and _contains_tensor(x):
        x = _unwrap_nested(x)
    try:
        arr = xp.asarray(x, dtype=dtype)
    except (ValueError, TypeError) as e:
        if dtype is not None:
            try:
                np.dtype(dtype)
            except TypeError:
                raise TypeError(f"tensor: unknown dtype {dtype!r}; use e.g. 'float32', "
                                f"'float64', 'int64' or 'bool'.") from None
        raise type(e)(f"tensor: cannot make an array of numbers from {_preview(x)}: "
                      f"{str(e).rstrip('.')}. Nested lists must be rectangular (pad shorter "
                      f"rows, e.g. with 0) and hold only numbers.") from None
    _check_numeric(arr, x)
    if dtype is None and arr.dtype == np.float64 and not _has_float64_array(x):
        arr = arr.astype(_DEFAULT_DTYPE)
    return arr


def unwrap(x):
    """The one way to look through a Tensor: its array. A tuple (an index) is unwrapped item by
    item; an array from the other backend (a NumPy mask or index for CuPy tensors) is moved to the
    active one, as ``tensor()`` would, since CuPy refuses to mix the two. Anything else (a number,
    None, a slice, a list) comes back as it is."""
    if isinstance(x, Tensor):
        return x.array
    if isinstance(x, tuple):
        return tuple([unwrap(i) for i in x])
    if backend.is_array(x) and backend.get_array_module(x) is not backend.active_module():
        return backend.to_backend(x)
    return x


def _checked_dim(op, dim, ndim):
    """dim as an index into the shape, with an error in PyTorch's terms when out of range."""
    if not -max(ndim, 1) <= dim < max(ndim, 1) or ndim == 0:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims "
                         f"(expected a value in [{-ndim}, {ndim - 1}]).")
    return dim


def _preview(x):
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


_DTYPE_NAMES = "'float32', 'float64', 'float16', 'int64', 'int32', 'int8', 'uint8' or 'bool'"


def resolve_dtype(dtype, who):
    """``dtype`` as a NumPy dtype, or a clear error from ``who`` that lists the valid names
    (instead of NumPy's "data type 'floot32' not understood")."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: unknown dtype {dtype!r}; use one of {_DTYPE_NAMES} (or the "
                        f"NumPy type itself, e.g. np.float32).") from None
    if dt.kind not in "biuf":
        what = "a complex type (tinyattn has no complex tensors)" if dt.kind == "c" else \
            "not a number type"
        raise TypeError(f"{who}: dtype {dtype!r} ({dt}) is {what}; tensors hold real numbers or "
                        f"bools: use one of {_DTYPE_NAMES}.")
    return dt


def _check_numeric(arr, x):
    """Tensors hold bools and real numbers; complex numbers, strings and Python objects are
    refused here, at once (not later, deep inside an op)."""
    if arr.dtype.kind == "c":
        raise TypeError(f"tensor: cannot make a tensor from {_preview(x)} (NumPy dtype "
                        f"{arr.dtype}): tinyattn has no complex tensors. Pass the real part "
                        f"(x.real), or the real and imaginary parts as two real tensors.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor: cannot make a tensor from {_preview(x)} (NumPy dtype "
                        f"{arr.dtype}); tensors hold numbers or bools. Convert the data first "
                        f"(e.g. token strings to integer ids with a vocabulary).")


def _has_float64_array(x):
    return isinstance(x, np.ndarray) and x.dtype == np.float64


def _contains_tensor(x):
    return any(isinstance(e, Tensor) or (isinstance(e, (list, tuple)) and _contains_tensor(e))
               for e in x)


def _unwrap_nested(x):
    """[tensor(1.), tensor(2.)] -> [array(1.), array(2.)] (moved to NumPy), so asarray can stack them."""
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, (list, tuple)):
        return [_unwrap_nested(e) for e in x]
    return x


def sum_to_shape(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape`` (the one place this is done).

    Leading axes that broadcasting added are summed away; axes where ``shape`` has length 1 but
    ``grad`` does not are summed with keepdims. Anything else is a shape bug in an op's backward.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    if grad.ndim == len(shape):
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if axes:
            grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"sum_to_shape: a gradient of shape {grad.shape} cannot be summed down "
                         f"to shape {shape}")
    return grad


class _VersionCounter:
    """How many times a tensor's array was changed in place. Shared by a tensor, its views and its
    detached copies, because changing one changes the others' numbers too."""

    __slots__ = ("value", "owner")

    def __init__(self):
        self.value = 0
        self.owner = None    # weakref to the tensor the views look at, set when a view shares this


class Tensor:
    """An n-dimensional array that can remember how it was made, for autograd."""

    __slots__ = ("array", "_grad", "requires_grad", "_ctx", "_idx", "_vc", "name", "_hooks",
                 "__weakref__")
    __array_priority__ = 1000   # NumPy scalars and arrays defer to Tensor's reflected operators
    __array_ufunc__ = None      # ... and never try to run a ufunc on a Tensor (np.float64(2) + t)

    def __init__(self, data, requires_grad=False, dtype=None, _ctx=None, _idx=0):
        if isinstance(data, Tensor):
            data = data.array
        if isinstance(data, np.generic):      # e.g. what NumPy returns for x.sum(): keep its dtype
            arr = backend.active_module().asarray(data, dtype=dtype)
        else:
            arr = as_array(data, dtype)
        if not backend.is_array(arr):         # a Python number
            arr = backend.active_module().asarray(arr, dtype=dtype)
            if dtype is None and arr.dtype == np.float64:
                arr = arr.astype(_DEFAULT_DTYPE)
        if arr.dtype.kind not in "biuf":
            _check_numeric(arr, data)
        if requires_grad and arr.dtype.kind not in "fc":
            raise TypeError(
                f"tensor(requires_grad=True): only floating-point tensors can require gradients, "
                f"got dtype {arr.dtype}. Convert first, e.g. tinyattn.tensor(x, dtype='float32', "
                f"requires_grad=True).")
        self.array = arr
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = _ctx            # the Context of the op that produced this tensor (None: a leaf)
        self._idx = _idx            # which output of that op this tensor is
        self._vc = None             # the version counter (_versions), made when first asked for
        self.name = None
        self._hooks = None          # register_hook's functions, called with this tensor's gradient

    @property
    def _versions(self):
        """The version counter: bumped by in-place ops, checked by backward. Made only when first
        asked for (an in-place change, a saved array, a view): most tensors of a forward pass are
        never changed in place, and making one per op output cost ~0.15 µs of every op."""
        vc = self._vc
        if vc is None:
            vc = self._vc = _VersionCounter()
        return vc

    @_versions.setter
    def _versions(self, counter):
        self._vc = counter

    @classmethod
    def _output(cls, arr, ctx, idx):
        """The tensor an op returns (the fast path of __init__: ``arr`` is already an array of
        the right backend, or a NumPy scalar from a full reduction)."""
        if type(arr) is not np.ndarray and not backend.is_array(arr):
            arr = np.asarray(arr) if isinstance(arr, np.generic) else Tensor(arr).array
        t = object.__new__(cls)
        t.array, t._grad, t.requires_grad, t._ctx, t._idx = arr, None, ctx is not None, ctx, idx
        t._vc, t.name, t._hooks = None, None, None
        return t

    # ------------------------------------------------------------------ basic properties
    @property
    def data(self):
        """The values as a Tensor outside the graph (PyTorch's ``.data``): it shares this tensor's
        array, so ``p.data.add_(g, alpha=-lr)`` changes ``p``, and autograd does not see the change
        (unlike ``detach()``, whose in-place changes backward checks). The raw NumPy/CuPy array
        is ``.array``."""
        return Tensor._output(self.array, None, 0)

    @data.setter
    def data(self, value):
        """``p.data = t``: ``p`` now holds ``t``'s values (any shape or dtype), graph untouched."""
        arr = value.array if isinstance(value, Tensor) else as_array(value)
        if not backend.is_array(arr):
            raise TypeError(f"x.data = value: value must be a tensor or an array, "
                            f"got {type(value).__name__}.")
        self.array = arr

    @property
    def grad(self):
        """The gradient backward accumulated here: a Tensor of this tensor's shape, or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        if not isinstance(value, Tensor):
            if not backend.is_array(value):
                raise TypeError(f"x.grad = value: a gradient must be a tensor (or None), got "
                                f"{type(value).__name__}. Use tinyattn.tensor(value).")
            value = Tensor._output(value, None, 0)
        if tuple(value.array.shape) != tuple(self.array.shape):
            raise ValueError(f"x.grad = value: the gradient has shape {tuple(value.array.shape)} "
                             f"but x has shape {tuple(self.array.shape)}; a gradient has the shape "
                             f"of its tensor.")
        if value.array.dtype != self.array.dtype:
            raise TypeError(f"x.grad = value: the gradient has dtype {value.array.dtype} but x has "
                            f"dtype {self.array.dtype}; convert it first (value.to(x.dtype)).")
        self._grad = value

    @property
    def shape(self):
        return Size(self.array.shape)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    def size(self, dim=None):
        """The shape as a ``tinyattn.Size`` (PyTorch's ``x.size()``), or the length of dim ``dim``.
        NumPy's ``x.size`` (the element count) is ``x.numel()``."""
        if dim is None:
            return Size(self.array.shape)
        return self.array.shape[_checked_dim("size", dim, self.array.ndim)]

    def numel(self):
        """The number of elements (NumPy's ``x.size``)."""
        return self.array.size

    nelement = numel

    def dim(self):
        """The number of dims (NumPy's ``x.ndim``)."""
        return self.array.ndim

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def device(self):
        return backend.device_of(self.array)

    @property
    def _version(self):
        return self._versions.value

    @_version.setter
    def _version(self, value):
        self._versions.value = value

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor (a single number) is not defined; use .item().")
        return len(self.array)

    def __iter__(self):
        """Iterate over the first axis (each item is ``self[i]``, so gradients flow)."""
        for i in range(len(self)):
            yield self[i]

    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed), detached from the graph."""
        return backend.to_numpy(self.array)

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t) and matplotlib see the values (never the graph)."""
        arr = self.numpy()
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.array.size != 1:
            raise ValueError(f"item(): the tensor has shape {self.shape} ({self.array.size} "
                             f"elements); only a one-element tensor can become a Python number. "
                             f"Reduce it first (e.g. .sum()) or use .tolist().")
        return self.array.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values (shared, not copied), cut off from the graph: no gradient flows through.
        In-place changes to either are seen by both, so they share one version counter."""
        out = Tensor(self.array)
        out._versions = self._versions
        return out

    def requires_grad_(self, flag=True):
        if flag and self.array.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: dtype {self.array.dtype} cannot require gradients; "
                            "use a floating-point tensor.")
        self.requires_grad = flag
        return self

    def zero_grad_(self):
        self.grad = None

    def to_backend(self, name):
        """A copy on backend ``name`` ('numpy' or 'cupy'); a new leaf, as PyTorch's .to(device)
        of a leaf (no gradient flows back across the move)."""
        # not Tensor(...): that puts an array on the *active* backend, undoing the move
        out = Tensor._output(backend.to_backend(self.array, name), None, 0)
        out.requires_grad = self.requires_grad
        return out

    def cpu(self):
        """This tensor on the CPU (NumPy): itself if it is already there."""
        return self if self.device == "cpu" else self.to_backend("numpy")

    def cuda(self):
        """This tensor on the GPU (CuPy): itself if it is already there."""
        return self if self.device == "cuda" else self.to_backend("cupy")

    def to(self, target=None, dtype=None, *, device=None):
        """PyTorch's .to: a device ('cpu'/'numpy' or 'cuda'/'cupy', a tinyattn.device) or a dtype
        ('float64', tinyattn.float64, ...), or both as device=/dtype= (also to(other_tensor))."""
        if isinstance(target, Tensor):
            target, dtype = target.device, target.dtype
        if device is not None or dtype is not None:
            out = self if device is None else self.to(device)
            out = out if target is None else out.to(target)
            return out if dtype is None else out.to(dtype)
        name = backend.device_backend(target)
        if name is not None:
            return self.cpu() if name == "numpy" else self.cuda()
        try:
            dtype = np.dtype(target)
        except TypeError:
            raise ValueError(f"to({target!r}): give a device ('cpu', 'cuda') or a dtype "
                             f"('float32', 'float64', ...)") from None
        return self if dtype == self.dtype else self.astype(dtype)

    def __repr__(self):
        body = np.array2string(self.numpy(), precision=4, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.array.dtype != np.float32:
            extra = f", dtype={self.array.dtype}" + extra
        return f"tensor({body}{extra})"

    def __format__(self, spec):
        """f"{loss:.4f}" works for a one-element tensor, as in PyTorch."""
        if spec and self.array.size == 1:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __bool__(self):
        if self.array.size != 1:
            raise ValueError(f"bool(tensor of shape {self.shape}) is ambiguous; use .any() or .all().")
        return bool(self.array)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.array.dtype.kind not in "iub":
            raise TypeError(f"a tensor of dtype {self.array.dtype} cannot be used as an index; "
                            "use an integer tensor.")
        return int(self.item())

    __hash__ = object.__hash__

    # Everything below down to the in-place section is a one-line delegation to the op function of
    # the same name in tinyattn.ops (arguments and docs are there). Adding a method is one line.
    # ------------------------------------------------------------------ arithmetic operators
    def __add__(self, other): return tinyattn.ops.add(self, other)
    def __radd__(self, other): return tinyattn.ops.add(other, self)
    def __sub__(self, other): return tinyattn.ops.sub(self, other)
    def __rsub__(self, other): return tinyattn.ops.sub(other, self)
    def __mul__(self, other): return tinyattn.ops.mul(self, other)
    def __rmul__(self, other): return tinyattn.ops.mul(other, self)
    def __truediv__(self, other): return tinyattn.ops.div(self, other)
    def __rtruediv__(self, other): return tinyattn.ops.div(other, self)
    def __pow__(self, other): return tinyattn.ops.pow(self, other)
    def __rpow__(self, other): return tinyattn.ops.pow(other, self)
    def __matmul__(self, other): return tinyattn.ops.matmul(self, other)
    def __rmatmul__(self, other): return tinyattn.ops.matmul(other, self)
    def __neg__(self): return tinyattn.ops.neg(self)
    def __abs__(self): return tinyattn.ops.abs(self)
    def __pos__(self): return self
    def add(self, other): return tinyattn.ops.add(self, other)
    def sub(self, other): return tinyattn.ops.sub(self, other)
    def mul(self, other): return tinyattn.ops.mul(self, other)
    def div(self, other): return tinyattn.ops.div(self, other)
    def pow(self, other): return tinyattn.ops.pow(self, other)
    def neg(self): return tinyattn.ops.neg(self)
    def matmul(self, other): return tinyattn.ops.matmul(self, other)

    # ------------------------------------------------------------------ comparisons and logic
    # (no gradient: the results are bool or integer tensors)
    def __eq__(self, other): return tinyattn.ops.eq(self, other)
    def __ne__(self, other): return tinyattn.ops.ne(self, other)
    def __lt__(self, other): return tinyattn.ops.lt(self, other)
    def __le__(self, other): return tinyattn.ops.le(self, other)
    def __gt__(self, other): return tinyattn.ops.gt(self, other)
    def __ge__(self, other): return tinyattn.ops.ge(self, other)
    def __invert__(self): return tinyattn.ops.bitwise_not(self)
    def __and__(self, other): return tinyattn.ops.bitwise_and(self, other)
    def __rand__(self, other): return tinyattn.ops.bitwise_and(self, other)
    def __or__(self, other): return tinyattn.ops.bitwise_or(self, other)
    def __ror__(self, other): return tinyattn.ops.bitwise_or(self, other)
    def __xor__(self, other): return tinyattn.ops.bitwise_xor(self, other)
    def __rxor__(self, other): return tinyattn.ops.bitwise_xor(self, other)

    # ------------------------------------------------------------------ elementwise maths
    def exp(self): return tinyattn.ops.exp(self)
    def log(self): return tinyattn.ops.log(self)
    def sqrt(self): return tinyattn.ops.sqrt(self)
    def abs(self): return tinyattn.ops.abs(self)
    def sigmoid(self): return tinyattn.ops.sigmoid(self)
    def tanh(self): return tinyattn.ops.tanh(self)
    def relu(self): return tinyattn.ops.relu(self)
    def gelu(self, *args, **kwargs): return tinyattn.ops.gelu(self, *args, **kwargs)
    def softplus(self, *args, **kwargs): return tinyattn.ops.softplus(self, *args, **kwargs)
    def clip(self, *args, **kwargs): return tinyattn.ops.clip(self, *args, **kwargs)
    def clamp(self, *args, **kwargs): return tinyattn.ops.clamp(self, *args, **kwargs)
    def maximum(self, other): return tinyattn.ops.maximum(self, other)
    def minimum(self, other): return tinyattn.ops.minimum(self, other)
    def softmax(self, *args, **kwargs): return tinyattn.ops.softmax(self, *args, **kwargs)
    def log_softmax(self, *args, **kwargs): return tinyattn.ops.log_softmax(self, *args, **kwargs)

    # ------------------------------------------------------------------ reductions
    def sum(self, *args, **kwargs): return tinyattn.ops.sum(self, *args, **kwargs)
    def mean(self, *args, **kwargs): return tinyattn.ops.mean(self, *args, **kwargs)
    def max(self, *args, **kwargs): return tinyattn.ops.max(self, *args, **kwargs)
    def min(self, *args, **kwargs): return tinyattn.ops.min(self, *args, **kwargs)
    def amax(self, *args, **kwargs): return tinyattn.ops.amax(self, *args, **kwargs)
    def amin(self, *args, **kwargs): return tinyattn.ops.amin(self, *args, **kwargs)
    def var(self, *args, **kwargs): return tinyattn.ops.var(self, *args, **kwargs)
    def std(self, *args, **kwargs): return tinyattn.ops.std(self, *args, **kwargs)
    def norm(self, *args, **kwargs): return tinyattn.ops.norm(self, *args, **kwargs)
    def logsumexp(self, *args, **kwargs): return tinyattn.ops.logsumexp(self, *args, **kwargs)
    def any(self, *args, **kwargs): return tinyattn.ops.any(self, *args, **kwargs)
    def all(self, *args, **kwargs): return tinyattn.ops.all(self, *args, **kwargs)
    def argmax(self, *args, **kwargs): return tinyattn.ops.argmax(self, *args, **kwargs)
    def argmin(self, *args, **kwargs): return tinyattn.ops.argmin(self, *args, **kwargs)

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape): return tinyattn.ops.reshape(self, *shape)
    def view(self, *shape): return tinyattn.ops.reshape(self, *shape)
    def view_as(self, other): return tinyattn.ops.reshape(self, other.shape)
    def contiguous(self): return self   # NumPy arrays need no contiguous copy for any op here
    def permute(self, *axes, **kwargs): return tinyattn.ops.permute(self, *axes, **kwargs)
    def transpose(self, *axes, **kwargs): return tinyattn.ops.transpose(self, *axes, **kwargs)
    def t(self): return tinyattn.ops.t(self)
    @property
    def T(self): return tinyattn.ops.transpose(self)
    @property
    def mT(self): return tinyattn.ops.transpose(self, -2, -1)
    def movedim(self, source, destination): return tinyattn.ops.movedim(self, source, destination)
    def swapaxes(self, a, b): return tinyattn.ops.swapaxes(self, a, b)
    def broadcast_to(self, shape): return tinyattn.ops.broadcast_to(self, shape)
    def expand(self, *shape): return tinyattn.ops.expand(self, *shape)
    def expand_as(self, other): return tinyattn.ops.expand(self, other.shape)
    def squeeze(self, *args, **kwargs): return tinyattn.ops.squeeze(self, *args, **kwargs)
    def unsqueeze(self, *args, **kwargs): return tinyattn.ops.unsqueeze(self, *args, **kwargs)
    def flatten(self, *args, **kwargs): return tinyattn.ops.flatten(self, *args, **kwargs)
    def unflatten(self, dim, sizes): return tinyattn.ops.unflatten(self, dim, sizes)
    def pad(self, *args, **kwargs): return tinyattn.ops.pad(self, *args, **kwargs)
    def split(self, *args, **kwargs): return tinyattn.ops.split(self, *args, **kwargs)
    def tensor_split(self, *args, **kwargs): return tinyattn.ops.tensor_split(self, *args, **kwargs)
    def chunk(self, *args, **kwargs): return tinyattn.ops.chunk(self, *args, **kwargs)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, index): return tinyattn.ops.getitem(self, index)

    # ------------------------------------------------------------------ PyTorch-API ops (issue 16 B)
    # pointwise maths
    def sin(self): return tinyattn.ops.sin(self)
    def cos(self): return tinyattn.ops.cos(self)
    def log1p(self): return tinyattn.ops.log1p(self)
    def expm1(self): return tinyattn.ops.expm1(self)
    def rsqrt(self): return tinyattn.ops.rsqrt(self)
    def reciprocal(self): return tinyattn.ops.reciprocal(self)
    def erf(self): return tinyattn.ops.erf(self)
    def frac(self): return tinyattn.ops.frac(self)
    def sign(self): return tinyattn.ops.sign(self)
    def floor(self): return tinyattn.ops.floor(self)
    def ceil(self): return tinyattn.ops.ceil(self)
    def trunc(self): return tinyattn.ops.trunc(self)
    def round(self, *args, **kwargs): return tinyattn.ops.round(self, *args, **kwargs)
    # scans and products along a dim
    def prod(self, *args, **kwargs): return tinyattn.ops.prod(self, *args, **kwargs)
    def cumsum(self, *args, **kwargs): return tinyattn.ops.cumsum(self, *args, **kwargs)
    def cumprod(self, *args, **kwargs): return tinyattn.ops.cumprod(self, *args, **kwargs)
    # sorting
    def sort(self, *args, **kwargs): return tinyattn.ops.sort(self, *args, **kwargs)
    def argsort(self, *args, **kwargs): return tinyattn.ops.argsort(self, *args, **kwargs)
    def topk(self, *args, **kwargs): return tinyattn.ops.topk(self, *args, **kwargs)
    def kthvalue(self, *args, **kwargs): return tinyattn.ops.kthvalue(self, *args, **kwargs)
    def median(self, *args, **kwargs): return tinyattn.ops.median(self, *args, **kwargs)
    def unique(self, *args, **kwargs): return tinyattn.ops.unique(self, *args, **kwargs)
    # gather, scatter, masks, triangles, tiling
    def gather(self, *args, **kwargs): return tinyattn.ops.gather(self, *args, **kwargs)
    def scatter(self, *args, **kwargs): return tinyattn.ops.scatter(self, *args, **kwargs)
    def scatter_add(self, *args, **kwargs): return tinyattn.ops.scatter_add(self, *args, **kwargs)
    def index_select(self, *args, **kwargs): return tinyattn.ops.index_select(self, *args, **kwargs)
    def take_along_dim(self, *args, **kwargs): return tinyattn.ops.take_along_dim(self, *args, **kwargs)
    def masked_fill(self, mask, value): return tinyattn.ops.masked_fill(self, mask, value)
    def index_fill(self, *args, **kwargs): return tinyattn.ops.index_fill(self, *args, **kwargs)
    def nonzero(self, *args, **kwargs): return tinyattn.ops.nonzero(self, *args, **kwargs)
    def tril(self, diagonal=0): return tinyattn.ops.tril(self, diagonal)
    def triu(self, diagonal=0): return tinyattn.ops.triu(self, diagonal)
    def repeat(self, *sizes): return tinyattn.ops.repeat(self, *sizes)
    def repeat_interleave(self, *args, **kwargs): return tinyattn.ops.repeat_interleave(self, *args, **kwargs)
    def roll(self, *args, **kwargs): return tinyattn.ops.roll(self, *args, **kwargs)
    def flip(self, *dims): return tinyattn.ops.flip(self, dims[0] if len(dims) == 1 else dims)
    # matrix products
    def mm(self, mat2): return tinyattn.ops.mm(self, mat2)
    def bmm(self, mat2): return tinyattn.ops.bmm(self, mat2)
    def dot(self, other): return tinyattn.ops.dot(self, other)
    def outer(self, vec2): return tinyattn.ops.outer(self, vec2)
    def addmm(self, *args, **kwargs): return tinyattn.ops.addmm(self, *args, **kwargs)
    def baddbmm(self, *args, **kwargs): return tinyattn.ops.baddbmm(self, *args, **kwargs)
    # // and %, and comparisons / logic by name (bool results, no gradient)
    def __floordiv__(self, other): return tinyattn.ops.floor_divide(self, other)
    def __rfloordiv__(self, other): return tinyattn.ops.floor_divide(other, self)
    def __mod__(self, other): return tinyattn.ops.remainder(self, other)
    def __rmod__(self, other): return tinyattn.ops.remainder(other, self)
    def floor_divide(self, other): return tinyattn.ops.floor_divide(self, other)
    def remainder(self, other): return tinyattn.ops.remainder(self, other)
    def eq(self, other): return tinyattn.ops.eq(self, other)
    def ne(self, other): return tinyattn.ops.ne(self, other)
    def lt(self, other): return tinyattn.ops.lt(self, other)
    def le(self, other): return tinyattn.ops.le(self, other)
    def gt(self, other): return tinyattn.ops.gt(self, other)
    def ge(self, other): return tinyattn.ops.ge(self, other)
    def logical_and(self, other): return tinyattn.ops.logical_and(self, other)
    def logical_or(self, other): return tinyattn.ops.logical_or(self, other)
    def logical_xor(self, other): return tinyattn.ops.logical_xor(self, other)
    def logical_not(self): return tinyattn.ops.logical_not(self)
    def where(self, condition, other): return tinyattn.ops.where(condition, self, other)

    # ------------------------------------------------------------------ dtype (the device: above)
    def astype(self, dtype): return tinyattn.ops.astype(self, dtype)
    def float(self): return tinyattn.ops.astype(self, "float32")
    def double(self): return tinyattn.ops.astype(self, "float64")
    def clone(self): return tinyattn.ops.astype(self, self.dtype)   # a fresh array, in the graph

    # ------------------------------------------------------------------ new_* (same dtype and device)
    def _new(self, dtype, device):
        return {"dtype": self.dtype if dtype is None else dtype,
                "device": self.device if device is None else device}

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return tinyattn.zeros(*size, **self._new(dtype, device), requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return tinyattn.ones(*size, **self._new(dtype, device), requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return tinyattn.empty(*size, **self._new(dtype, device), requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        return tinyattn.full(size, fill_value, **self._new(dtype, device),
                             requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of data in this tensor's dtype (PyTorch's rule, even for a list of ints)."""
        return tinyattn.tensor(data, **self._new(dtype, device), requires_grad=requires_grad)

    # ------------------------------------------------------------------ PyTorch's dtype methods
    def long(self): return tinyattn.ops.astype(self, "int64")
    def int(self): return tinyattn.ops.astype(self, "int32")
    def bool(self): return tinyattn.ops.astype(self, "bool")
    def half(self): return tinyattn.ops.astype(self, "float16")
    def type_as(self, other): return tinyattn.ops.astype(self, other.dtype)

    def type(self, dtype=None):
        """x.type(dtype): x in that dtype; x.type() (no argument): PyTorch's type name."""
        if dtype is None:
            return _TYPE_NAMES.get(self.dtype.name, f"tinyattn.{self.dtype.name}")
        return tinyattn.ops.astype(self, dtype)

    def is_floating_point(self):
        return self.array.dtype.kind == "f"

    # ------------------------------------------------------------------ in-place (version counted)
    def _check_inplace(self, op, value=None):
        """In-place ops are not recorded in the graph, so they are refused where they would make
        gradients wrong: on tensors that take part in autograd, and with values that need grad."""
        if not is_grad_enabled():
            return
        if self.requires_grad:
            what = "a leaf tensor that requires grad" if self.is_leaf else "a tensor in the graph"
            torch_words = (" (PyTorch: 'a leaf Variable that requires grad is being used in an "
                           "in-place operation')") if self.is_leaf else ""
            raise RuntimeError(
                f"{op}: {what} (shape {self.shape}) cannot be changed in place{torch_words}: the "
                f"change would "
                f"not be recorded and gradients would be wrong. Build a new tensor instead (x + 1, "
                f"tinyattn.where(mask, a, b), concatenate, ...), or, for an update that must not be "
                f"differentiated (an optimiser step), do it under `with tinyattn.no_grad():`.")
        if isinstance(value, Tensor) and value.requires_grad:
            raise RuntimeError(
                f"{op}: the value written requires grad, but an in-place write cannot carry a "
                f"gradient. Build the result out of place (tinyattn.where, concatenate, stack).")

    def _bump(self):
        self._versions.value += 1

    def __setitem__(self, idx, value):
        if self._rebased("__setitem__", lambda t: tinyattn.ops.indexing.setitem(t, idx, value), value):
            return
        self._check_inplace("__setitem__", value)
        self._write("__setitem__", unwrap(idx), as_array(value))
        self._bump()

    def copy_(self, other):
        if self._rebased("copy_", lambda t: t * 0 + other, other):
            return self
        self._check_inplace("copy_", other)
        self._write("copy_", ..., as_array(other))
        self._bump()
        return self

    def _rebased(self, op, fn, value=None):
        """An in-place op on a tensor in the graph (a non-leaf that requires grad, or any tensor
        given a value that requires grad, in grad mode) is recorded as PyTorch does: computed out
        of place by ``fn`` from the tensor as it was, and this tensor then *becomes* the result
        (its array and its place in the graph). The old array is left as it was, so ops that
        saved it still differentiate correctly. True if that happened; False: write in place."""
        if not is_grad_enabled():
            return False
        if not (self.requires_grad or (isinstance(value, Tensor) and value.requires_grad)):
            return False
        if self.requires_grad and self._ctx is None:
            self._check_inplace(op)              # a leaf that requires grad: refused, as in torch
        before = Tensor._output(self.array, self._ctx, self._idx)
        before.requires_grad, before._versions = self.requires_grad, self._versions
        out = fn(before)
        self.array, self._ctx, self._idx, self.requires_grad = out.array, out._ctx, out._idx, True
        return True

    def _write(self, op, idx, arr):
        """self.array[idx] = arr, with a shape mismatch named in our terms rather than NumPy's."""
        try:
            self.array[idx] = arr
        except ValueError as e:
            if "broadcast" not in str(e) and "cannot assign" not in str(e):   # a boolean mask's
                raise
            target = self.array[idx].shape
            raise ValueError(
                f"{op}: the value has shape {tuple(getattr(arr, 'shape', ()))} but the target "
                f"{'x[...]' if idx is ... else 'x[index]'} has shape {target} (x has shape "
                f"{self.shape}); the value must broadcast to the target (aligned from the right, "
                f"each axis equal or 1). Reshape or slice the value, or change the index.") from None

    def fill_(self, value):
        if self._rebased("fill_", lambda t: t * 0 + value, value):
            return self
        self._check_inplace("fill_")
        self.array.fill(value)
        self._bump()
        return self

    def zero_(self):
        return self.fill_(0)

    def add_(self, other, alpha=1.0):
        if self._rebased("add_", lambda t: t + (other * alpha if alpha != 1.0 else other), other):
            return self
        self._check_inplace("add_", other)
        self.array += alpha * as_array(other) if alpha != 1.0 else as_array(other)
        self._bump()
        return self

    def mul_(self, other):
        if self._rebased("mul_", lambda t: t * other, other):
            return self
        self._check_inplace("mul_", other)
        self.array *= as_array(other)
        self._bump()
        return self

    def _inplace(self, op, fn, *args, value=None, **kwargs):
        """The in-place form of ``fn(self, *args)``: recorded in the graph where it has to be
        (see _rebased), else computed without a graph and written into this tensor's array (so
        views and optimisers see it), with the checks and version bump of every in-place op."""
        if self._rebased(op, lambda t: fn(t, *args, **kwargs), value):
            return self
        self._check_inplace(op, value)
        with no_grad():
            result = fn(self, *args, **kwargs)
        self._write(op, ..., result.array.astype(self.array.dtype, copy=False))
        self._bump()
        return self

    def sub_(self, other, alpha=1.0):
        return self.add_(other, alpha=-alpha)

    def div_(self, other):
        return self._inplace("div_", tinyattn.ops.div, other, value=other)

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return self._inplace("clamp_", tinyattn.ops.clip, min, max)

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", tinyattn.ops.masked_fill, mask, value, value=value)

    def index_fill_(self, dim, index, value):
        return self._inplace("index_fill_", tinyattn.ops.index_fill, dim, index, value)

    def scatter_(self, dim, index, src=None, *, value=None):
        src = src if value is None else value      # scatter takes a number as src too
        return self._inplace("scatter_", tinyattn.ops.scatter, dim, index, src, value=src)

    def scatter_add_(self, dim, index, src):
        return self._inplace("scatter_add_", tinyattn.ops.scatter_add, dim, index, src, value=src)

    def _augmented(self, other, op):
        """x += y and friends, in place as in PyTorch. In the graph (a non-leaf that requires
        grad, or a value that does) the op is recorded and x becomes its result (see _rebased);
        on a leaf that requires grad it is refused in grad mode (the change could not be
        differentiated, and rebinding x would silently leave the parameter untouched);
        otherwise - a buffer, or a parameter under no_grad in a hand-written SGD step - the
        array changes in place."""
        name = f"x {op}= y"
        if self._rebased(name, lambda t: _AUGMENTED[op](t, other), other):
            return self
        self._check_inplace(name, other)
        value = as_array(other)
        try:
            if op == "+":
                self.array += value
            elif op == "-":
                self.array -= value
            elif op == "*":
                self.array *= value
            else:
                self.array /= value
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name} in place: {exc} (x has shape {self.shape}, dtype "
                            f"{self.dtype}); the result must keep x's shape and dtype.") from None
        self._bump()
        return self

    def __iadd__(self, other):
        return self._augmented(other, "+")

    def __isub__(self, other):
        return self._augmented(other, "-")

    def __imul__(self, other):
        return self._augmented(other, "*")

    def __itruediv__(self, other):
        return self._augmented(other, "/")

    # ------------------------------------------------------------------ autograd
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is d(loss)/d(self); it may be omitted only for a single-element tensor. The graph
        is freed afterwards unless ``retain_graph=True``.
        """
        backpropagate([(self, self._initial_grad(grad))], retain_graph, Tensor._accumulate)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient (a Tensor) when backward computes it;
        a returned tensor replaces the gradient. Returns a handle whose .remove() undoes it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad, so no gradient "
                               "will reach it; call it on a tensor with requires_grad=True.")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        if self._ctx is not None:           # a non-leaf: the walk looks it up through its op
            self._ctx.retained = self._ctx.retained or {}
            self._ctx.retained.setdefault(self._idx, (self, False))
        return _HookHandle(self._hooks, hook)

    def _run_hooks(self, g):
        for hook in list(self._hooks):
            out = hook(Tensor._output(g, None, 0))
            if out is not None:
                g = out.array if isinstance(out, Tensor) else out
        return g

    def detach_(self):
        """Cut this tensor out of the graph, in place (it becomes a leaf that needs no grad)."""
        self._ctx, self._idx, self.requires_grad = None, 0, False
        return self

    def _initial_grad(self, grad):
        """d(self)/d(self): ones for a one-element tensor, else the gradient the caller gave."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph. "
                               "Create the inputs with requires_grad=True (and not under no_grad()).")
        if grad is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward: output has shape {self.shape}, so a gradient must be given: "
                    f"call .backward(grad) with an array of that shape, or reduce first "
                    f"(e.g. loss = out.sum()).")
            return backend.get_array_module(self.array).ones_like(self.array)
        try:
            grad = as_array(grad.array if isinstance(grad, Tensor) else grad)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"backward: the gradient must be a tensor or array of real numbers "
                            f"with the output's shape {self.shape}; {exc}") from None
        kind = getattr(getattr(grad, "dtype", None), "kind", "f")
        if kind not in "biuf":
            why = (" (an object array: is there a None or a string among the numbers?)"
                   if kind == "O" else "")
            raise TypeError(f"backward: the gradient has dtype {grad.dtype}{why}; it must hold "
                            f"real numbers (float, int or bool), one per element of the output "
                            f"(shape {self.shape}).")
        if tuple(getattr(grad, "shape", ())) != tuple(self.shape):
            raise ValueError(f"backward: gradient of shape {tuple(getattr(grad, 'shape', ()))} "
                             f"does not match the output's shape {self.shape}.")
        return backend.get_array_module(self.array).asarray(grad, dtype=self.dtype)

    def retain_grad(self):
        """Also fill ``.grad`` of this non-leaf tensor on backward (PyTorch's retain_grad), e.g.
        to look at the gradient reaching a hidden state."""
        if self._ctx is not None:
            if self._ctx.retained is None:
                self._ctx.retained = {}
            self._ctx.retained[self._idx] = (self, True)
        return self

    def _accumulate(self, g):
        g = g.astype(self.array.dtype, copy=False)
        if self._grad is None:
            self._grad = Tensor._output(g.copy(), None, 0)
        else:          # the same Tensor object, so a reference the user holds sees the sum
            self._grad.array = self._grad.array + g


_AUGMENTED = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
              "/": lambda a, b: a / b}

_TYPE_NAMES = {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor",
               "float16": "torch.HalfTensor", "int64": "torch.LongTensor",
               "int32": "torch.IntTensor", "bool": "torch.BoolTensor", "uint8": "torch.ByteTensor"}


class _HookHandle:
    """What register_hook returns: ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def backpropagate(roots, retain_graph, sink, capture=None):
    """The reverse walk behind ``backward`` and ``autograd.grad``.

    ``roots``: (tensor, gradient array) pairs to start from. ``sink(leaf, g)`` receives each leaf's
    gradient (backward accumulates it into .grad; autograd.grad collects it). ``capture``: an
    optional {(ctx, output index): callback} for the gradients of non-leaf tensors.
    """
    # The walk takes the ops in reverse order of creation: an op's inputs existed before it was
    # applied, so every op that used a tensor comes later than the op that made it, and taking the
    # newest op first is a topological order (PyTorch's engine orders its ready ops the same way).
    # A heap of the ops that have received a gradient so far gives that order without a separate
    # pass over the graph; ops that no gradient reaches are never visited.
    grads = {}                                        # op -> gradient of each output
    ready = []                                        # heap of (-creation number, op)
    for t, g in roots:
        if t._ctx is None:                            # a lone leaf: d(self)/d(self) = 1
            sink(t, t._run_hooks(g) if t._hooks else g)
            continue
        slot = grads.get(t._ctx)
        if slot is None:
            slot = grads[t._ctx] = [None] * t._ctx.n_outputs
            heappush(ready, (-t._ctx.seq, t._ctx))
        slot[t._idx] = g if slot[t._idx] is None else slot[t._idx] + g
    if not grads:
        return
    xp = backend.get_array_module(roots[0][1])
    while ready:                                      # every op after all the ops that use it
        ctx = heappop(ready)[1]
        if ctx.released:
            raise RuntimeError(
                f"backward: the graph through {ctx.fn.__name__} was already freed by an earlier "
                "backward(). Call .backward(retain_graph=True) the first time if you need to "
                "backpropagate through the same graph twice.")
        out_grads = grads.pop(ctx)
        if ctx._saved_versions:
            ctx.check_versions()                      # were saved arrays changed in place?
        if ctx.n_outputs > 1:                         # outputs nobody used get zero gradients
            out_grads = [g if g is not None else xp.zeros(shape, dtype)
                         for g, (shape, dtype) in zip(out_grads, ctx.out_meta)]
        if ctx.retained:                              # retain_grad() and register_hook() non-leaves
            for i, (t, keep) in ctx.retained.items():
                if t._hooks:
                    out_grads[i] = t._run_hooks(out_grads[i])
                if keep:
                    t._accumulate(out_grads[i])
        if capture:
            for i in range(ctx.n_outputs):
                if (ctx, i) in capture:
                    capture[ctx, i](out_grads[i])
        in_grads = ctx.fn.backward(ctx, *out_grads)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if anomaly.enabled:                           # with tinyattn.detect_anomaly()
            anomaly.check_backward(ctx, out_grads, in_grads)
        for t, edge, needed, g in zip(ctx.inputs, ctx.edges, ctx.needs_input_grad, in_grads):
            if g is None or not needed:
                continue
            if g.shape != t.array.shape or g.dtype != t.array.dtype:
                g = _fit_gradient(g, t, ctx)           # undo broadcasting, match dtype
            parent, i = edge
            if parent is None:
                sink(t, t._run_hooks(g) if t._hooks else g)    # a leaf: its .grad
            else:
                slot = grads.get(parent)
                if slot is None:
                    slot = grads[parent] = [None] * parent.n_outputs
                    heappush(ready, (-parent.seq, parent))
                slot[i] = g if slot[i] is None else slot[i] + g
        if not retain_graph:
            ctx.release()


def _fit_gradient(g, t, ctx):
    """An op's gradient for input ``t``, summed over broadcast axes and in t's dtype."""
    try:
        g = sum_to_shape(g, t.shape)
    except ValueError:
        raise RuntimeError(f"{ctx.fn.__name__}.backward returned a gradient of shape {g.shape} "
                           f"for an input of shape {t.shape}: a bug in that op's backward.") from None
    return g if g.dtype == t.dtype else g.astype(t.dtype)

