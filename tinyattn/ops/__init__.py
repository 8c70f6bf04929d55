"""The ops: each file holds a family of ``Function`` classes with their public wrapper functions.

This file is the public list (``tinyattn.exp``, ``tinyattn.matmul``, ...); the Tensor methods and
operators in ``autograd/tensor.py`` call these same functions.
"""
from __future__ import annotations

from .compare import bitwise_and, bitwise_not, bitwise_or, bitwise_xor, eq, ge, gt, le, lt, ne
from .elementwise import (abs, add, astype, div, exp, gelu, log, maximum, minimum, mul, neg,
                          pow, relu, sigmoid, softplus, sqrt, sub, tanh, where)
from .indexing import getitem
from .linalg import matmul
from .reduce import all, any, mean, sum
from .shape import (array_split, broadcast_to, cat, chunk, concatenate, expand, flatten, movedim, pad,
                    permute, reshape, split, squeeze, stack, swapaxes, t, tensor_split, transpose,
                    unflatten, unsqueeze)
from .statistics import (amax, amin, aminmax, argmax, argmin, clamp, clip, logsumexp, max, min,
                         norm, std, var)
from .softmax import log_softmax, softmax

__all__ = [
    # elementwise
    "abs", "add", "astype", "clip", "div", "exp", "gelu", "log", "maximum", "minimum", "mul", "neg",
    "pow", "relu", "sigmoid", "softplus", "sqrt", "sub", "tanh", "where",
    # comparisons and boolean logic (no gradient)
    "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "eq", "ge", "gt", "le", "lt", "ne",
    # reductions
    "all", "amax", "amin", "aminmax", "any", "argmax", "argmin", "clamp", "logsumexp", "max",
    "mean", "min", "norm", "std", "sum", "var",
    # softmax
    "log_softmax", "softmax",
    # shapes
    "array_split", "broadcast_to", "cat", "chunk", "concatenate", "expand", "flatten", "movedim", "pad",
    "permute", "reshape", "split", "squeeze", "stack", "swapaxes", "t", "tensor_split",
    "transpose", "unflatten", "unsqueeze",
    # indexing and matrix product
    "getitem", "matmul",
]
