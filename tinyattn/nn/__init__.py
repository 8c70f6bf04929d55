"""Layers with PyTorch's names, parameter layouts and initialisation.

    import tinyattn.nn as nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
"""
from . import init
from .activation import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .dropout import Dropout
from .embedding import Embedding
from .flatten import Flatten, Identity, Unflatten
from .gru import GRU, GRUCell
from .lazy import LazyLinear
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, MSELoss,
                   NLLLoss, SmoothL1Loss)
from .lstm import LSTM, LSTMCell
from .module import Module, Parameter
from .normalization import LayerNorm
from .rnn import RNN, RNNCell

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten",
           "GELU", "GRU", "GRUCell", "HuberLoss", "Identity", "KLDivLoss", "LSTM", "LSTMCell",
           "LayerNorm", "LazyLinear", "Linear", "LogSoftmax", "MSELoss", "Module", "ModuleDict",
           "ModuleList", "NLLLoss", "Parameter", "RNN", "RNNCell", "ReLU", "Sequential",
           "Sigmoid", "SmoothL1Loss", "Softmax", "Tanh", "Unflatten", "init"]

# The attention layers (each module lists its names in __all__).
from . import utils  # noqa: E402
from .grouped_query import *  # noqa: E402,F401,F403
from .kv_cache import *  # noqa: E402,F401,F403
from .multihead import *  # noqa: E402,F401,F403
from .positional import *  # noqa: E402,F401,F403
from .transformer import *  # noqa: E402,F401,F403
from . import multihead as _multihead, positional as _positional  # noqa: E402
from . import transformer as _transformer  # noqa: E402
from . import grouped_query as _grouped_query, kv_cache as _kv_cache  # noqa: E402

__all__ += ["utils", *_multihead.__all__, *_positional.__all__,
            *_transformer.__all__]
__all__ += [*_grouped_query.__all__, *_kv_cache.__all__]
