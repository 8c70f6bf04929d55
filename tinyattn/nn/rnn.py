"""RNNCell and RNN (Elman): h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), act = tanh or relu, with
PyTorch's parameters, shapes and return values (see recurrent.py for the shared layout)."""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from .recurrent import RecurrentCell, StackedRecurrence

_ACTIVATIONS = {"tanh": F.tanh, "relu": F.relu}


def _activation(owner, nonlinearity):
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(f"{owner}: unknown nonlinearity {nonlinearity!r}; choose 'tanh' or "
                         f"'relu'.")
    return _ACTIVATIONS[nonlinearity]


def elman_step(xw, h, w_hh, b_hh, act):
    """act(xw + h W_hhᵀ + b_hh), where xw = x W_ihᵀ + b_ih is already computed."""
    return act(xw + F.linear(h, w_hh, b_hh))


def _nonlinearity_repr(module):
    return "" if module.nonlinearity == "tanh" else f", nonlinearity={module.nonlinearity!r}"


@register_op("nn.RNNCell")
class RNNCell(RecurrentCell):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        act = _activation("RNNCell", nonlinearity)      # checked before any parameter is made
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity, self._act = nonlinearity, act

    def _step(self, xw, h, w_hh, b_hh):
        return elman_step(xw, h, w_hh, b_hh, self._act)

    def extra_repr(self):
        return super().extra_repr() + _nonlinearity_repr(self)


@register_op("nn.RNN")
class RNN(StackedRecurrence):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        act = _activation("RNN", nonlinearity)      # checked before any parameter is made
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)
        self.nonlinearity, self._act = nonlinearity, act

    def _step(self, xw, h, w_hh, b_hh):
        return elman_step(xw, h, w_hh, b_hh, self._act)

    def extra_repr(self):
        return super().extra_repr() + _nonlinearity_repr(self)
