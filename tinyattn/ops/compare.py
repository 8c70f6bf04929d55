"""Comparisons and boolean logic (==, <, ~, &, ...): no gradient, the results are bool tensors."""
from __future__ import annotations

from ..autograd.tensor import Tensor, unwrap


def eq(a, b):
    """a == b, elementwise."""
    return Tensor(a.data.__eq__(unwrap(b)))


def ne(a, b):
    """a != b, elementwise."""
    return Tensor(a.data.__ne__(unwrap(b)))


def lt(a, b):
    """a < b, elementwise."""
    return Tensor(a.data.__lt__(unwrap(b)))


def le(a, b):
    """a <= b, elementwise."""
    return Tensor(a.data.__le__(unwrap(b)))


def gt(a, b):
    """a > b, elementwise."""
    return Tensor(a.data.__gt__(unwrap(b)))


def ge(a, b):
    """a >= b, elementwise."""
    return Tensor(a.data.__ge__(unwrap(b)))


def bitwise_not(x):
    """~x: logical not of a bool tensor, bitwise not of an integer one."""
    return Tensor(~x.data)


def bitwise_and(a, b):
    """a & b: logical and of bool tensors (combining masks), bitwise and of integers."""
    return Tensor(a.data & unwrap(b))


def bitwise_or(a, b):
    """a | b: logical or of bool tensors, bitwise or of integers."""
    return Tensor(a.data | unwrap(b))


def bitwise_xor(a, b):
    """a ^ b: logical xor of bool tensors, bitwise xor of integers."""
    return Tensor(a.data ^ unwrap(b))
