"""The ops: each file holds a family of ``Function`` classes with their public wrapper functions.

This file is the public list (``tinyattn.exp``, ``tinyattn.matmul``, ...); the Tensor methods and
operators in ``autograd/tensor.py`` call these same functions.
"""
from __future__ import annotations

from .compare import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, eq, floor_divide, ge, gt,
                      le, logical_and, logical_not, logical_or, logical_xor, lt, ne, remainder)
from .gather_scatter import (flip, gather, index_fill, index_select, masked_fill, nonzero, repeat,
                             repeat_interleave, roll, scatter, scatter_add, take_along_dim, tril,
                             triu)
from .pointwise import (ceil, cos, erf, expm1, floor, frac, log1p, reciprocal, round, rsqrt, sign,
                        sin, trunc)
from .products import addmm, baddbmm, bmm, dot, einsum, mm, outer
from .scan import cumprod, cumsum, prod
from .sorting import argsort, kthvalue, median, sort, topk, unique
from .elementwise import (abs, add, astype, div, exp, gelu, log, maximum, minimum, mul, neg,
                          pow, relu, sigmoid, softplus, sqrt, sub, tanh, where)
from .indexing import getitem, setitem
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
    "getitem", "setitem", "matmul",
    # PyTorch-API ops (issue 16): pointwise maths, scans, sorting, gather/scatter, products
    "ceil", "cos", "erf", "expm1", "floor", "frac", "log1p", "reciprocal", "round", "rsqrt", "sign",
    "sin", "trunc",
    "cumprod", "cumsum", "prod",
    "argsort", "kthvalue", "median", "sort", "topk", "unique",
    "flip", "gather", "index_fill", "index_select", "masked_fill", "nonzero", "repeat",
    "repeat_interleave", "roll", "scatter", "scatter_add", "take_along_dim", "tril", "triu",
    "addmm", "baddbmm", "bmm", "dot", "einsum", "mm", "outer",
    "floor_divide", "logical_and", "logical_not", "logical_or", "logical_xor", "remainder",
]
