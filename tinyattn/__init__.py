"""tinyattn: a small, honest, fast deep-learning engine on NumPy, built to teach attention.

    import tinyattn as ta
    x = ta.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    y = (x @ x.T).sum()
    y.backward()
    x.grad
"""
from . import backend, kernels, memory  # memory: tuning only when memory.tune() is called
from .autograd import (AnomalyError, Context, Function, GradcheckError, Tensor, enable_grad,
                       inference_mode,
                       get_default_dtype, gradcheck, is_grad_enabled, no_grad, registered_ops, set_default_dtype)
from .autograd.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .backend import cupy_available, get_array_module, get_backend, set_backend
from .creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                       linspace, meshgrid, multinomial, normal, ones, ones_like, rand, rand_like,
                       randint, randint_like, randn, randn_like, randperm, tensor, zeros,
                       zeros_like)
from .device import device
from .ops import (abs, add, astype, broadcast_to, clip, concatenate, div, exp, expand, flatten, gelu,
                  log, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum, mul, neg, pad,
                  permute, pow, relu, reshape, sigmoid, softmax, softplus, split, sqrt, squeeze,
                  stack, sub, sum, swapaxes, tanh, transpose, unsqueeze, var, where)
from .ops import (all, amax, amin, aminmax, any, argmax, argmin, array_split, cat, chunk,  # noqa: E402
                  clamp, movedim, norm, std, t, tensor_split, unflatten)
from .autograd.size import Size  # noqa: E402
from .random import manual_seed
# PyTorch-API ops (issue 16, part B). round shadows the builtin as an attribute only, as torch.round
from .ops import (addmm, argsort, baddbmm, bmm, ceil, cos, cumprod, cumsum, dot, einsum, eq, erf,
                  expm1, flip, floor, floor_divide, frac, gather, ge, gt, index_fill, index_select,
                  kthvalue, le, log1p, logical_and, logical_not, logical_or, logical_xor, lt,
                  masked_fill, median, mm, ne, nonzero, outer, prod, reciprocal, remainder, repeat,
                  repeat_interleave, roll, round, rsqrt, scatter, scatter_add, sign, sin, sort,
                  take_along_dim, topk, tril, triu, trunc, unique)

# The layers above the engine (each imports only what sits below it).
from . import attention, functional, models, nn, optim  # noqa: E402
from .io import CheckpointError, load, save  # noqa: E402

# dtypes as objects (NumPy dtypes; tinyattn.int and tinyattn.bool shadow the builtins only as
# attributes of this package, as in torch)
from .dtypes import (BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor,  # noqa: E402
                     LongTensor, double, float16, float32, float64, half, int8, int16, int32, int64,
                     long, short, uint8)
from .dtypes import bool_ as bool  # noqa: E402, A001
from .dtypes import int32 as int  # noqa: E402, A001

__version__ = "0.1.0"

# PyTorch's namespaces and generator objects (issue 16, nn/optim/utils.data part).
from . import utils  # noqa: E402

# PyTorch's namespaces and process settings (issue 16, part B).
from . import autograd, cuda  # noqa: E402
from . import nn as _nn  # noqa: E402
from .nn import functional as _nn_functional  # noqa: E402, F401 - makes tinyattn.nn.functional
from .threads import get_num_threads, set_num_threads  # noqa: E402
from .random import Generator, default_generator, initial_seed  # noqa: E402
