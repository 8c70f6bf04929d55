"""Tensor: an array plus the record of how it was computed, and reverse-mode autograd.

The whole of backpropagation is ``Tensor.backward``: put the graph in topological order, then walk
it from the output back to the leaves, asking each op for the gradients of its inputs and adding
them up where an input was used more than once.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .function import is_grad_enabled

_DEFAULT_DTYPE = np.float32


def set_default_dtype(dtype) -> None:
    """float32 (the default, fast) or float64 (for gradient checks)."""
    global _DEFAULT_DTYPE
    _DEFAULT_DTYPE = np.dtype(dtype).type


def get_default_dtype():
    return np.dtype(_DEFAULT_DTYPE)


def as_array(x, dtype=None):
    """Plain array on the active backend from an array, a Python number or a (nested) list.
    Python floats become the default dtype (float32), as in PyTorch; arrays keep theirs."""
    if isinstance(x, Tensor):
        return x.data
    if backend.is_array(x):
        arr = x
        if backend.get_array_module(arr) is not backend.active_module():
            arr = backend.to_backend(arr)
        return arr if dtype is None else arr.astype(dtype, copy=False)
    xp = backend.active_module()
    if isinstance(x, (bool, int, float, np.generic)) and dtype is None:
        return x                       # scalars stay scalars: NumPy's promotion keeps the tensor's dtype
    arr = xp.asarray(x, dtype=dtype)
    if dtype is None and arr.dtype == np.float64 and not _has_float64_array(x):
        arr = arr.astype(_DEFAULT_DTYPE)
    return arr


def _has_float64_array(x):
    return isinstance(x, np.ndarray) and x.dtype == np.float64


def sum_to_shape(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape`` (the one place this is done)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Tensor:
    """An n-dimensional array that can remember how it was made, for autograd."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_idx", "_version", "name", "__weakref__")
    __array_priority__ = 1000   # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None, _ctx=None, _idx=0):
        if isinstance(data, Tensor):
            data = data.data
        arr = as_array(data, dtype)
        if not backend.is_array(arr):
            arr = backend.active_module().asarray(arr, dtype=dtype)
            if dtype is None and arr.dtype == np.float64 and isinstance(data, float) and not isinstance(data, np.generic):
                arr = arr.astype(_DEFAULT_DTYPE)
        if requires_grad and arr.dtype.kind not in "fc":
            raise TypeError(
                f"tensor(requires_grad=True): only floating-point tensors can require gradients, "
                f"got dtype {arr.dtype}. Convert first, e.g. tinyattn.tensor(x, dtype='float32', "
                f"requires_grad=True).")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = _ctx            # the Context of the op that produced this tensor (None: a leaf)
        self._idx = _idx            # which output of that op this tensor is
        self._version = 0           # bumped by in-place ops; checked by backward
        self.name = None

    # ------------------------------------------------------------------ basic properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def device(self):
        return "cpu" if isinstance(self.data, np.ndarray) else "cuda"

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed), detached from the graph."""
        return backend.to_numpy(self.data)

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values, cut off from the graph (no gradient flows through)."""
        return Tensor(self.data)

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: dtype {self.data.dtype} cannot require gradients; "
                            "use a floating-point tensor.")
        self.requires_grad = flag
        return self

    def zero_grad_(self):
        self.grad = None

    def to_backend(self, name):
        """A copy on backend ``name`` ('numpy' or 'cupy'); a leaf, as PyTorch's .to(device)."""
        return Tensor(backend.to_backend(self.data, name), requires_grad=self.requires_grad)

    def __repr__(self):
        body = np.array2string(self.numpy(), precision=4, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.data.dtype != np.float32:
            extra = f", dtype={self.data.dtype}" + extra
        return f"tensor({body}{extra})"

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"bool(tensor of shape {self.shape}) is ambiguous; use .any() or .all().")
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __index__(self):
        return int(self.data)

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ in-place (version counted)
    def _bump(self):
        self._version += 1

    def __setitem__(self, idx, value):
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise RuntimeError("__setitem__: a leaf tensor that requires grad cannot be changed in "
                               "place; do it under tinyattn.no_grad(), or build a new tensor.")
        self.data[_unwrap_index(idx)] = as_array(value)
        self._bump()

    def copy_(self, other):
        self.data[...] = as_array(other)
        self._bump()
        return self

    def fill_(self, value):
        self.data.fill(value)
        self._bump()
        return self

    def zero_(self):
        return self.fill_(0)

    def add_(self, other, alpha=1.0):
        self.data += alpha * as_array(other) if alpha != 1.0 else as_array(other)
        self._bump()
        return self

    def mul_(self, other):
        self.data *= as_array(other)
        self._bump()
        return self

    # ------------------------------------------------------------------ autograd
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is d(loss)/d(self); it may be omitted only for a single-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph. "
                               "Create the inputs with requires_grad=True (and not under no_grad()).")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: output has shape {self.shape}, so a gradient must be given: "
                    f"call .backward(grad) with an array of that shape, or reduce first "
                    f"(e.g. loss = out.sum()).")
            grad = xp.ones_like(self.data)
        else:
            grad = as_array(grad.data if isinstance(grad, Tensor) else grad)
            if tuple(grad.shape) != tuple(self.shape):
                raise ValueError(f"backward: gradient of shape {tuple(grad.shape)} does not match "
                                 f"the output's shape {self.shape}.")
            grad = grad.astype(self.dtype, copy=False)
        if self._ctx is None:                         # a lone leaf: d(self)/d(self) = 1
            self._accumulate(grad)
            return
        # 1. topological order of the ops (contexts), iteratively: no recursion limit
        order, seen, stack = [], {id(self._ctx)}, [(self._ctx, False)]
        while stack:
            ctx, expanded = stack.pop()
            if ctx.released:
                raise RuntimeError(
                    f"backward: the graph through {ctx.fn.__name__} was already freed by an earlier "
                    "backward(). Call .backward(retain_graph=True) the first time if you need to "
                    "backpropagate through the same graph twice.")
            if expanded:
                order.append(ctx)
                continue
            stack.append((ctx, True))
            for t in ctx.inputs:
                if t is not None and t._ctx is not None and id(t._ctx) not in seen:
                    seen.add(id(t._ctx))
                    stack.append((t._ctx, False))
        # 2. walk it backwards, accumulating gradients per op output
        grads = {id(self._ctx): [None] * self._ctx.n_outputs}
        grads[id(self._ctx)][self._idx] = grad
        for ctx in reversed(order):
            out_grads = grads.pop(id(ctx), None)
            if out_grads is None:           # no gradient reached this op
                continue
            ctx.check_versions()
            out_grads = [g if g is not None else xp.zeros(shape, dtype)
                         for g, (shape, dtype) in zip(out_grads, ctx.out_meta)]
            in_grads = ctx.fn.backward(ctx, *out_grads)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for t, g in zip(ctx.inputs, in_grads):
                if t is None or g is None or not t.requires_grad:
                    continue
                g = sum_to_shape(g, t.shape)
                if t._ctx is None:
                    t._accumulate(g)
                else:
                    slot = grads.setdefault(id(t._ctx), [None] * t._ctx.n_outputs)
                    slot[t._idx] = g if slot[t._idx] is None else slot[t._idx] + g
            if not retain_graph:
                ctx.release()

    def _accumulate(self, g):
        g = g.astype(self.data.dtype, copy=False)
        self.grad = g.copy() if self.grad is None else self.grad + g


def _unwrap_index(idx):
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    return idx
