"""Comparisons and boolean logic (==, <, ~, &, ...): no gradient, the results are bool tensors."""
from __future__ import annotations

from ..autograd.tensor import Tensor, unwrap
from ..backend import get_array_module


def _apply(a, b, method):
    """``a.array.<method>(b)`` with b a Tensor, an array or a number; never recorded in the graph
    (a comparison or a mask combination has no gradient)."""
    return Tensor(getattr(a.array, method)(unwrap(b)))


def eq(a, b): return _apply(a, b, "__eq__")  # a == b
def ne(a, b): return _apply(a, b, "__ne__")  # a != b
def lt(a, b): return _apply(a, b, "__lt__")  # a < b
def le(a, b): return _apply(a, b, "__le__")  # a <= b
def gt(a, b): return _apply(a, b, "__gt__")  # a > b
def ge(a, b): return _apply(a, b, "__ge__")  # a >= b
# & | ^ ~: logical on bool tensors (combining masks), bitwise on integer ones
def bitwise_and(a, b): return _apply(a, b, "__and__")  # a & b
def bitwise_or(a, b): return _apply(a, b, "__or__")  # a | b
def bitwise_xor(a, b): return _apply(a, b, "__xor__")  # a ^ b
def bitwise_not(x): return Tensor(~x.array)  # ~x


# logical_*: PyTorch's names; non-zero counts as True, and the result is always a bool tensor
def _truth(x):
    arr = unwrap(x)
    return arr.astype(bool) if hasattr(arr, "astype") else bool(arr)


def logical_and(input, other): return Tensor(_truth(input) & _truth(other))  # noqa: A002
def logical_or(input, other): return Tensor(_truth(input) | _truth(other))  # noqa: A002
def logical_xor(input, other): return Tensor(_truth(input) ^ _truth(other))  # noqa: A002
def logical_not(input): return Tensor(~_truth(input))  # noqa: A002


# // and %: Python's (and PyTorch's) floor semantics: the remainder takes the divisor's sign.
# No gradient: both are step functions of the quotient.
def _xp(a, b):
    return get_array_module(unwrap(a) if isinstance(a, Tensor) else unwrap(b))


def floor_divide(input, other):  # noqa: A002
    return Tensor(_xp(input, other).floor_divide(unwrap(input), unwrap(other)))


def remainder(input, other):  # noqa: A002
    return Tensor(_xp(input, other).remainder(unwrap(input), unwrap(other)))
