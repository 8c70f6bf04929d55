"""Layers with PyTorch's names, parameter layouts and initialisation.

    import tinyattn.nn as nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
"""
from . import init
from .activation import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .lstm import LSTM, LSTMCell
from .module import Module, Parameter
from .normalization import LayerNorm

__all__ = ["CrossEntropyLoss", "Dropout", "Embedding", "GELU", "LSTM", "LSTMCell", "LayerNorm",
           "Linear", "LogSoftmax", "MSELoss", "Module", "ModuleDict", "ModuleList", "NLLLoss",
           "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "init"]

# The transformer engineer's layers (multihead.py, positional.py, transformer.py, seq2seq.py).
# Guarded while those files are being written; to be made strict once they exist.
try:
    from .multihead import *  # noqa: F401,F403
    from . import multihead as _multihead
    __all__ += list(getattr(_multihead, "__all__", []))
except ImportError:  # pragma: no cover
    pass
try:
    from .positional import *  # noqa: F401,F403
    from . import positional as _positional
    __all__ += list(getattr(_positional, "__all__", []))
except ImportError:  # pragma: no cover
    pass
try:
    from .transformer import *  # noqa: F401,F403
    from . import transformer as _transformer
    __all__ += list(getattr(_transformer, "__all__", []))
except ImportError:  # pragma: no cover
    pass
try:
    from .seq2seq import *  # noqa: F401,F403
    from . import seq2seq as _seq2seq
    __all__ += list(getattr(_seq2seq, "__all__", []))
except ImportError:  # pragma: no cover
    pass
