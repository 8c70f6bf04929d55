"""Positional information for attention, which by itself ignores order.

Attention treats its inputs as a set: permute the keys and values together and every output stays
the same. A Transformer therefore adds a position signal to each token embedding:

  * ``PositionalEncoding``: fixed sinusoids (Vaswani et al., 2017), a buffer, nothing to learn;
        PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))
    Each pair of columns is a rotation at its own frequency, so PE[pos + k] is a linear function
    of PE[pos]: relative offsets are easy for the model to read off.
  * ``LearnedPositionalEmbedding``: one trained vector per position (as BERT and GPT-2), limited
    to the ``max_len`` positions seen in training.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, get_default_dtype
from ..backend import active_module
from . import init
from .module import Module, empty_parameter

__all__ = ["PositionalEncoding", "LearnedPositionalEmbedding", "sinusoidal_table"]


def sinusoidal_table(max_len, d_model, dtype=None):
    """The (max_len, d_model) table of sines (even columns) and cosines (odd columns)."""
    position = np.arange(max_len, dtype=np.float64)[:, None]                  # (max_len, 1)
    freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(position * freq)
    table[:, 1::2] = np.cos(position * freq[: d_model // 2])                   # odd d_model: one fewer
    return table.astype(get_default_dtype() if dtype is None else dtype)


def _check_sequence(owner, x, max_len, batch_first, offset=0):
    if not isinstance(x, Tensor) or x.ndim not in (2, 3):
        raise ValueError(f"{owner}: expected a Tensor of shape "
                         f"{'(N, L, d_model)' if batch_first else '(L, N, d_model)'} or (L, d_model)"
                         f", got {getattr(x, 'shape', type(x).__name__)}.")
    length = x.shape[1] if (x.ndim == 3 and batch_first) else x.shape[0]
    if isinstance(offset, bool) or int(offset) != offset or offset < 0:
        raise ValueError(f"{owner}: offset must be a whole number >= 0, got {offset!r}.")
    if offset + length > max_len:
        raise ValueError(f"{owner}: positions {offset}..{offset + length - 1} exceed max_len="
                         f"{max_len} (input shape {tuple(x.shape)}, offset {offset}). Build the "
                         f"module with a larger max_len.")
    return length


@register_op("nn.PositionalEncoding")
class PositionalEncoding(Module):
    """x + PE[:L], then dropout (the PyTorch tutorial's module, with a ``batch_first`` option).

    x: (L, N, d_model) or, with ``batch_first=True``, (N, L, d_model); or unbatched (L, d_model).
    The buffer ``pe`` has the tutorial's shape (max_len, 1, d_model), so its state dict loads.
    """

    def __init__(self, d_model, dropout=0.1, max_len=5000, batch_first=False):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"PositionalEncoding: d_model and max_len must be positive, got "
                             f"d_model={d_model}, max_len={max_len}.")
        self.d_model, self.max_len, self.batch_first = int(d_model), int(max_len), bool(batch_first)
        self.p = float(dropout)
        table = active_module().asarray(sinusoidal_table(max_len, d_model))
        self.register_buffer("pe", Tensor(table[:, None, :]))

    def forward(self, x, offset=0):
        """``offset``: the position of x's first token (decoding one token at a time with a
        cache: the number of tokens before it)."""
        L = _check_sequence("PositionalEncoding", x, self.max_len, self.batch_first, offset)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"PositionalEncoding: input has {x.shape[-1]} features (shape "
                             f"{tuple(x.shape)}) but d_model={self.d_model}.")
        table = self.pe.array[offset:offset + L, 0, :].astype(x.dtype, copy=False)   # (L, d_model)
        if x.ndim == 3:
            table = table[None] if self.batch_first else table[:, None]
        return F.dropout(x + Tensor(table), self.p, self.training)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, dropout={self.p}"


@register_op("nn.LearnedPositionalEmbedding")
class LearnedPositionalEmbedding(Module):
    """x + W[:L], then dropout: a trained vector per position. ``weight`` (max_len, d_model) starts
    N(0, 1), like an ``Embedding``. Shapes as ``PositionalEncoding``."""

    def __init__(self, max_len, d_model, dropout=0.0, batch_first=False, dtype=None):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"LearnedPositionalEmbedding: d_model and max_len must be positive, "
                             f"got max_len={max_len}, d_model={d_model}.")
        self.max_len, self.d_model, self.batch_first = int(max_len), int(d_model), bool(batch_first)
        self.p = float(dropout)
        self.weight = empty_parameter((self.max_len, self.d_model), dtype)
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)

    def forward(self, x):
        L = _check_sequence("LearnedPositionalEmbedding", x, self.max_len, self.batch_first)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"LearnedPositionalEmbedding: input has {x.shape[-1]} features (shape "
                             f"{tuple(x.shape)}) but d_model={self.d_model}.")
        table = self.weight[:L]                                                 # (L, d_model)
        if x.ndim == 3 and not self.batch_first:
            table = ops.unsqueeze(table, 1)                                     # (L, 1, d_model)
        return F.dropout(x + table, self.p, self.training)

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}, dropout={self.p}"
