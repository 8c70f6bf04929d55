"""Comparisons and boolean logic (==, <, ~, &, ...): no gradient, the results are bool tensors."""
from __future__ import annotations

from ..autograd.tensor import Tensor, unwrap


def _apply(a, b, method):
    """``a.data.<method>(b)`` with b a Tensor, an array or a number; never recorded in the graph
    (a comparison or a mask combination has no gradient)."""
    return Tensor(getattr(a.data, method)(unwrap(b)))


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
def bitwise_not(x): return Tensor(~x.data)  # ~x
