"""PyTorch's dtype names (``tinyattn.float32``, ``tinyattn.long``, ...) and its legacy typed
constructors (``tinyattn.LongTensor([1, 2])``).

The dtypes are NumPy dtype objects: a tensor's ``.dtype`` is one, so ``t.dtype == tinyattn.float32``
holds, and even ``t.dtype is tinyattn.float32`` (NumPy keeps one object per builtin dtype). They are
accepted wherever a dtype is, beside the strings ('float32') and NumPy types (np.float32).
"""
from __future__ import annotations

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)     # exported as tinyattn.bool (a Python builtin's name, hence bool_ here)


def _typed(dtype, name):
    def make(data=(), *, requires_grad=False):
        from .creation import tensor
        return tensor(data, dtype=dtype, requires_grad=requires_grad)
    make.__name__ = name
    make.__doc__ = f"torch.{name}(data): a {dtype} tensor from data (PyTorch's legacy constructor)."
    return make


FloatTensor = _typed(float32, "FloatTensor")
DoubleTensor = _typed(float64, "DoubleTensor")
HalfTensor = _typed(float16, "HalfTensor")
LongTensor = _typed(int64, "LongTensor")
IntTensor = _typed(int32, "IntTensor")
BoolTensor = _typed(bool_, "BoolTensor")
ByteTensor = _typed(uint8, "ByteTensor")
