"""tinyattn: a small, honest, fast deep-learning engine on NumPy, built to teach attention.

    import tinyattn as ta
    x = ta.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    y = (x @ x.T).sum()
    y.backward()
    x.grad
"""
from . import backend, kernels, memory  # memory: tuning only when memory.tune() is called
from .autograd import (AnomalyError, Context, Function, GradcheckError, Tensor, enable_grad,
                       get_default_dtype, gradcheck, is_grad_enabled, no_grad, registered_ops, set_default_dtype)
from .autograd.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .backend import cupy_available, get_array_module, get_backend, set_backend
from .creation import (arange, full, ones, ones_like, rand, randint, randn, tensor, zeros,
                       zeros_like)
from .ops import (abs, add, astype, broadcast_to, clip, concatenate, div, exp, expand, flatten, gelu,
                  log, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum, mul, neg, pad,
                  permute, pow, relu, reshape, sigmoid, softmax, softplus, split, sqrt, squeeze,
                  stack, sub, sum, swapaxes, tanh, transpose, unsqueeze, var, where)
from .ops import (all, amax, amin, aminmax, any, argmax, argmin, array_split, cat, chunk,  # noqa: E402
                  clamp, movedim, norm, std, t, tensor_split, unflatten)
from .autograd.size import Size  # noqa: E402
from .random import manual_seed

# The layers above the engine (each imports only what sits below it).
from . import attention, functional, models, nn, optim  # noqa: E402
from .io import load, save  # noqa: E402

float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

# PyTorch's namespaces and generator objects (issue 16, nn/optim/utils.data part).
from . import utils  # noqa: E402
from .random import Generator, default_generator, initial_seed  # noqa: E402
