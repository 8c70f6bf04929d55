"""GRUCell and GRU (Cho et al., 2014) with PyTorch's parameters, gate order (r, z, n) and shapes.

    r = σ(W_ir x + b_ir + W_hr h + b_hr)           reset gate
    z = σ(W_iz x + b_iz + W_hz h + b_hz)           update gate
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))  candidate (r scales the *projected* h)
    h' = (1 - z) ⊙ n + z ⊙ h

The three W_i* are stacked into ``weight_ih`` (3H, input) and the W_h* into ``weight_hh``
(3H, H), in the order r, z, n (see recurrent.py for the layers and directions).
"""
from __future__ import annotations

from .. import functional as F
from ..autograd.registry import register_op
from .recurrent import RecurrentCell, StackedRecurrence


def gru_step(xw, h, w_hh, b_hh):
    """One GRU step from xw = x W_ihᵀ + b_ih (B, 3H) and the previous state h (B, H)."""
    H = h.shape[-1]
    hw = F.linear(h, w_hh, b_hh)
    r = F.sigmoid(xw[:, :H] + hw[:, :H])
    z = F.sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])
    n = F.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])
    return n + z * (h - n)          # = (1 - z) n + z h, one product fewer


@register_op("nn.GRUCell")
class GRUCell(RecurrentCell):
    gates = 3

    def _step(self, xw, h, w_hh, b_hh):
        return gru_step(xw, h, w_hh, b_hh)


@register_op("nn.GRU")
class GRU(StackedRecurrence):
    gates = 3

    def _step(self, xw, h, w_hh, b_hh):
        return gru_step(xw, h, w_hh, b_hh)
