"""The public op functions (``tinyattn.exp``, ``tinyattn.matmul``, ...) and the Tensor methods and
operators that call them. Each is a thin wrapper over one ``Function`` in the files beside this."""
from __future__ import annotations

import numbers

from ..autograd.tensor import Tensor
from ..backend import active_module, get_array_module, is_array, to_backend
from .elementwise import (Abs, Add, Cast, Clip, Div, Exp, Gelu, Log, Maximum, Minimum, Mul, Neg,
                          Pow, Relu, Sigmoid, Softplus, Sqrt, Sub, Tanh, Where)
from .indexing import GetItem
from .linalg import Linear, MatMul
from .reduce import LogSumExp, Max, Mean, Min, Sum, Var
from .shape import BroadcastTo, Concatenate, Pad, Permute, Reshape, Split, Stack
from .softmax import LogSoftmax, Softmax


def _shape_arg(shape):
    """reshape(2, 3) and reshape((2, 3)) both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def _plain(x):
    """A mask or index given as a Tensor is used as its array. A plain array from the other backend
    (a NumPy mask or index for CuPy tensors) is copied to the active one once, as ``tensor()``
    would; CuPy refuses to mix the two."""
    if isinstance(x, Tensor):
        return x.data
    if is_array(x) and get_array_module(x) is not active_module():
        return to_backend(x)
    return x


# ---------------------------------------------------------------------- elementwise
# Binary ops broadcast NumPy's way; either operand may be a Tensor, an array or a number.
def add(a, b):
    """a + b."""
    return Add.apply(a, b)


def sub(a, b):
    """a - b."""
    return Sub.apply(a, b)


def mul(a, b):
    """a * b (elementwise)."""
    return Mul.apply(a, b)


def div(a, b):
    """a / b (true division; integer inputs give the default float dtype, as in PyTorch)."""
    return Div.apply(a, b)


def pow(a, b):  # noqa: A001 - mirrors torch.pow
    """a ** b. d/da = b a^(b-1); d/db = a^b ln a (taken as 0 where a <= 0)."""
    return Pow.apply(a, b)


def neg(x):
    """-x."""
    return Neg.apply(x)


def exp(x):
    """e^x; d/dx = e^x."""
    return Exp.apply(x)


def log(x):
    """Natural log ln x; d/dx = 1/x."""
    return Log.apply(x)


def sqrt(x):
    """√x; d/dx = 1 / (2√x)."""
    return Sqrt.apply(x)


def abs(x):  # noqa: A001
    """|x|; d/dx = sign(x) (0 at x = 0, as in PyTorch)."""
    return Abs.apply(x)


def maximum(a, b):
    """Elementwise max(a, b); at a tie each side gets half the gradient (PyTorch's rule)."""
    return Maximum.apply(a, b)


def minimum(a, b):
    """Elementwise min(a, b); at a tie each side gets half the gradient."""
    return Minimum.apply(a, b)


def clip(x, lo=None, hi=None):
    """Clamp into [lo, hi] (either may be None); the gradient passes where lo <= x <= hi. Bounds
    may be numbers, arrays or tensors (they get no gradient)."""
    return Clip.apply(x, lo=_plain(lo), hi=_plain(hi))


def sigmoid(x):
    """σ(x) = 1 / (1 + e^-x), computed without overflow; d/dx = σ(1 - σ)."""
    return Sigmoid.apply(x)


def tanh(x):
    """tanh x; d/dx = 1 - tanh² x."""
    return Tanh.apply(x)


def relu(x):
    """max(x, 0); d/dx = 1 for x > 0, else 0 (0 at x = 0, as in PyTorch)."""
    return Relu.apply(x)


def gelu(x, approximate="none"):
    """x Φ(x) with Φ the standard normal CDF; approximate='tanh' uses PyTorch's tanh formula."""
    return Gelu.apply(x, approximate=approximate)


def softplus(x, beta=1.0, threshold=20.0):
    """ln(1 + e^(βx)) / β, and x itself where βx > threshold (PyTorch's definition)."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


def where(cond, a, b):
    """a where cond else b (cond: bool tensor/array, not differentiated; all three broadcast)."""
    return Where.apply(_plain(cond), a, b)


def astype(x, dtype):
    """A copy in another dtype; gradients flow back in the original dtype."""
    return Cast.apply(x, dtype=dtype)


# ---------------------------------------------------------------------- reductions
# ``axis``: None (all axes), an int or a tuple/list of ints; ``keepdims`` keeps them as length 1.
def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Σ over ``axis``; the gradient is copied back to every summed element."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Σ / n over ``axis``; each element gets 1/n of the gradient."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Largest value over ``axis`` (like torch.amax); tied maxima share the gradient equally."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Smallest value over ``axis`` (like torch.amin); tied minima share the gradient equally."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=False, ddof=0):
    """Σ (x - mean)² / (n - ddof). ddof=0 is NumPy's default; PyTorch's torch.var uses ddof=1."""
    return Var.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def logsumexp(x, axis=None, keepdims=False):
    """ln Σ e^x over ``axis``, without overflow; its gradient is softmax(x)."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def softmax(x, axis=-1, mask=None):
    """e^x_i / Σ_j e^x_j along ``axis``. ``mask`` (bool, True = keep, broadcast to x) gives masked
    entries exactly 0; a row with nothing kept is all zeros (not NaN)."""
    return Softmax.apply(x, axis=axis, mask=_plain(mask))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``: the log of softmax, computed stably."""
    return LogSoftmax.apply(x, axis=axis)


# ---------------------------------------------------------------------- shapes
def reshape(x, *shape):
    """The same numbers in a new shape: ``reshape(x, 2, 3)`` or ``reshape(x, (2, -1))``."""
    return Reshape.apply(x, shape=_shape_arg(shape))


def permute(x, *axes):
    """Reorder the axes: ``permute(x, 2, 0, 1)`` or ``permute(x, (2, 0, 1))``; output axis i is
    input axis axes[i]."""
    return Permute.apply(x, axes=_shape_arg(axes) if axes else None)


def transpose(x, *axes):
    """Three spellings, none ambiguous:

    - ``transpose(x)``: reverse the axes (NumPy; same as ``x.T``);
    - ``transpose(x, dim0, dim1)`` with two ints: swap those two axes (PyTorch, so the attention
      idiom ``k.transpose(-2, -1)`` means what it says, on any number of axes);
    - ``transpose(x, (2, 0, 1))`` or three or more ints: a permutation (NumPy; same as ``permute``).
    """
    if not axes or axes == (None,):
        return Permute.apply(x, axes=None)
    if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
        return swapaxes(x, *axes)
    return Permute.apply(x, axes=_shape_arg(axes))


def swapaxes(x, a, b):
    """Exchange axes a and b."""
    for axis in (a, b):
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"swapaxes: axis {axis} is out of range for a tensor of shape "
                             f"{x.shape} ({x.ndim} axes)")
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return Permute.apply(x, axes=tuple(order))


def broadcast_to(x, shape):
    """Repeat along length-1 (and new leading) axes to ``shape``; the gradient is summed back."""
    return BroadcastTo.apply(x, shape=tuple(shape))


def expand(x, *shape):
    """PyTorch's expand: -1 keeps an axis as it is."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0 or any(s == -1 for s in shape[:lead]):
        raise ValueError(f"expand: cannot expand a tensor of shape {x.shape} to {shape}: give at "
                         f"least {x.ndim} sizes, and -1 only for axes the tensor already has.")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return BroadcastTo.apply(x, shape=shape)


def squeeze(x, axis=None):
    """Drop length-1 axes: all of them, or the given one(s) (which must have length 1)."""
    shape = x.shape
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        for a in axes:
            if not -x.ndim <= a < x.ndim:
                raise ValueError(f"squeeze: axis {a} is out of range for a tensor of shape {shape}")
        axes = {a % x.ndim for a in axes}
        for a in axes:
            if shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has length {shape[a]}, not 1 (shape {shape})")
        new = tuple(n for i, n in enumerate(shape) if i not in axes)
    return Reshape.apply(x, shape=new)


def flatten(x, start_axis=0, end_axis=-1):
    """Merge axes start_axis..end_axis into one (PyTorch's flatten; ``flatten(x)`` is 1-D)."""
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    start, end = start_axis % x.ndim, end_axis % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} for a "
                         f"tensor of shape {x.shape}")
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return Reshape.apply(x, shape=x.shape[:start] + (merged,) + x.shape[end + 1:])


def unsqueeze(x, axis):
    """Insert a length-1 axis at position ``axis`` of the result."""
    nd = x.ndim + 1
    if not -nd <= axis < nd:                  # x.unsqueeze(5) on a matrix: not silently -> -1
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor of shape "
                         f"{tuple(x.shape)}: the new axis goes at one of {-nd} .. {nd - 1}.")
    axis = axis % nd
    shape = list(x.shape)
    shape.insert(axis, 1)
    return Reshape.apply(x, shape=tuple(shape))


def concatenate(tensors, axis=0):
    """Join along an existing axis; the other axes must match."""
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join equal-shaped tensors along a new axis."""
    return Stack.apply(*tensors, axis=axis)


def split(x, sections, axis=0):
    """NumPy's split: ``sections`` equal parts, or the list of indices where to cut."""
    return list(Split.apply(x, sections=sections, axis=axis))


def pad(x, pad_width, value=0.0):
    """Constant padding, NumPy's ``pad_width``: an int, a (before, after) pair, or one pair per
    axis. (PyTorch's F.pad lists pairs from the last axis backwards; this does not.)"""
    return Pad.apply(x, pad_width=pad_width, value=value)


def matmul(a, b):
    """a @ b: (..., m, k) @ (..., k, n) -> (..., m, n), batch axes broadcast; a 1-D operand is a
    row (on the left) or a column (on the right) and its axis is dropped from the result."""
    return MatMul.apply(a, b)


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis, boolean masks and integer arrays/lists/tensors
    (gather). The backward scatter-adds, so repeated indices accumulate their gradients."""
    # Tensors in the index are used as their arrays; NumPy arrays indexing CuPy tensors move over
    index = tuple(_plain(i) for i in index) if isinstance(index, tuple) else _plain(index)
    xp = get_array_module(x.data)
    if isinstance(index, list):           # a list of ints means integer-array indexing, as in NumPy
        index = xp.asarray(index)
    elif isinstance(index, tuple) and any(isinstance(i, list) for i in index):
        index = tuple(xp.asarray(i) if isinstance(i, list) else i for i in index)
    return GetItem.apply(x, index=index)


# ---------------------------------------------------------------------- Tensor methods and operators
def _compare(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, op)(other))
    return method


def _bind():
    T = Tensor
    T.__add__ = lambda a, b: Add.apply(a, b)
    T.__radd__ = lambda a, b: Add.apply(b, a)
    T.__sub__ = lambda a, b: Sub.apply(a, b)
    T.__rsub__ = lambda a, b: Sub.apply(b, a)
    T.__mul__ = lambda a, b: Mul.apply(a, b)
    T.__rmul__ = lambda a, b: Mul.apply(b, a)
    T.__truediv__ = lambda a, b: Div.apply(a, b)
    T.__rtruediv__ = lambda a, b: Div.apply(b, a)
    T.__pow__ = lambda a, b: Pow.apply(a, b)
    T.__rpow__ = lambda a, b: Pow.apply(b, a)
    T.__neg__ = lambda a: Neg.apply(a)
    T.__matmul__ = lambda a, b: MatMul.apply(a, b)
    T.__rmatmul__ = lambda a, b: MatMul.apply(b, a)
    T.__abs__ = lambda a: Abs.apply(a)
    T.__pos__ = lambda a: a
    T.__getitem__ = getitem
    for name, op in (("__lt__", "__lt__"), ("__le__", "__le__"), ("__gt__", "__gt__"),
                     ("__ge__", "__ge__"), ("__eq__", "__eq__"), ("__ne__", "__ne__")):
        setattr(T, name, _compare(op))
    T.__invert__ = lambda a: Tensor(~a.data)
    T.__and__ = T.__rand__ = lambda a, b: Tensor(a.data & _plain(b))
    T.__or__ = T.__ror__ = lambda a, b: Tensor(a.data | _plain(b))
    T.__xor__ = T.__rxor__ = lambda a, b: Tensor(a.data ^ _plain(b))

    for fn in (add, sub, mul, div, pow, neg, exp, log, sqrt, abs, sigmoid, tanh, relu, gelu,
               softplus, clip, maximum, minimum, sum, mean, max, min, var, logsumexp, softmax,
               log_softmax, reshape, permute, transpose, swapaxes, broadcast_to, expand, squeeze,
               unsqueeze, flatten, pad, matmul, split, astype):
        setattr(T, fn.__name__, fn)
    T.T = property(lambda a: Permute.apply(a, axes=None))
    T.view = reshape
    T.float = lambda a: Cast.apply(a, dtype="float32")
    T.double = lambda a: Cast.apply(a, dtype="float64")
    T.clone = lambda a: Cast.apply(a, dtype=a.dtype)   # a fresh array, still in the graph
    T.any = lambda a, axis=None: Tensor(a.data.any(axis=axis))
    T.all = lambda a, axis=None: Tensor(a.data.all(axis=axis))
    T.argmax = lambda a, axis=None, keepdims=False: Tensor(a.data.argmax(axis=axis, keepdims=keepdims))
    T.argmin = lambda a, axis=None, keepdims=False: Tensor(a.data.argmin(axis=axis, keepdims=keepdims))


_bind()

__all__ = [n for n in dir() if not n.startswith("_")]
